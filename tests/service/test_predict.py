"""Latency predictors: leave-one-family-out CV, the training domain and abstention outside it,
the method offered only when it beats its baselines, shipped predictors read (never fitted) by
the service, stored results as training rows, and the two commands. Features come from the
shipped cache: nothing is exported here."""

from __future__ import annotations

import json
import math
import time

import jsonschema_rs
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporters.features import onnx_features
from exporters.formats import Precision
from exporters.spec import parse_spec
from service.cli.schema import schema_of
from service.db.tables import ResultRow, SpecRow
from service.predict import cv
from service.predict.cv import cases, fit_candidate
from service.predict.featurecache import CachedFeatures, FeatureCache, identity_key
from service.predict.fitting import samples_for
from service.predict.predictor import OutOfDomainError
from service.predict.shipped import load_predictor
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


def test_each_split_trains_without_the_rows_it_predicts(iphone_samples):
    """A family split trains on every other family; an op-type split trains on families that
    have no row with the op, so each of its cases is outside the domain."""
    trained_on: dict[frozenset[str], set[str]] = {}
    fit = fit_candidate("macs+nodes")

    def recording_fitter(train):
        trained_on[frozenset(s.row.id for s in train)] = {s.row.family for s in train}
        return fit(train)

    found = cases(iphone_samples, recording_fitter)
    by_id = {s.row.id: s for s in iphone_samples}
    family_found = [c for c in found if c.split.startswith("family:")]
    assert sorted(c.row_id for c in family_found) == sorted(by_id)  # every row once, held out
    splits = list(cv.splits(iphone_samples))
    assert set(trained_on) == {frozenset(s.row.id for s in train) for _, train, _ in splits}
    for split, train, test in splits:
        families = {s.row.family for s in train}
        assert not families & {s.row.family for s in test}
        if split.startswith("op:"):
            for op in split.removeprefix("op:").split("+"):
                assert all(op not in s.ops for s in train) and all(op in s.ops for s in test)
    assert all(not c.inside for c in found if c.split.startswith("op:"))
    seen_elsewhere = {
        c.row_id: by_id[c.row_id].ops
        <= frozenset().union(
            *(s.ops for s in iphone_samples if s.row.family != by_id[c.row_id].row.family)
        )
        for c in family_found
    }
    assert {c.row_id: c.inside for c in family_found} == seen_elsewhere


def test_an_interval_covers_a_new_group_at_its_level_with_eight_groups():
    """A nine-family class is calibrated on eight held-out families in each nested fold: the
    bound must cover every row of a ninth, exchangeable family at least ``LEVEL`` of the time
    however skewed the errors. Families are simulated (seeded): a skewed family bias shared by
    its rows plus each row's noise. The rank rule gives 8/9; a two-tailed rule clamped to the
    extremes gave about 1 - 2/9, under the level."""
    rng = np.random.default_rng(20)
    trials, rows = 4000, 3
    errors = rng.exponential(0.5, (trials, 9, 1)) - 0.3 + rng.normal(0, 0.1, (trials, 9, rows))
    covered = 0
    for families in errors:
        low, high = cv.log_interval([list(f) for f in families[:8]])
        covered += bool(((low <= families[8]) & (families[8] <= high)).all())
    assert covered / trials >= cv.LEVEL, covered / trials


def test_a_pool_with_too_few_groups_gives_no_bound_of_its_own():
    """ceil((n + 1) * 0.8) exceeds n below 4 groups: such a pool (cpu-arm64's 9 inside cases
    come from 3 families) gives no interval and the inside one comes from every family held
    out; where a pool has groups enough, its rank-th largest |log-ratio| is the bound."""
    assert [cv.conformal_rank(n) for n in (3, 4, 8, 9, 20)] == [None, 4, 8, 8, 17]
    assert cv.log_interval([[0.1], [0.2], [0.3]]) is None

    def family(name: str, ratio: float, inside: bool) -> list[cv.Case]:
        return [cv.Case(f"{name}{i}", f"family:{name}", 1.0, ratio, inside) for i in range(2)]

    found = [c for k in range(3) for c in family(f"in{k}", 1.1, True)]
    found += [c for k in range(6) for c in family(f"out{k}", 1.5 + k, False)]
    calibration = cv.calibrate(found)
    eighth = math.log(5.5)  # 8th of the 9 family scores (log 1.1 x3, log 1.5 ... log 6.5)
    assert calibration.inside == pytest.approx((-eighth, eighth))
    assert calibration.inside_cases == 6


