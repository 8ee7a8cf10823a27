"""Latency of the training models measured on this host's CPU: the third baseline (latency on the
target ∝ latency here). Measured once with the ort-cpu runner at one thread and a small budget,
shipped as ``data/host_cpu_latency.json`` with the host's description and the load it ran under.

Rebuild: ``python -m service.predict.hostcpu --out service/predict/data/host_cpu_latency.json``
(after ``service.predict.featurecache`` has exported the artifacts into the same store).
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from devices.settings import MeasureSettings
from exporters.artifacts import ArtifactStore, artifact_key
from exporters.errors import LatbenchError
from exporters.formats import ExportFormat, Precision
from service.predict.featurecache import identity_key

SHIPPED = "host_cpu_latency.json"
SETTINGS = MeasureSettings(
    threads=1,
    target_rel_ci=0.05,
    min_iters=5,
    max_iters=60,
    max_seconds=4.0,
    warmup_max_iters=20,
    warmup_max_seconds=2.0,
    input_pool=2,
)


def host_latency() -> dict[str, float]:
    """Graph identity -> median compute ms of the measuring thread on the host that measured the
    shipped file (empty if none). Thread CPU time, not wall time: on a shared host it leaves out
    the time spent waiting for a core."""
    path = resources.files("service.predict").joinpath("data", SHIPPED)
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())["entries"]
    return {entry["identity"]: entry["cpu_ms"] for entry in entries.values()}


def main() -> None:
    """Measure every training spec whose ONNX artifact is in the store."""
    from devices.runner import get_runner
    from service.predict.training import device_classes, published_rows

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--store", type=Path, default=Path(".latbench"))
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    runner = get_runner("ort-cpu")
    specs = {row.spec_hash: row.spec for c in device_classes() for row in published_rows(c)}
    payload = {"host": runner.describe(SETTINGS).to_dict(), "settings": SETTINGS.model_dump()}
    entries: dict[str, dict] = {}
    for number, (spec_hash, spec) in enumerate(specs.items(), start=1):
        artifact = store.get(artifact_key(spec_hash, ExportFormat.ONNX, Precision.FP32))
        if artifact is None:
            print(f"[{number}/{len(specs)}] {spec.model}: no ONNX artifact, skipped", flush=True)
            continue
        try:
            measurement = runner.measure(artifact.path, SETTINGS)
        except LatbenchError as exc:
            print(f"[{number}/{len(specs)}] {spec.model} FAILED: {exc}", flush=True)
            continue
        median = measurement.latency_ms.median
        entries[spec_hash] = {
            "identity": identity_key(spec),
            "model": spec.model,
            "median_ms": median,
            "cpu_ms": measurement.cpu_ms.median if measurement.cpu_ms else median,
            "host_load": measurement.host_load,
        }
        others = measurement.host_load["others_cpu_pct"]
        print(f"[{number}/{len(specs)}] {spec.model} {median:.2f} ms (others {others}% CPU)")
        args.out.write_text(json.dumps({**payload, "entries": entries}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
