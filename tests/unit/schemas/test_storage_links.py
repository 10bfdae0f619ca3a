"""The report link a person opens from an alert."""

from __future__ import annotations

from driftline.schemas.storage import Storage


def test_a_published_storage_links_under_its_base_url_and_a_local_one_is_its_path(tmp_path):
    storage = Storage.from_url(str(tmp_path / "store"))
    path = "reports/model=churn/drift-20261208T020000Z.html"
    assert storage.link(path, "https://reports.example.com/driftline/") == (
        "https://reports.example.com/driftline/reports/model=churn/drift-20261208T020000Z.html"
    )
    assert storage.link(path) == storage.url(path) == f"{tmp_path / 'store'}/{path}"
