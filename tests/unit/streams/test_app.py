from __future__ import annotations

import json
import socket
from dataclasses import replace

import pytest

from driftline.schemas.settings import Settings
from driftline.streams.app import announce, serving_port


def test_a_taken_port_moves_the_worker_to_the_next_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        chosen = serving_port("127.0.0.1", port)
        assert chosen != port and port < chosen < port + 64
    assert serving_port("127.0.0.1", port) == port  # free again


def test_port_zero_is_any_free_port():
    assert serving_port("127.0.0.1", 0) > 0


def test_every_port_taken_is_an_error_naming_the_range():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"ports {port}–{port} on 127.0.0.1 are all taken"):
            serving_port("127.0.0.1", port, tries=1)


def test_the_worker_lists_itself_for_prometheus(tmp_path):
    settings = replace(Settings(), home=str(tmp_path), topic_prefix="shop")
    path = announce(settings, 6070)
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:6070"], "labels": {"job": "driftline-worker", "prefix": "shop"}}
    ]
    assert path == tmp_path / "worker" / "prometheus" / "shop-6070.json"
