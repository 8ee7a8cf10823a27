"""The compose file is valid and wires the pieces as documented (checked by the Compose client;
no Docker engine runs here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yml"
TOKENS = {"LATBENCH_API_TOKEN": "a" * 20, "LATBENCH_RUNNER_TOKEN": "r" * 20}


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip(reason="no Docker Compose client (docker compose / docker-compose) on this host")


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("LATBENCH_")} | env
    return subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config"],
        env=full,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )


def test_compose_config_resolves_api_worker_postgres_redis_and_a_runner():
    done = _config(TOKENS)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"api", "worker", "postgres", "redis", "runner-cpu"}
    assert services["api"]["command"] == ["latbench", "serve", "--no-worker"]
    assert services["worker"]["command"] == ["latbench", "worker", "--no-migrate"]
    for part in ("api", "worker"):
        environment = services[part]["environment"]
        assert environment["LATBENCH_DISPATCHER"] == "celery"
        assert environment["LATBENCH_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["LATBENCH_BROKER_URL"] == "redis://redis:6379/0"
    assert "cpu-x86_64" in services["runner-cpu"]["command"]


def test_compose_refuses_to_start_without_tokens():
    done = _config({})
    assert done.returncode != 0
    assert "LATBENCH_API_TOKEN" in done.stderr
