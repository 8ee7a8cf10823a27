"""The CLI against a running server: `latbench gate --server URL --markdown F` on a `python:`
model (built here, uploaded, compared by the server's runner) writes a comment whose every link
answers 200 from that server and which states the threshold, the metric and the host load;
`profile` and `compare` with LATBENCH_SERVER measure on the server's runner."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import jsonschema_rs
import pytest

from service.cli.schema import schema_of
from tests.e2e.conftest import LATBENCH, Server, service_env
from tests.user_package import write_sides


@pytest.mark.slow
def test_every_link_of_the_gate_comment_answers_200(tmp_path):
    write_sides(tmp_path, base=1, cand=2)
    env = service_env(tmp_path)
    server = Server(env, tmp_path / "server.log")
    try:
        done = subprocess.run(
            [LATBENCH, "gate", "--baseline", "base.json", "--candidate", "cand.json",
             "--server", server.url, "--markdown", str(tmp_path / "pr.md")],
            check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode in (0, 1, 3), done.stderr + server.tail()
        comment = (tmp_path / "pr.md").read_text()
        links = re.findall(r"\]\((http[^)\s]+)\)", comment)
        assert links, comment
        for link in links:
            assert httpx.get(link, timeout=60).status_code == 200, link
        remote = {**env, "LATBENCH_SERVER": server.url}
        fast = ["--threads", "1"]
        profiled = _latbench(["profile", "cand.json", *fast, "--max-seconds", "1", "--json"],
                             tmp_path, remote)  # fmt: skip
        assert server.http.get(f"/jobs/{profiled['job_id']}").json()["state"] == "done"
        assert profiled["latency_ms"]["median"] > 0 and profiled["server"] == server.url
        compared = _latbench(["compare", "base.json", "cand.json", *fast, "--reloads", "2",
                              "--blocks", "3", "--json"], tmp_path, remote)  # fmt: skip
        assert compared["ratio"] > 0 and compared["reloads"] == 2
        jsonschema_rs.validate(schema_of("result"), profiled)  # the API's result, as printed
        jsonschema_rs.validate(schema_of("compare"), compared)
        assert profiled["reparam"]["ok"] is None  # measured as uploaded: not applicable
        charts = _latbench(["report", "--json"], tmp_path, remote)["devices"]
        assert any(p["spec_hash"] == profiled["spec_hash"] for c in charts.values()
                   for p in c["points"] + c["unplotted"])  # fmt: skip
        written = subprocess.run([LATBENCH, "report", "--out", "r/report.html"], cwd=tmp_path,
                                 env=remote, capture_output=True, text=True, check=False)  # fmt: skip
        assert written.returncode == 0, written.stderr
        assert (tmp_path / "r" / "report.html").read_text().count("LATBENCH_REPORT") >= 1
    finally:
        server.stop()
    assert "| threshold |" in comment and "+5.0%" in comment
    assert "wall-time ratio" in comment and "others " in comment and "not recorded" not in comment


def _latbench(args: list[str], cwd, env) -> dict:
    done = subprocess.run([LATBENCH, *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
