"""What a repository gates (``latbench.toml``'s ``[gate]`` or ``[tool.latbench.gate]`` in
pyproject.toml): models × devices × thresholds, and where each side of a pair comes from.

A model's baseline is its explicit ``baseline`` REF, or the same REF built from the merge base of
HEAD and ``baseline_ref`` (e.g. origin/main) in a temporary git worktree: comparing with the
previous commit instead of the merge base blames a pull request for its base branch's changes.
The merge-base build runs in a separate process, so two versions of one user package never meet
in one interpreter.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporters.artifacts import ArtifactStore
from exporters.errors import ExportError, SpecError
from exporters.formats import DeviceClass, DeviceClassInput, ExportFormat
from exporters.keys import validation_error
from exporters.sources import SPEC_SUFFIXES, Sourced
from exporters.sources.ready import SUFFIXES as ARTIFACT_SUFFIXES
from service import pipeline
from service.gate.run import Pair

if TYPE_CHECKING:
    from service.gate.compare import Remote


def parse_threshold(value: float | str, *, field: str = "threshold") -> float:
    """``0.05``, ``"0.05"`` or ``"5%"``: the tolerated slowdown as a fraction; errors name
    ``field`` (the flag or key the user wrote)."""
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise SpecError(f"{value!r} is not a fraction or a percentage", field=field) from exc
    if not 0 <= fraction < 10:
        raise SpecError(f"{value!r} is not in [0, 10), e.g. 5% or 0.05", field=field)
    return fraction


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=128)
    ref: str = Field(..., min_length=1, description="zoo name, spec file, python:, artifact")
    baseline: str | None = Field(None, description="explicit baseline REF; else baseline_ref")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, int] | None = None
    threshold: float | None = None
    devices: list[DeviceClassInput] | None = None

    _threshold = field_validator("threshold", mode="before")(
        lambda v: None if v is None else parse_threshold(v)
    )

    def document(self, ref: str, root: Path) -> str | dict[str, Any]:
        """The REF for ``materialize``: paths resolved against ``root``, else a spec document."""
        if Path(ref).suffix in (*SPEC_SUFFIXES, *ARTIFACT_SUFFIXES):
            return str(root / ref)
        extra = {"kwargs": self.kwargs, "overrides": self.overrides, "input": self.input}
        return {"model": ref, **{k: v for k, v in extra.items() if v}}


Metric = Literal["wall", "cpu"]
METRICS: tuple[str, ...] = get_args(Metric)


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = 0.05
    metric: Metric = "wall"
    devices: list[DeviceClassInput] = Field(default_factory=lambda: [DeviceClass.of_this_cpu()])
    baseline_ref: str | None = None
    budget_reloads: int = Field(24, ge=2, le=200)
    models: list[ModelEntry] = Field(..., min_length=1, max_length=64)

    _threshold = field_validator("threshold", mode="before")(parse_threshold)

    def needs_tree(self) -> bool:
        """Whether a baseline is built at the merge base; SpecError if nothing says which."""
        needs = any(m.baseline is None for m in self.models)
        if needs and self.baseline_ref is None:
            raise SpecError(
                "a model without an explicit baseline needs --baseline-ref (e.g. origin/main)",
                field="baseline_ref",
            )
        return needs


def load_config(path: Path) -> GateConfig:
    if not path.is_file():
        raise SpecError(f"no such file {str(path)!r}", field="config")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"cannot parse {path.name}: {exc}", field="config") from exc
    table = data.get("tool", {}).get("latbench", {}).get("gate") or data.get("gate")
    if table is None:
        where = "[tool.latbench.gate]" if path.name == "pyproject.toml" else "[gate]"
        raise SpecError(f"{path.name} has no {where} table", field="config")
    try:
        return GateConfig.model_validate(table)
    except ValidationError as exc:
        raise validation_error(exc, GateConfig, prefix=("gate",)) from exc


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        raise SpecError(f"git {' '.join(args)} failed: {''.join(message)}", field="baseline_ref")
    return done.stdout.strip()


@contextmanager
def merge_base_tree(root: Path, ref: str) -> Iterator[tuple[Path, str]]:
    """A temporary worktree at the merge base of HEAD and ``ref``, and the path of ``root``
    inside it (the config may live below the repository's top)."""
    top = Path(_git(root, "rev-parse", "--show-toplevel"))
    commit = _git(root, "merge-base", "HEAD", ref)
    scratch = Path(tempfile.mkdtemp(prefix="latbench-baseline-"))
    tree = scratch / "tree"
    _git(top, "worktree", "add", "--detach", str(tree), commit)
    try:
        yield tree / root.resolve().relative_to(top.resolve()), commit
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False, cwd=top,
                       capture_output=True)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)