def _graph_with_einsum(path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 16])
    node = helper.make_node("Einsum", ["x"], ["y"], equation="bij->bji")
    graph = helper.make_graph([node], "einsum", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_an_unseen_op_abstains_by_default_and_is_wide_when_allowed(predictor, tmp_path):
    _graph_with_einsum(tmp_path / "einsum.onnx")
    cached = CachedFeatures(onnx_features(tmp_path / "einsum.onnx"), stale=False)
    spec = parse_spec({"model": "resnet18", "input": {"height": 64, "width": 64}})
    with pytest.raises(OutOfDomainError) as abstained:
        predictor.predict(spec, "resnet", cached)
    message = str(abstained.value)
    assert (
        abstained.value.domain.unseen_op_types == ["Einsum"] and not abstained.value.domain.inside
    )
    assert "Einsum" in message and "family 'resnet', not in training" in message
    assert f"runner of {IPHONE}" in message and "--allow-out-of-domain" in message

    allowed = predictor.predict(spec, "resnet", cached, allow_out_of_domain=True)
    assert allowed.kind == "predicted" and not allowed.domain.inside
    assert any("outside the training domain" in note for note in allowed.notes)
    assert allowed.interval_achieved == predictor.cv.coverage_outside
    assert allowed.interval_level == 0.8
    low, high = allowed.interval_ms
    inside_low, inside_high = predictor.calibration.inside
    outside_low, outside_high = predictor.calibration.outside
    # never narrower than a known graph's: the outside interval is the hull of the inside one
    # and those the outside cases earned (equal on iPhone, whose worst family was inside)
    assert outside_low <= inside_low < 0 < inside_high <= outside_high
    assert (low, high) == pytest.approx(
        (allowed.latency_ms * math.exp(outside_low), allowed.latency_ms * math.exp(outside_high))
    )


def test_a_training_spec_is_inside_and_carries_its_error(predictor, iphone_samples):
    row = next(s.row for s in iphone_samples if s.row.model == "repvit_m1_1")
    cached = FeatureCache().lookup(row.spec)
    prediction = predictor.predict(row.spec, row.family, cached)
    assert prediction.domain.inside and prediction.domain.unseen_op_types == []
    low, high = prediction.interval_ms
    assert low < prediction.latency_ms < high and prediction.latency_ms > 0
    assert prediction.interval_achieved == predictor.cv.coverage_inside
    assert math.isclose(sum(prediction.breakdown_ms.values()), prediction.latency_ms)
    info = prediction.predictor
    assert info.training_rows == len(info.training_ids) == len(iphone_samples)
    assert row.id in info.training_ids and info.version.startswith("3.")
    assert info.cv.folds == len(info.families) and info.cv.rows == len(iphone_samples)
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
    jsonschema_rs.validate(schema_of("predict"), doc)  # the API's shape of a predicted result
    assert doc["kind"] == "predicted" and doc["device_class"] == IPHONE
    assert doc["domain"]["inside"] and doc["predictor"]["training_rows"] > 0
    latency = doc["latency_ms"]
    assert latency["interval"][0] < latency["median"] < latency["interval"][1]
    assert latency["level"] == 0.8 and 0 < latency["achieved"] <= 1


def test_predict_unknown_device_class_is_a_usage_error(tmp_path):
    result = latbench("predict", "repvit_m1_1", "--device", "iphone99", data_dir=tmp_path)
    assert result.returncode == 2 and "--device: unknown device class" in result.stderr


def test_predictor_fit_device_saves_a_refit_that_predict_uses(tmp_path):
    result = latbench("predictor", "fit", "--device", IPHONE, "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)["classes"][IPHONE]
    offered = entry["predictor"]
    assert len(offered["training_ids"]) == len(published_rows(IPHONE)) - len(entry["skipped"])
    assert not any(i.startswith("measured:") for i in offered["training_ids"])  # empty database
    predicted = latbench("predict", "repvit_m1_1", "--device", IPHONE, "--json", data_dir=tmp_path)
    assert json.loads(predicted.stdout)["predictor"]["version"] == offered["version"]


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


def test_concurrent_first_requests_load_a_class_once(monkeypatch):
    """8 threads asking for a class's predictor in a fresh process: one read of it."""
    from concurrent.futures import ThreadPoolExecutor

    from service.predict import job

    job._loaded.cache_clear()
    loads: list[str] = []

    def counted(device_class, data_dir):
        loads.append(device_class)
        time.sleep(0.2)  # a slow read: without the lock every thread would start one
        return load_predictor(device_class, data_dir)

    monkeypatch.setattr(job, "load_predictor", counted)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: job.predictor_for("iphone12-class", None), range(8)))
    job._loaded.cache_clear()  # the counted load must not answer later tests
    assert loads == ["iphone12-class"]
    assert got[0] is not None and all(p is got[0] for p in got)


