"""Latency predictors: leave-one-family-out CV, the training domain, stored results as training
rows, and the two commands. Features come from the shipped cache: nothing is exported here."""

from __future__ import annotations

import json
import math

import onnx
import pytest
from onnx import TensorProto, helper

from exporters.features import onnx_features
from exporters.formats import Precision
from exporters.spec import parse_spec
from service.db.tables import ResultRow, SpecRow
from service.predict.cv import fit_candidate, leave_one_family_out
from service.predict.featurecache import CachedFeatures, FeatureCache, identity_key
from service.predict.predictor import load_predictor, samples_for
from service.predict.training import published_rows, rows_from_results
from tests.exporters.test_cli_export import latbench

IPHONE = "iphone12-class"


@pytest.fixture(scope="module")
def iphone_samples():
    samples, _, skipped = samples_for(published_rows(IPHONE), FeatureCache())
    assert len({s.row.family for s in samples}) >= 3, f"no shipped features: {sorted(skipped)}"
    return samples


@pytest.fixture(scope="module")
def predictor():
    return load_predictor(IPHONE, None)


def test_each_fold_trains_without_the_family_it_predicts(iphone_samples):
    seen_training: dict[str, set[str]] = {}
    fit = fit_candidate("macs+nodes")

    def recording_fitter(train):
        held_out = {s.row.family for s in iphone_samples} - {s.row.family for s in train}
        (family,) = held_out  # exactly one family is missing from each training set
        seen_training[family] = {s.row.id for s in train}
        return fit(train)

    result = leave_one_family_out(iphone_samples, recording_fitter, "macs+nodes")
    family_of = {s.row.id: s.row.family for s in iphone_samples}
    assert {fold.family for fold in result.folds} == set(family_of.values())
    for fold in result.folds:
        assert set(fold.train_ids) == seen_training[fold.family]
        assert all(family_of[i] != fold.family for i in fold.train_ids)
        assert {i for i, f in family_of.items() if f == fold.family} == set(fold.test_ids)
    assert set(result.predicted) == set(family_of)  # every row predicted once, held out


