"""Ready artifacts (``.onnx``, ``.pt2``, ``.mlpackage``): validated, never rebuilt, never proven.

They enter the content-addressed store under the hash of their bytes (the same bytes are one
artifact) through the store's atomic put, so a file that fails validation leaves nothing behind.
ONNX is checked in full (``onnx.checker``, opset range, no external data: every weight must be
inside the one file, so nothing can point outside the upload). ``.pt2`` and ``.mlpackage`` are
only accepted from local files (the CLI: the user's own build) and checked for their structure:
loading them means unpickling (pt2 constants) or a directory tree, which the API does not take.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporters.artifacts import Artifact, ArtifactStore, artifact_key, artifact_size_bytes
from exporters.errors import PayloadTooLargeError, SpecError
from exporters.formats import ExportFormat

MIN_OPSET, MAX_OPSET = 7, 21  # onnxruntime's CPU provider covers this range
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
NOT_REPARAMETERIZED = "reparam: not applicable, uploaded artifact"


def reparam_summary(reparam: dict[str, Any] | None, *, built: bool) -> dict[str, Any]:
    """The one shape of ``reparam`` in every output (CLI ``--json``, the API, uploads): ``ok``
    (None where it does not apply: an uploaded artifact is measured as given), ``rel_error`` and
    ``tolerance`` of the equivalence proof, and a ``note`` for people. An export's full report
    carries the same three keys and more."""
    if not built:
        return {"ok": None, "rel_error": None, "tolerance": None, "note": NOT_REPARAMETERIZED}
    if not reparam:
        return {"ok": None, "rel_error": None, "tolerance": None, "note": "reparam: none recorded"}
    rel = reparam.get("rel_error")
    note = f"reparam: proven, rel. error {rel:.1e}" if reparam.get("ok") else "reparam: NOT proven"
    return {"ok": reparam.get("ok"), "rel_error": rel, "tolerance": reparam.get("tolerance"),
            "note": note}  # fmt: skip


def weights_said(*as_given: bool) -> str:
    """What weights the measured models carry, one word for every output: latbench builds each
    model with random weights, a ready (uploaded) artifact carries its own: ``as_given`` per
    model; ``mixed`` when one of each."""
    said = {"as uploaded" if given else "random" for given in as_given}
    return said.pop() if len(said) == 1 else "mixed"


SUFFIXES = {fmt.suffix: fmt for fmt in ExportFormat}


@dataclass(frozen=True)
class Ingested:
    artifact: Artifact
    cached: bool  # the same bytes were already in the store


def format_of(path: Path) -> ExportFormat:
    fmt = SUFFIXES.get(path.suffix)
    if fmt is None:
        raise SpecError(
            f"{path.name!r} is not an artifact; expected one of {', '.join(SUFFIXES)}",
            field="artifact",
        )
    return fmt


def content_hash(path: Path) -> str:
    """sha256 of the bytes (of a directory: of its relative paths and their bytes), 32 hex."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:32]


def check_size(path: Path, max_bytes: int) -> int:
    size = artifact_size_bytes(path)
    if size > max_bytes:
        raise PayloadTooLargeError(f"artifact is {size} bytes, over the limit of {max_bytes}")
    return size


def validate_onnx(path: Path) -> dict[str, Any]:
    """Full checker, opset in range, every tensor inside the file; what was checked."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise SpecError(f"not an ONNX model ({type(exc).__name__})", field="artifact") from exc
    external = _external_tensors(model.graph)
    if external:
        raise SpecError(
            f"external data is refused ({', '.join(external[:3])}): save the model with every "
            "tensor inside the one file (onnx.save(..., save_as_external_data=False))",
            field="artifact",
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise SpecError(
            f"opset {opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}",
            field="artifact",
        )
    if not model.graph.node or not model.graph.input:
        raise SpecError("the ONNX graph has no nodes or no inputs", field="artifact")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        message = str(exc).splitlines()[0][:300]
        raise SpecError(f"onnx.checker rejected the graph: {message}", field="artifact") from exc
    return {"opset": opset, "checker": "passed", "nodes": len(model.graph.node)}


def _external_tensors(graph: Any) -> list[str]:
    """Names of tensors stored outside the file, in this graph and every subgraph."""
    import onnx

    found = []
    tensors = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            tensors.extend([attr.t] if attr.HasField("t") else [])
            tensors.extend(attr.tensors)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                found.extend(_external_tensors(sub))
    found.extend(
        t.name or "<unnamed>"
        for t in tensors
        if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data
    )
    return found


def _validate_structure(path: Path, fmt: ExportFormat) -> dict[str, Any]:
    if fmt is ExportFormat.TORCH_EXPORT:
        if not zipfile.is_zipfile(path):
            raise SpecError("not a torch.export program (.pt2 is a zip archive)", field="artifact")
        return {"structure": "zip archive"}
    if not (path / "Manifest.json").is_file():
        raise SpecError("not an ML package (no Manifest.json)", field="artifact")
    return {"structure": "mlpackage with Manifest.json"}


def ingest(
    store: ArtifactStore,
    path: Path,
    *,
    fmt: ExportFormat | None = None,
    label: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Ingested:
    """Validate ``path`` and copy it into the store under its content hash (a cache hit when the
    same bytes are already there). ``path`` itself is left as it is."""
    path = Path(path)
    fmt = fmt or format_of(path)
    size = check_size(path, max_bytes)
    sha = content_hash(path)
    key = artifact_key(sha, fmt, fmt.default_precision(None))
    existing = store.get(key)
    if existing is not None:
        return Ingested(existing, cached=True)

    def produce(dest: Path) -> dict[str, Any]:
        checks = validate_onnx(path) if fmt is ExportFormat.ONNX else _validate_structure(path, fmt)
        if path.is_dir():
            shutil.copytree(path, dest)
        else:
            shutil.copyfile(path, dest)
        return {
            "source": "upload",
            "model": label or path.name,
            "sha256_prefix": sha,
            "weights": weights_said(True),
            "reparam": None,
            "reparam_note": NOT_REPARAMETERIZED,
            "checks": checks,
            "size_bytes": size,
            "created_at": datetime.now(UTC).isoformat(),
        }

    return Ingested(store.put(key, produce), cached=False)