def build_elsewhere(
    document: str | dict[str, Any], root: Path, fmt: ExportFormat, store: ArtifactStore
) -> Sourced:
    """Build a REF with ``root`` as the working directory and first on the import path, in a
    fresh interpreter (`latbench export --json`), into the same store."""
    with tempfile.TemporaryDirectory() as scratch:
        ref = document
        if isinstance(document, dict):
            ref = str(Path(scratch) / "spec.json")
            Path(ref).write_text(json.dumps(document))
        paths = [str(root), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p),
               "LATBENCH_DATA_DIR": str(store.root)}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "export", str(ref), "--format", fmt.value,
             "--json"], check=False, cwd=root, env=env, capture_output=True, text=True,
        )  # fmt: skip
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(fmt.value, f"building the baseline at the merge base failed: {tail}")
    report = json.loads(done.stdout)
    entry = report["artifacts"][0]
    reparam = report.get("reparam")
    label = document if isinstance(document, str) else document["model"]
    return Sourced(label, report["model"], store.require(entry["key"]), True, entry["cached"],
                   reparam)  # fmt: skip


def side(
    document: str | dict[str, Any], root: Path, fmt: ExportFormat, store: ArtifactStore,
    *, elsewhere: bool, lock_path: Path,
) -> Sourced:  # fmt: skip
    """One side of a pair: ready artifacts are read where they are; built sources in this
    process (``root`` first on the import path, under the host lock at ``lock_path``) or, for
    another tree, in a fresh one."""
    is_artifact = isinstance(document, str) and Path(document).suffix in ARTIFACT_SUFFIXES
    if elsewhere and not is_artifact:
        return build_elsewhere(document, root, fmt, store)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return pipeline.materialize(document, fmt, store_root=store.root, lock_path=lock_path)


def plan(
    config: GateConfig, root: Path, store: ArtifactStore, server: Remote | None, lock_path: Path
) -> list[Pair]:
    """Every (model, device) pair with both sides built (or validated) into ``store``; a build
    here takes the host lock at ``lock_path`` (the caller's: the CLI's LATBENCH_HOST_LOCK)."""
    from service.gate.compare import artifact_format

    built: dict[tuple[str, str, ExportFormat], Sourced] = {}
    needs_tree = config.needs_tree()
    with _maybe_tree(root, config.baseline_ref if needs_tree else None) as tree:
        pairs = []
        for entry in config.models:
            for device in entry.devices or config.devices:
                fmt = artifact_format(device, server)
                sides = []
                for which, ref in (("baseline", entry.baseline), ("candidate", entry.ref)):
                    here = root if which == "candidate" or ref is not None else tree[0]
                    document = entry.document(ref or entry.ref, here)
                    key = (which, json.dumps(document, sort_keys=True), fmt)
                    if key not in built:
                        made = side(
                            document, here, fmt, store, elsewhere=here != root, lock_path=lock_path
                        )
                        at = f" @ merge base {tree[1][:10]}" if here != root else ""
                        built[key] = dataclasses.replace(made, ref=made.ref + at)
                    sides.append(built[key])
                threshold = config.threshold if entry.threshold is None else entry.threshold
                pairs.append(Pair(entry.name, device, sides[0], sides[1], threshold))
    return pairs


@contextmanager
def _maybe_tree(root: Path, ref: str | None) -> Iterator[tuple[Path, str] | tuple[None, None]]:
    if ref is None:
        yield None, None
        return
    with merge_base_tree(root, ref) as tree:
        yield tree
