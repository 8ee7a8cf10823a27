"""Which method a class is offered (the predictor only where it beats every baseline, else the
best baseline, named, else nothing), predictors shipped as data and only read by the service
(no fit at start, keys matching the data they were fitted on), and the one routing decision
per requested class (measure / predict / refuse)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from exporters.errors import NotFoundError, SpecError
from exporters.spec import parse_spec
from service.app import create_app
from service.predict import cv, job, shipped
from service.predict.costmodel import CostModel, Proportional
from service.predict.cv import Case, Evaluation
from service.predict.fitting import PREDICTOR, offered
from service.predict.routing import Route, decide, refusal
from service.predict.training import device_classes
from service.warmup import settle
from tests.service.doubles import RecordingDispatcher


def evaluation(errors_pct: dict[str, float]) -> Evaluation:
    """Family-held-out cases with the given abs % errors (actual 1 ms)."""
    found = tuple(
        Case(row, f"family:{row}", 1 + error / 100, 1.0, True) for row, error in errors_pct.items()
    )
    return Evaluation(found, tuple(True for _ in found))


def test_the_predictor_is_offered_only_when_it_beats_every_baseline():
    rows = {"a": 10.0, "b": 20.0, "c": 30.0}
    better = {"a": 5.0, "b": 6.0, "c": 7.0}
    assert offered({PREDICTOR: evaluation(better), "macs": evaluation(rows)})[0] == PREDICTOR
    method, why = offered(
        {PREDICTOR: evaluation(rows), "macs": evaluation(better), "params": evaluation(rows)}
    )
    assert method == "macs" and "predictor loses to macs 6.0% vs 20.0%" in why
    # the host-CPU baseline is compared on the rows it covers, never offered: nothing wins
    method, why = offered(
        {PREDICTOR: evaluation(rows), "host-cpu": evaluation({"a": 1.0, "b": 1.0})}
    )
    assert method is None and "loses to host-cpu" in why


def test_a_class_whose_predictor_loses_is_offered_its_best_baseline_named():
    """cpu-arm64: the fitted terms err 44% held out, latency ∝ MACs 29% (shipped data)."""
    entry = shipped.shipped_entries()["cpu-arm64"]
    assert entry["methods"][PREDICTOR]["median_ape_pct_all"] > entry["methods"]["macs"]["median_ape_pct_all"]  # fmt: skip
    predictor = shipped.load_predictor("cpu-arm64", None)
    assert predictor.label == "baseline ∝ macs" and isinstance(predictor.model, Proportional)
    info = predictor.info()
    assert "predictor loses to macs" in info.offered_because
    assert info.method.startswith("baseline ∝ macs") and PREDICTOR in info.cv.baselines
    phone = shipped.load_predictor("iphone12-class", None)
    assert phone.label.startswith("predictor (") and isinstance(phone.model, CostModel)


def test_a_class_where_nothing_wins_offers_no_prediction(tmp_path):
    entry = dict(shipped.shipped_entries()["cpu-arm64"], predictor=None, reason="all lose")
    path = shipped.saved_path(tmp_path, shipped.parse_device_class("cpu-arm64"))
    path.parent.mkdir(parents=True)
    path.write_text(__import__("json").dumps(entry))
    with pytest.raises(NotFoundError, match="no prediction offered for cpu-arm64.*all lose"):
        shipped.load_predictor("cpu-arm64", tmp_path)
    job._loaded.cache_clear()
    assert not job.has_predictor("cpu-arm64", tmp_path)
    job._loaded.cache_clear()


def test_shipped_predictors_are_keyed_by_the_data_they_were_fitted_on():
    """A change to the published rows, the features or the library versions without
    `latbench predictor fit` fails here instead of serving a predictor of other data."""
    entries = shipped.shipped_entries()
    assert set(entries) == {c.value for c in device_classes()}
    for name, entry in entries.items():
        fit = shipped.fit_published(name)
        assert entry["key"] == shipped.training_key(fit.samples), f"{name}: run `latbench predictor fit`"  # fmt: skip
        assert entry["library_versions"] == shipped.versions()


@pytest.fixture
def fits(monkeypatch) -> list[str]:
    """Every fit or cross-validation anyone starts, counted."""
    counted: list[str] = []
    cost_fit, proportional_fit, evaluate = CostModel.fit, Proportional.fit, cv.evaluate

    def count(name, real):
        def counting(*args, **kwargs):
            counted.append(name)
            return real(*args, **kwargs)

        return counting

    monkeypatch.setattr(CostModel, "fit", count("cost", cost_fit))
    monkeypatch.setattr(Proportional, "fit", count("proportional", proportional_fit))
    monkeypatch.setattr(cv, "evaluate", count("evaluate", evaluate))
    job._loaded.cache_clear()
    yield counted
    job._loaded.cache_clear()


def test_an_api_process_starts_and_answers_devices_without_fitting(settings, fits):
    import gc

    settle(settings)  # what each API process of `latbench serve` runs once started
    gc.unfreeze()
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        predictors = client.get("/devices").json()["predictors"]
    assert {p["device_class"] for p in predictors} == {c.value for c in device_classes()}
    assert fits == []


def test_an_install_without_the_shipped_files_says_so_once(tmp_path, monkeypatch, caplog):
    """A wheel that lost its package data is a broken install: it warns, once per file, instead
    of abstaining (predictors) or exporting every training row anew (features) in silence."""
    from service.predict import featurecache, packaged

    monkeypatch.setattr(packaged, "data_path", lambda name: tmp_path / name)
    monkeypatch.setattr(featurecache, "data_path", packaged.data_path)
    monkeypatch.setattr(shipped, "data_path", packaged.data_path)
    with caplog.at_level("WARNING", logger=packaged.__name__):
        assert shipped.shipped_entries() == {} and shipped.shipped_entries() == {}
        assert featurecache.FeatureCache().lookup(parse_spec("mobileone_s0")) is None
        featurecache.FeatureCache()
    missing = [r.getMessage() for r in caplog.records]
    assert len(missing) == 2, missing
    assert str(tmp_path / shipped.SHIPPED) in missing[0] and "predictions abstain" in missing[0]
    assert str(tmp_path / featurecache.SHIPPED) in missing[1] and "computed anew" in missing[1]


def test_routing_decides_once_per_class():
    def route(**given):
        base = {
            "requested": None,
            "upload": False,
            "measured_here": False,
            "offers_prediction": True,
            "predicts_here": True,
        }
        return decide("iphone12-class", **{**base, **given}).route

    assert route() is Route.PREDICT  # nobody here measures it, a predictor covers it
    assert route(measured_here=True) is Route.MEASURE  # runners registered, online or not
    assert route(measured_here=True, requested=True) is Route.PREDICT  # asked for
    assert route(requested=False) is Route.MEASURE
    assert route(offers_prediction=False) is Route.MEASURE  # queued for a runner to come
    assert route(requested=True, offers_prediction=False) is Route.REFUSE
    assert route(requested=True, upload=True) is Route.REFUSE
    assert route(upload=True) is Route.MEASURE
    assert route(predicts_here=False) is Route.MEASURE
    refused = decide(
        "cpu-arm64",
        requested=True,
        upload=False,
        measured_here=False,
        offers_prediction=False,
        predicts_here=True,
    )
    error = refusal([refused])
    assert isinstance(error, SpecError) and error.field == "predict"
    assert "cpu-arm64: cpu-arm64 offers no prediction" in str(error)
