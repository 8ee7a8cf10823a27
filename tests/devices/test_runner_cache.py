"""The runner's artifact cache is private and bounded: it lives in the user's own cache
directory, made owner-only (fetched files are run as models: nobody else may plant one under a
key's name), and past its bound the least recently used artifacts are dropped."""

from __future__ import annotations

import dataclasses
import stat

from devices.jobs.http_port import HttpPort, default_cache, private_dir
from tests.devices.test_delivery import TASK, serving

KEYS = [letter * 32 + "-onnx-fp32" for letter in "abc"]


def test_the_cache_is_made_owner_only(tmp_path):
    shared = tmp_path / "cache"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert stat.S_IMODE(private_dir(shared).stat().st_mode) == 0o700
    assert "tmp" not in default_cache().parts[:2]


def test_the_cache_drops_the_least_recently_used_past_its_bound(tmp_path):
    files = {f"/runners/r/artifacts/{key}": bytes([i]) * 4096 for i, key in enumerate(KEYS)}
    with serving({}, files) as server:
        port = HttpPort(server.url, cache=tmp_path / "cache", cache_bytes=9000)
        port.runner_id = "r"
        fetched = [port.fetch_artifact(dataclasses.replace(TASK, artifact_key=k), k) for k in KEYS]
        assert fetched[2].read_bytes() == bytes([2]) * 4096
        kept = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert kept == [f"{KEYS[1]}.onnx", f"{KEYS[2]}.onnx"]  # a, the oldest, dropped
