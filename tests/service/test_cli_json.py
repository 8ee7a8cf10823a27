"""A command's --json is its API twin's body: the same pydantic model serialises both."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema_rs
from fastapi.testclient import TestClient

from service.app import create_app
from service.cli.schema import schema_of
from service.settings import Settings


def test_models_json_is_what_get_models_answers(tmp_path):
    env = {**os.environ, "LATBENCH_DATA_DIR": str(tmp_path / "data")}
    env.pop("LATBENCH_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "models", "repvit_m*", "--json"],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", local_runner=False,
                        host_lock=tmp_path / "host.lock")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        answer = client.get("/models", params={"pattern": "repvit_m*", "limit": 2000})
    assert answer.status_code == 200
    cli = json.loads(done.stdout)
    assert cli == answer.json() and cli["count"] >= 5
    jsonschema_rs.validate(schema_of("models"), cli)
    assert all(row["params"] and row["reference_top1"] for row in cli["data"][:5])