def test_adapting_rescales_the_published_rows_to_those_measured_here(iphone_samples):
    """Rows measured on a phone twice as slow as the published one: the published rows are
    rescaled by that factor and the measured rows are added, not the reverse."""
    from dataclasses import replace

    from service.predict.cv import choose, latencies
    from service.predict.fitting import adapt

    measured = [
        replace(s, row=replace(s.row, id=f"measured:{n}", latency_ms=s.row.latency_ms * 2))
        for n, s in enumerate(iphone_samples[:5])
    ]
    adapted = adapt(iphone_samples, measured)
    assert [s.row.id for s in adapted] == [s.row.id for s in iphone_samples + measured]
    prior = fit_candidate(choose(iphone_samples))(iphone_samples)
    expected = math.exp(
        sum(math.log(s.row.latency_ms / prior(s.vector)) for s in measured) / len(measured)
    )
    ratios = latencies(adapted[: len(iphone_samples)]) / latencies(iphone_samples)
    assert ratios == pytest.approx([expected] * len(iphone_samples))
    assert 1.5 < expected < 2.7  # about the factor the measured rows were slower by
    assert adapt(iphone_samples, []) == iphone_samples


def test_an_int8_spec_abstains_on_a_float_trained_predictor(predictor, iphone_samples):
    row = next(s.row for s in iphone_samples if s.row.model == "repvit_m1_1")
    cached = FeatureCache().lookup(row.spec)  # the float graph: only the precision differs
    int8 = row.spec.model_copy(update={"precision": Precision.INT8})
    with pytest.raises(OutOfDomainError, match="precision int8: no training rows"):
        predictor.predict(int8, row.family, cached)
    prediction = predictor.predict(int8, row.family, cached, allow_out_of_domain=True)
    assert not prediction.domain.inside and prediction.domain.family_seen
    assert prediction.domain.unseen_op_types == []  # the precision alone puts it outside
    assert any("precision int8" in note for note in prediction.notes)


def test_predict_command_abstains_outside_the_domain_unless_allowed(tmp_path):
    """ghostnet_130 (features shipped with the GPU/CPU rows) has op types no iPhone row has."""
    abstained = latbench("predict", "ghostnet_130", "--device", IPHONE, "--json", data_dir=tmp_path)
    assert abstained.returncode == 2 and "allow_out_of_domain:" in abstained.stderr
    doc = json.loads(abstained.stdout)
    assert doc["kind"] == "abstained" and not doc["inside"] and doc["family"] == "ghostnet"
    assert "HardSigmoid" in doc["unseen_op_types"] and "--allow-out-of-domain" in doc["reason"]

    allowed = latbench(
        "predict", "ghostnet_130", "--device", IPHONE, "--allow-out-of-domain", "--json",
        data_dir=tmp_path,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    prediction = json.loads(allowed.stdout)
    predictor = load_predictor(IPHONE, None)
    low, high = predictor.calibration.outside
    latency = prediction["latency_ms"]
    median = latency["median"]
    assert latency["interval"] == pytest.approx([median * math.exp(low), median * math.exp(high)])
    assert latency["achieved"] == pytest.approx(predictor.cv.coverage_outside)
    assert not (tmp_path / "artifacts").exists()  # shipped features: nothing was exported
