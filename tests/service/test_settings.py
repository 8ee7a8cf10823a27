from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_environment_prefix_and_sqlite_default(monkeypatch, tmp_path):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LATBENCH_DISPATCHER", "celery")
    settings = Settings(_env_file=None)
    assert settings.dispatcher == "celery"
    assert settings.db_url == f"sqlite:///{tmp_path / 'latbench.db'}"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "lab-server"])
def test_non_loopback_bind_needs_tokens(host):
    with pytest.raises(ValidationError, match="LATBENCH_API_TOKEN"):
        Settings(_env_file=None, host=host)
    with pytest.raises(ValidationError, match="LATBENCH_RUNNER_TOKEN"):
        Settings(_env_file=None, host=host, api_token="a" * 16)
    assert Settings(_env_file=None, host=host, api_token="a" * 16, runner_token="r" * 16)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_needs_no_token(host):
    assert Settings(_env_file=None, host=host).api_token is None


def test_heartbeat_timeout_must_exceed_interval():
    with pytest.raises(ValidationError, match="heartbeat_timeout_s"):
        Settings(_env_file=None, heartbeat_interval_s=10, heartbeat_timeout_s=5)


def test_serve_refuses_an_open_bind_without_token(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("LATBENCH_")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("latbench")), "serve", "--host", "0.0.0.0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "LATBENCH_API_TOKEN" in done.stderr