def _graph_with_einsum(path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16])
    node = helper.make_node("Einsum", ["x"], ["y"], equation="bij->bji")
    graph = helper.make_graph([node], "einsum", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_an_op_type_never_seen_in_training_is_out_of_domain(predictor, tmp_path):
    _graph_with_einsum(tmp_path / "einsum.onnx")
    features = onnx_features(tmp_path / "einsum.onnx")
    spec = parse_spec({"model": "resnet18", "input": {"height": 64, "width": 64}})
    prediction = predictor.predict(spec, "resnet", CachedFeatures(features, stale=False))
    assert prediction.kind == "predicted"
    assert not prediction.domain.inside
    assert prediction.domain.unseen_op_types == ["Einsum"]
    assert not prediction.domain.family_seen  # no resnet row on the iPhone-12 class
    assert any("outside the training domain" in note for note in prediction.notes)


def test_a_training_spec_is_inside_and_carries_its_error(predictor, iphone_samples):
    row = next(s.row for s in iphone_samples if s.row.model == "repvit_m1_1")
    cached = FeatureCache().lookup(row.spec)
    prediction = predictor.predict(row.spec, row.family, cached)
    assert prediction.domain.inside and prediction.domain.unseen_op_types == []
    low, high = prediction.interval_ms
    assert low < prediction.latency_ms < high and prediction.latency_ms > 0
    assert math.isclose(sum(prediction.breakdown_ms.values()), prediction.latency_ms)
    info = prediction.predictor
    assert info.training_rows == len(info.training_ids) == len(iphone_samples)
    assert row.id in info.training_ids and info.version.startswith("1.")
    assert info.cv.folds == len(info.families) and info.cv.rows == len(iphone_samples)
    assert 0 < info.cv.median_ape_pct < 100 and info.cv.spearman > 0  # ranks better than chance
    assert all(cost >= 0 for cost in info.terms.values())


def test_stored_results_become_training_rows():
    spec = SpecRow(hash="h" * 32, model="repvit_m1_1", family="repvit", body={"model": "repvit_m1_1", "formats": ["coreml"]})  # fmt: skip
    result = ResultRow(
        id=7,
        spec_hash=spec.hash,
        model="repvit_m1_1",
        device_class=IPHONE,
        runner_id="r1",
        median_ms=1.25,
        measurement={"device": {"label": "iPhone 12 (ModelBench)"}},
    )
    (row,) = rows_from_results([(result, spec)])
    assert (row.id, row.family, row.device_class, row.latency_ms) == (
        "measured:7",
        "repvit",
        IPHONE,
        1.25,
    )
    assert row.spec.input is not None and row.spec.input.height == 224  # explicit, as trained
    published = next(r for r in published_rows(IPHONE) if r.model == "repvit_m1_1")
    assert row.spec_hash == published.spec_hash  # same graph, so the shipped features apply


def test_predict_command_json(tmp_path):
    result = latbench("predict", "repvit_m1_1", "--device", IPHONE, "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "predicted" and doc["device_class"] == IPHONE
    assert doc["domain"]["inside"] and doc["predictor"]["training_rows"] > 0
    assert doc["interval_ms"][0] < doc["latency_ms"] < doc["interval_ms"][1]


def test_predict_unknown_device_class_is_a_usage_error(tmp_path):
    result = latbench("predict", "repvit_m1_1", "--device", "iphone99", data_dir=tmp_path)
    assert result.returncode == 2 and "--device: unknown device class" in result.stderr


def test_predictor_fit_saves_a_refit_that_predict_uses(tmp_path):
    result = latbench("predictor", "fit", "--device", IPHONE, "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["training_rows"] == len(published_rows(IPHONE)) - len(doc["skipped"])
    assert not any(i.startswith("measured:") for i in doc["training_ids"])  # empty database
    predicted = latbench("predict", "repvit_m1_1", "--device", IPHONE, "--json", data_dir=tmp_path)
    assert json.loads(predicted.stdout)["predictor"]["version"] == doc["version"]


def test_a_stale_entry_is_rekeyed_under_the_current_hash(tmp_path):
    """After a library upgrade an entry is found by graph identity (stale); putting it back
    keeps one entry, under the spec's current hash, found fresh from then on."""
    _graph_with_einsum(tmp_path / "einsum.onnx")
    features = onnx_features(tmp_path / "einsum.onnx")
    spec = parse_spec({"model": "resnet18", "input": {"height": 64, "width": 64}})
    old = {"identity": identity_key(spec), "model": spec.model, "features": features.to_dict()}
    local = tmp_path / "features.json"
    local.write_text(json.dumps({"entries": {"0" * 32: old}}))
    cache = FeatureCache(local=local)
    assert cache.lookup(spec).stale
    cache.put(spec, cache.lookup(spec).features)
    assert not cache.lookup(spec).stale
    saved = json.loads(local.read_text())["entries"]
    assert list(saved) == [spec.content_hash()]


def test_concurrent_first_requests_fit_a_class_once(monkeypatch):
    """32 clients asking GET /devices of a fresh server each fitted every class at once (the
    cache of fits only answers once a fit is done): seconds of CPU each, past their timeouts."""
    from concurrent.futures import ThreadPoolExecutor

    from service.predict import job

    job._fitted.cache_clear()
    fits: list[str] = []

    def counted(device_class, data_dir):
        fits.append(device_class)
        return load_predictor(device_class, data_dir)

    monkeypatch.setattr(job, "load_predictor", counted)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: job.predictor_for("iphone12-class", None), range(8)))
    job._fitted.cache_clear()  # the counted fit must not answer later tests
    assert fits == ["iphone12-class"]
    assert got[0] is not None and all(p is got[0] for p in got)


def test_an_int8_spec_is_outside_the_domain_of_a_float_trained_predictor(predictor, iphone_samples):
    row = next(s.row for s in iphone_samples if s.row.model == "repvit_m1_1")
    cached = FeatureCache().lookup(row.spec)  # the float graph: only the precision differs
    int8 = row.spec.model_copy(update={"precision": Precision.INT8})
    prediction = predictor.predict(int8, row.family, cached)
    assert not prediction.domain.inside and prediction.domain.family_seen
    assert prediction.domain.note.startswith("precision int8: no training rows")
    assert any("precision int8" in note for note in prediction.notes)
