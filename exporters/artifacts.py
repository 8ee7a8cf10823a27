"""Content-addressed artifact store on the filesystem.

Layout: ``<root>/artifacts/<key>/{model<suffix>, meta.json}`` with key
``<spec_hash>-<format>-<precision>``. An artifact is produced in a scratch directory and renamed
into place in one step, so readers see a complete artifact or none, and a failed export leaves
nothing behind. Keys are validated by pattern: a key from the network can never name a path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
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


def artifact_size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size
