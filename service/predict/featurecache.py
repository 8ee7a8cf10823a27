"""Graph features per spec, cached: exporting ~100 models takes an hour on a small host, so the
features of the training rows ship as package data (``data/features.json``) and features of any
other spec are computed once (latbench's own export to ONNX, then ``exporters.features``) and kept
in a cache file in the data directory.

Entries are keyed by spec hash. The hash includes the torch/timm/onnx versions, so after an
upgrade a shipped entry is still found by the spec's graph identity (model, overrides, input) and
the lookup says so (``stale``): the graph of a released model rarely changes between versions.

Rebuild the shipped file after changing the training rows or ``exporters.features``:
``python -m service.predict.featurecache --out service/predict/data/features.json``; after a
library upgrade, ``--no-export`` re-keys the entries under the current hashes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.artifacts import ArtifactStore
from exporters.errors import ExportError, LatbenchError
from exporters.features import FEATURES_VERSION, GraphFeatures, onnx_features
from exporters.formats import ExportFormat
from exporters.spec import ModelSpec, library_versions
from service.predict.packaged import data_path, report_missing

SHIPPED = "features.json"


@dataclass(frozen=True)
class CachedFeatures:
    features: GraphFeatures
    stale: bool  # computed with other library versions (found by graph identity, not hash)


def identity_key(spec: ModelSpec) -> str:
    return json.dumps(spec.graph_identity(), sort_keys=True, separators=(",", ":"))


class FeatureCache:
    """Shipped entries first, then the local cache file, then export + extract (saved locally)."""

    def __init__(self, *, local: Path | None = None, store: ArtifactStore | None = None) -> None:
        self.local = local
        self.store = store
        self._entries = {**_read(_shipped_text()), **(_read_file(local) if local else {})}
        self._by_identity = {
            entry["identity"]: key for key, entry in self._entries.items() if "identity" in entry
        }

    def lookup(self, spec: ModelSpec) -> CachedFeatures | None:
        entry = self._entries.get(spec.content_hash())
        stale = False
        if entry is None:
            key = self._by_identity.get(identity_key(spec))
            entry, stale = (self._entries[key], True) if key else (None, False)
        if entry is None or entry["features"].get("version") != FEATURES_VERSION:
            return None
        return CachedFeatures(GraphFeatures.from_dict(entry["features"]), stale)

    def get(self, spec: ModelSpec) -> CachedFeatures:
        """Features of ``spec``, exporting it when no cache has them (needs ``store``)."""
        found = self.lookup(spec)
        if found is not None:
            return found
        if self.store is None:
            raise ExportError("features", f"no cached features for {spec.model!r} and no store")
        return self.put(spec, extract(spec, self.store))

    def put(self, spec: ModelSpec, features: GraphFeatures) -> CachedFeatures:
        """Keep ``features`` of ``spec`` (read from an artifact exported elsewhere, or here) under
        its current hash: one entry per graph identity (a stale entry is replaced)."""
        previous = self._by_identity.get(identity_key(spec))
        if previous is not None and previous != spec.content_hash():
            self._entries.pop(previous, None)
        self._entries[spec.content_hash()] = _entry(spec, features)
        self._by_identity[identity_key(spec)] = spec.content_hash()
        if self.local is not None:
            self.save(self.local, only_local=True)
        return CachedFeatures(features, stale=False)

    def merge(self, path: Path) -> None:
        """Take in the entries of another cache file (one a long export run wrote) for graphs
        this cache does not have yet: one entry per graph identity."""
        for key, entry in _read_file(path).items():
            if entry.get("identity") not in self._by_identity:
                self._entries[key] = entry
                self._by_identity[entry["identity"]] = key

    def save(self, path: Path, *, only_local: bool = False) -> None:
        shipped = _read(_shipped_text()) if only_local else {}
        entries = {k: v for k, v in self._entries.items() if k not in shipped}
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"library_versions": library_versions(), "entries": entries}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
        tmp.replace(path)


def extract(spec: ModelSpec, store: ArtifactStore) -> GraphFeatures:
    """Export the deploy form to ONNX (cached in ``store``) and read its graph features."""
    from exporters.export import export_model

    report = export_model(spec, store=store, formats=(ExportFormat.ONNX,))
    artifact = report.artifact(ExportFormat.ONNX)
    if artifact is None or not artifact.ok or artifact.path is None:
        raise ExportError("onnx", artifact.error if artifact else "no ONNX artifact")
    return onnx_features(Path(artifact.path))


def _entry(spec: ModelSpec, features: GraphFeatures) -> dict[str, Any]:
    return {"identity": identity_key(spec), "model": spec.model, "features": features.to_dict()}


def _shipped_text() -> str:
    path = data_path(SHIPPED)
    if not path.is_file():
        report_missing(path, "features of the training rows are computed anew (an export each)")
        return "{}"
    return path.read_text()


def _read(text: str) -> dict[str, Any]:
    return json.loads(text).get("entries", {})


def _read_file(path: Path) -> dict[str, Any]:
    return _read(path.read_text()) if path.is_file() else {}


def main() -> None:
    """Rebuild the shipped features of every training row (exports what the store lacks)."""
    from service.predict.training import device_classes, published_rows

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--store", type=Path, default=Path(".latbench"))
    parser.add_argument("--device", action="append", help="only these classes (repeatable)")
    parser.add_argument(
        "--merge", type=Path, action="append", default=[], help="another cache file to take in"
    )
    parser.add_argument("--no-export", action="store_true", help="re-key and merge only")
    args = parser.parse_args()
    store = None if args.no_export else ArtifactStore(args.store)
    cache = FeatureCache(local=args.out, store=store)
    for path in args.merge:
        cache.merge(path)
    classes = args.device or [c.value for c in device_classes()]
    specs = {row.spec_hash: row.spec for c in classes for row in published_rows(c)}
    for number, spec in enumerate(specs.values(), start=1):
        try:
            found = cache.get(spec)
            if found.stale:  # found by graph identity: keep it under the current hash
                cache.put(spec, found.features)
            print(f"[{number}/{len(specs)}] {spec.model} ok (stale: {found.stale})", flush=True)
        except LatbenchError as exc:  # one model failing must not stop the rest: report it
            print(f"[{number}/{len(specs)}] {spec.model} FAILED: {exc}", flush=True)
        cache.save(args.out)  # after each model: an interrupted rebuild keeps what it did


if __name__ == "__main__":
    main()
