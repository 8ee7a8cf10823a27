"""Content-addressed artifact store on the filesystem.

Layout: ``<root>/artifacts/<key>/{model<suffix>, meta.json}`` with key
``<spec_hash>-<format>-<precision>``. An artifact is produced in a scratch directory and renamed
into place in one step, so readers see a complete artifact or none, and a failed export leaves
nothing behind. Keys are validated by pattern: a key from the network can never name a path.

Retention: every read stamps the artifact's ``meta.json`` with the time (its last use), so
``collect`` frees the least recently used first; scratch a crashed process left behind is swept
by ``sweep_scratch`` when the worker starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.errors import NotFoundError, SpecError
from exporters.formats import ExportFormat, Precision

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}-(onnx|coreml|pt2)-(fp16|fp32|int8|w8)$")
META_FILE = "meta.json"


def artifact_key(spec_hash: str, fmt: ExportFormat, precision: Precision) -> str:
    return f"{spec_hash}-{fmt.value}-{precision.value}"


def spec_hash_of(key: str) -> str:
    """The spec hash in an artifact key (an upload's: its content hash, its spec row's key)."""
    return key.rsplit("-", 2)[0]


@dataclass(frozen=True)
class Artifact:
    key: str
    format: ExportFormat
    precision: Precision
    path: Path  # the model file (a directory for CoreML's .mlpackage)
    meta: dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """One stored artifact as retention sees it: its size and when it was last read."""

    key: str
    size_bytes: int
    last_used: float  # seconds since the epoch


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._artifacts = self.root / "artifacts"
        self._scratch = self.root / "tmp"

    def _dir(self, key: str) -> Path:
        if not KEY_PATTERN.match(key):
            raise SpecError(f"malformed artifact key {key!r}", field="artifact")
        return self._artifacts / key

    def get(self, key: str) -> Artifact | None:
        directory = self._dir(key)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        _stamp(meta_path)
        fmt, precision = ExportFormat(meta["format"]), Precision(meta["precision"])
        return Artifact(key, fmt, precision, directory / f"model{fmt.suffix}", meta)

    def require(self, key: str) -> Artifact:
        artifact = self.get(key)
        if artifact is None:
            raise NotFoundError(f"no artifact {key!r} in the store")
        return artifact

    def put(
        self,
        key: str,
        produce: Callable[[Path], dict[str, Any]],
    ) -> Artifact:
        """Run ``produce(model_path)`` in scratch space, then publish atomically.

        ``produce`` writes the model at the path it is given and returns the metadata. When two
        processes export the same key at once, the first rename wins and the other's copy is
        discarded, so the artifact is never half-replaced.
        """
        final = self._dir(key)
        fmt = ExportFormat(key.split("-")[1])
        scratch = self._scratch / f"{key}.{uuid.uuid4().hex}"
        scratch.mkdir(parents=True)
        try:
            meta = produce(scratch / f"model{fmt.suffix}")
            meta = {**meta, "key": key, "format": fmt.value, "precision": key.split("-")[2]}
            (scratch / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(scratch, final)
            except OSError:
                if not (final / META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return self.require(key)

    def stored(self) -> list[Stored]:
        """Every published artifact, least recently used first."""
        if not self._artifacts.is_dir():
            return []
        found = []
        for directory in self._artifacts.iterdir():
            meta = directory / META_FILE
            if KEY_PATTERN.match(directory.name) and meta.is_file():
                used = meta.stat().st_mtime
                found.append(Stored(directory.name, artifact_size_bytes(directory), used))
        return sorted(found, key=lambda s: (s.last_used, s.key))

    def collect(
        self,
        *,
        limit_bytes: int,
        keep: Collection[str],
        grace_s: float = 600.0,
        dry_run: bool = False,
    ) -> list[Stored]:
        """Free the least recently used artifacts until the store holds at most ``limit_bytes``,
        never one in ``keep`` (what unfinished jobs need) nor one read in the last ``grace_s``
        (a job being created for it now); what was freed (with ``dry_run``: would be)."""
        entries = self.stored()
        total = sum(e.size_bytes for e in entries)
        recent = time.time() - grace_s
        freed: list[Stored] = []
        for entry in entries:
            if total <= limit_bytes:
                break
            if entry.key in keep or entry.last_used > recent:
                continue
            if not dry_run:
                self._remove(entry.key)
            freed.append(entry)
            total -= entry.size_bytes
        return freed

    def _remove(self, key: str) -> None:
        """Unpublish first (a rename), then delete: a reader sees the whole artifact or none."""
        doomed = self._scratch / f"gc-{key}.{uuid.uuid4().hex}"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._dir(key), doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def sweep_scratch(self, *, older_than_s: float) -> list[str]:
        """Remove scratch untouched for ``older_than_s``: no export or upload runs that long
        (a caller passes its timeout), so it is what a crashed process left. The names."""
        if not self._scratch.is_dir():
            return []
        swept, cutoff = [], time.time() - older_than_s
        for item in self._scratch.iterdir():
            if item.lstat().st_mtime > cutoff:
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
            swept.append(item.name)
        return swept


def _stamp(path: Path) -> None:
    """Mark a read as the artifact's last use (best effort: a read-only store still serves)."""
    try:
        os.utime(path)
    except OSError:
        pass


def artifact_size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size
