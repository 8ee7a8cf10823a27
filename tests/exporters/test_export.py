import json

import onnx
import pytest

from exporters import export as export_module
from exporters.artifacts import ArtifactStore, artifact_key
from exporters.errors import SpecError
from exporters.export import export_model
from exporters.formats import ExportFormat, Precision
from exporters.spec import parse_spec
from exporters.zoo.seeds import ALL_VARIANTS, SMALLEST

ONNX = (ExportFormat.ONNX,)


def _assert_onnx_ok(report) -> None:
    art = report.artifact(ExportFormat.ONNX)
    assert art.ok, art.error
    assert art.parity["ok"] and art.parity["rel_error"] <= art.parity["tolerance"]
    model = onnx.load(art.path)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    onnx.checker.check_model(model)
    assert report.reparam["ok"] and report.weights == "random"
    assert report.params > 0 and report.macs > 0


@pytest.mark.parametrize("name", SMALLEST)
def test_seed_family_exports_to_onnx_with_parity(name, session_store):
    _assert_onnx_ok(export_model(parse_spec(name), store=session_store, formats=ONNX))


@pytest.mark.full
@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_every_seed_variant_exports_to_onnx_with_parity(name, session_store):
    _assert_onnx_ok(export_model(parse_spec(name), store=session_store, formats=ONNX))


def test_second_export_is_a_cache_hit_without_building(session_store, monkeypatch):
    spec = parse_spec("repvit_m0_9")
    first = export_model(spec, store=session_store, formats=ONNX)

    def no_build(_resolved):
        raise AssertionError("a cache hit must not build the model")

    monkeypatch.setattr(export_module.registry, "build", no_build)
    second = export_model(spec, store=session_store, formats=ONNX)
    assert second.artifact(ExportFormat.ONNX).cached
    assert second.artifact(ExportFormat.ONNX).path == first.artifact(ExportFormat.ONNX).path
    assert (second.params, second.macs, second.reparam) == (first.params, first.macs, first.reparam)


def test_metadata_records_provenance(session_store):
    report = export_model(parse_spec("fasternet_t0"), store=session_store, formats=ONNX)
    art = session_store.require(report.artifact(ExportFormat.ONNX).key)
    meta = art.meta
    for key in (
        "spec",
        "versions",
        "reparam",
        "parity",
        "size_bytes",
        "params",
        "macs",
        "export_seconds",
        "export_path",
        "weights",
    ):
        assert meta[key] is not None, key
    assert set(meta["versions"]) >= {"torch", "timm", "onnx", "coremltools"}
    assert meta["size_bytes"] == art.path.stat().st_size


def test_pt2_artifact_reloads_with_parity(session_store):
    report = export_model(
        parse_spec("mobileone_s0"), store=session_store, formats=(ExportFormat.TORCH_EXPORT,)
    )
    art = report.artifact(ExportFormat.TORCH_EXPORT)
    assert art.ok and art.parity["ok"] and art.path.endswith(".pt2")


def test_failed_export_leaves_nothing_and_keeps_other_formats(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)

    def exploding_exporter(model, example, precision, dest):
        dest.write_bytes(b"half written")
        raise RuntimeError("converting 'frobnicate' op failed")

    real_get = export_module.get_exporter
    monkeypatch.setattr(
        export_module,
        "get_exporter",
        lambda fmt: exploding_exporter if fmt is ExportFormat.TORCH_EXPORT else real_get(fmt),
    )
    report = export_model(
        parse_spec("mobileone_s0"),
        store=store,
        formats=(ExportFormat.ONNX, ExportFormat.TORCH_EXPORT),
    )
    onnx_art, pt2_art = report.artifacts
    assert onnx_art.ok and not pt2_art.ok and not report.ok
    assert "pt2 export failed" in pt2_art.error and "frobnicate" in pt2_art.error
    assert store.get(pt2_art.key) is None
    assert not any((tmp_path / "tmp").iterdir()), "no scratch output survives a failure"
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [onnx_art.key]


def test_onnx_fp16_is_refused_with_the_field(tmp_path, monkeypatch):
    spec = parse_spec({"model": "mobileone_s0", "precision": "fp16", "formats": ["onnx"]})
    from exporters.zoo import registry

    def no_build(_resolved):
        raise AssertionError("an impossible precision must fail before building")

    monkeypatch.setattr(registry, "build", no_build)
    report = export_model(spec, store=ArtifactStore(tmp_path))
    art = report.artifact(ExportFormat.ONNX)
    assert not art.ok and art.error.startswith("precision:") and "fp32" in art.error
    assert store_is_empty(tmp_path)


def store_is_empty(root) -> bool:
    artifacts = root / "artifacts"
    return not artifacts.exists() or not any(artifacts.iterdir())


def test_artifact_keys_cannot_name_paths(tmp_path):
    store = ArtifactStore(tmp_path)
    for key in ("../../etc/passwd", "a" * 32 + "-onnx-fp32/../x", "", "x-onnx-fp32"):
        with pytest.raises(SpecError):
            store.get(key)
    key = artifact_key("0" * 32, ExportFormat.ONNX, Precision.FP32)
    assert store.get(key) is None


def test_meta_json_is_valid_json(session_store):
    report = export_model(parse_spec("repvit_m0_9"), store=session_store, formats=ONNX)
    meta_path = session_store.root / "artifacts" / report.artifacts[0].key / "meta.json"
    assert json.loads(meta_path.read_text())["spec_hash"] == report.spec_hash


def test_model_that_cannot_run_at_the_input_names_the_input(tmp_path):
    """LeViT's attention grid does not fit 17x17: torch's bare RuntimeError becomes a SpecError."""
    spec = parse_spec({"model": "levit_128s", "input": {"height": 17, "width": 17}})
    with pytest.raises(SpecError) as info:
        export_model(spec, store=ArtifactStore(tmp_path), formats=ONNX)
    assert info.value.field == "input" and "levit_128s cannot run on input [1, 3, 17, 17]" in str(
        info.value
    )
    assert store_is_empty(tmp_path)
