from __future__ import annotations

import pytest

from driftline.schemas.storage import OutsideRootError, Storage


@pytest.mark.parametrize("relative", ["../x.json", "a/../../x.json", "a/./b.json", "", "a//b.json", "a\\..\\..\\x"])
def test_paths_that_would_leave_the_root_or_are_not_plain_are_refused(tmp_path, relative):
    storage = Storage.from_url(str(tmp_path / "root"))
    with pytest.raises(OutsideRootError, match="refusing storage path"):
        storage.write_bytes(relative, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_writes_are_atomic_and_listed_relative_to_the_root(tmp_path):
    storage = Storage.from_url(str(tmp_path / "root"))
    storage.write_json("a/b.json", {"n": 1})
    storage.write_json("a/b.json", {"n": 2})
    assert storage.read_json("a/b.json") == {"n": 2}
    assert storage.list("a") == ["a/b.json"]  # no temporary file left behind
    assert storage.glob("a/*.json") == ["a/b.json"]
    assert storage.list("missing") == []
    storage.remove("a/b.json")
    assert not storage.exists("a/b.json")


def test_a_temporary_file_left_by_a_crash_is_never_listed(tmp_path):
    storage = Storage.from_url(str(tmp_path / "root"))
    storage.write_json("alerts/pending/a.json", {"n": 1})
    (tmp_path / "root" / "alerts" / "pending" / ".tmp-0123abcd").write_bytes(b'{"trunc')
    assert storage.list("alerts/pending") == ["alerts/pending/a.json"]
    assert storage.glob("alerts/pending/*") == ["alerts/pending/a.json"]
