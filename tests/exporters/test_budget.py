"""Work budgets: a spec's cost is estimated on the meta device (nothing of its size allocated)
and a spec over a limit is refused naming the budget; ordinary models pass with exact figures."""

from __future__ import annotations

import psutil
import pytest
import torch

from exporters.analysis import analyse
from exporters.budget import WorkBudget, check, estimate
from exporters.errors import SpecError
from exporters.spec import parse_spec
from exporters.zoo.registry import build, resolve

HUGE_FASTVIT = {
    "model": "fastvit_t8",
    "overrides": {"layers": [32, 32, 32, 32], "embed_dims": [2048] * 4, "mlp_ratios": [8] * 4},
}
BIG_INPUT = {"model": "resnet50", "input": {"batch": 64, "height": 1024, "width": 1024}}


@pytest.mark.parametrize(
    "spec, budget",
    [
        (HUGE_FASTVIT, "max_params"),
        ("vit_gigantic_patch14_clip_224", "max_params"),
        (BIG_INPUT, "max_macs"),
    ],
)
def test_the_issues_cases_are_refused_naming_the_budget(spec, budget):
    rss = psutil.Process().memory_info().rss
    with pytest.raises(SpecError) as info:
        check(resolve(parse_spec(spec)), WorkBudget())
    grown = psutil.Process().memory_info().rss - rss
    assert budget in str(info.value) and f"LATBENCH_{budget.upper()}" in str(info.value)
    assert info.value.field == "model"
    assert grown < 2 * 2**30, f"the estimate itself took {grown / 2**30:.1f} GiB"


def test_activation_budget_is_its_own_limit():
    small = WorkBudget(max_activation_bytes=1_000_000)
    with pytest.raises(SpecError, match="max_activation_bytes"):
        check(resolve(parse_spec("resnet18")), small)


def test_the_estimate_matches_the_built_model():
    resolved = resolve(parse_spec("resnet18"))
    cost = check(resolved, WorkBudget())
    model = build(resolved)
    real = analyse(model, torch.zeros(resolved.input.shape))
    assert cost.params == real.params
    assert cost.macs == real.macs
    assert (
        cost.activation_bytes and cost.activation_bytes > 4 * resolved.input.batch * 3 * 224 * 224
    )


def test_estimates_are_cached_per_spec():
    resolved = resolve(parse_spec("mobileone_s0"))
    assert estimate(resolved) is estimate(resolve(parse_spec("mobileone_s0")))
