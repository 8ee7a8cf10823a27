"""The predictor's quality as docs/predict.md promises it, recomputed: per device class, the
method offered, its nested leave-one-family-out error and Spearman inside the domain, its error
over every held-out row, and the coverage of its intervals inside and outside the domain.

Deterministic (no sampling: the same rows, features and splits every run) and CPU-bound
arithmetic over the shipped features (a few seconds). Margins: a harmless change (a rounding, a
reordered sum) moves no figure by more than these; a broken term does (see the report that
added this test for the breaks it caught).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.predict.fitting import PREDICTOR
from service.predict.shipped import fit_published

DOC = Path(__file__).parents[2] / "docs" / "predict.md"
ERROR_MARGIN_PCT = 2.0  # points of median absolute % error
RHO_MARGIN = 0.03
COVERAGE_MARGIN = 0.05


def promised() -> dict[str, dict[str, str]]:
    """The rows of the marked table in docs/predict.md, by class."""
    text = DOC.read_text()
    block = text.split("<!-- predictor-quality")[1].split("<!-- end predictor-quality")[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def number(cell: str) -> float:
    return float(re.match(r"[\d.]+", cell).group())


PROMISED = promised()


@pytest.fixture(scope="module", params=sorted(PROMISED))
def measured(request):
    fit = fit_published(request.param)
    name = fit.method or "none"
    return request.param, fit, fit.evaluations[name].summary() if fit.method else None


def test_the_offered_method_and_its_figures_hold(measured):
    device_class, fit, summary = measured
    doc = PROMISED[device_class]
    assert fit.label == doc["offered"], fit.reason
    assert summary["rows"] == int(doc["rows"]) and summary["folds"] == int(doc["families"])
    assert summary["median_ape_pct"] <= number(doc["error inside"]) + ERROR_MARGIN_PCT
    assert summary["median_ape_pct_all"] <= number(doc["error all"]) + ERROR_MARGIN_PCT
    assert summary["spearman"] >= number(doc["ρ inside"]) - RHO_MARGIN
    assert summary["coverage_inside"] >= number(doc["coverage inside"]) / 100 - COVERAGE_MARGIN
    assert summary["coverage_outside"] >= number(doc["coverage outside"]) / 100 - COVERAGE_MARGIN


def test_an_offered_predictor_beats_every_baseline_by_the_documented_margin(measured):
    _, fit, _ = measured
    assert fit.method is not None, fit.reason  # docs/predict.md offers a method for every class
    errors = {name: ev.summary()["median_ape_pct_all"] for name, ev in fit.evaluations.items()}
    if fit.method == PREDICTOR:  # it halves the MACs baseline's error where it is offered
        assert errors[PREDICTOR] <= errors["macs"] / 2 + ERROR_MARGIN_PCT, errors
    else:  # the baseline offered beats the predictor
        assert errors[fit.method] < errors[PREDICTOR], errors
