from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporters.errors import SpecError
from service.gate import Verdict, decide
from tests.user_package import write_sides, write_user_package

LATBENCH = str(Path(sys.executable).with_name("latbench"))


@pytest.mark.parametrize(
    "ratio, ci, verdict",
    [
        (1.20, (1.15, 1.25), Verdict.REGRESSION),  # slower beyond 5 %, CI excludes 1
        (1.20, (0.95, 1.45), Verdict.INCONCLUSIVE),  # slower beyond 5 %, but could be noise
        (1.03, (1.01, 1.05), Verdict.PASS),  # really slower, within the threshold
        (0.90, (0.85, 0.95), Verdict.PASS),  # faster
        (1.05, (1.04, 1.06), Verdict.PASS),  # exactly at the limit
    ],
)
def test_regression_needs_threshold_and_ci_excluding_one(ratio, ci, verdict):
    assert decide(ratio, ci, 0.05).verdict is verdict


@pytest.mark.parametrize(
    "ratio, ci, threshold, field",
    [
        (1.0, (0.9, 1.1), -0.1, "threshold"),
        (1.0, (1.1, 1.2), 0.05, "ci95"),
        (1.0, (-1.0, 1.2), 0.05, "ci95"),
    ],
)
def test_bad_input_names_the_field(ratio, ci, threshold, field):
    with pytest.raises(SpecError) as info:
        decide(ratio, ci, threshold)
    assert info.value.field == field


@pytest.mark.parametrize(
    "doc, code",
    [
        ({"ratio": 1.3, "ci95": [1.2, 1.4]}, 1),
        ({"ratio": 1.3, "ci95": [0.9, 1.7]}, 3),
        ({"ratio": 1.0, "ci95": [0.98, 1.02]}, 0),
        ({"ratio": "fast"}, 2),
    ],
)
def test_cli_exit_codes(tmp_path, doc, code):
    path = tmp_path / "cmp.json"
    path.write_text(json.dumps(doc))
    done = subprocess.run(
        [LATBENCH, "gate", str(path), "--threshold", "0.05"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, done.stderr


def test_cpu_metric_gates_on_the_thread_cpu_time_ratio():
    from service.gate import decide_from_json

    doc = {"ratio": 1.30, "ci95": [0.9, 1.8], "cpu_ratio": {"ratio": 1.01, "ci95": [1.0, 1.02]}}
    assert decide_from_json(json.dumps(doc), 0.05).verdict is Verdict.INCONCLUSIVE
    assert decide_from_json(json.dumps(doc), 0.05, metric="cpu").verdict is Verdict.PASS
    with pytest.raises(SpecError) as info:
        decide_from_json(json.dumps({**doc, "cpu_ratio": None}), 0.05, metric="cpu")
    assert info.value.field == "metric"


# --- the decision layer over many pairs --------------------------------------------------------


def test_family_wise_level_is_bonferroni_and_the_interval_matches_the_devices_one():
    from devices.stats import ratio_ci
    from service.gate import pair_confidence, ratio_interval

    estimates = [1.02, 0.99, 1.01, 1.00, 0.98, 1.03]
    assert pair_confidence(1) == 0.95 and pair_confidence(10) == pytest.approx(0.995)
    ours, theirs = ratio_interval(estimates, 0.95), ratio_ci(estimates)
    assert ours.ratio == pytest.approx(theirs.ratio)
    assert ours.ci == pytest.approx(theirs.ci95, rel=1e-4)
    wider = ratio_interval(estimates, pair_confidence(10))
    assert wider.ci[0] < ours.ci[0] and wider.ci[1] > ours.ci[1]


def _sourced(name):
    from exporters.artifacts import Artifact
    from exporters.formats import ExportFormat, Precision
    from exporters.sources import Sourced

    artifact = Artifact(f"{name:0<32}-onnx-fp32", ExportFormat.ONNX, Precision.FP32, Path(name), {})
    return Sourced(name, name, artifact, True, False, {"rel_error": 1e-16})


def _scripted(rounds):
    """A stand-in for compare() that returns scripted per-session-pair ratios, round by round."""
    from service.gate.compare import PairComparison

    calls = []

    def compare_fn(baseline, candidate, device, settings, *, server=None, force=False):
        wall = rounds[len(calls)]
        calls.append(settings.ab_reloads)
        assert len(wall) == settings.ab_reloads
        return PairComparison(device.value, "double", (1.0,) * 4, (1.1,) * 4, tuple(wall), None)

    return compare_fn, calls


def _pair(threshold=0.05):
    from exporters.formats import DeviceClass
    from service.gate.run import Pair

    return Pair("net", DeviceClass.CPU_X86_64, _sourced("a"), _sourced("b"), threshold)


def test_inconclusive_pair_samples_more_session_pairs_before_deciding():
    from devices.settings import MeasureSettings
    from service.gate.run import Budget, run_gate

    noisy = [1.30, 0.95, 1.25, 1.00, 1.20, 0.97]  # slower on average, but could be noise
    steady = [1.12, 1.10, 1.11, 1.13, 1.12, 1.11]
    compare_fn, calls = _scripted([noisy, steady])
    outcome = run_gate([_pair()], settings=MeasureSettings(), budget=Budget(6, 24),
                       compare_fn=compare_fn)  # fmt: skip
    assert calls == [6, 6]
    assert outcome.pairs[0].comparison.reloads == 12
    assert outcome.verdict is Verdict.REGRESSION


def test_inconclusive_at_the_budget_says_how_much_more_it_would_need():
    from devices.settings import MeasureSettings
    from service.gate.run import Budget, run_gate

    noisy = [1.30, 0.95, 1.25, 1.00, 1.20, 0.97]
    noisier = [1.40, 0.85, 1.35, 0.88, 1.32, 0.86]
    compare_fn, calls = _scripted([noisy, noisier])
    outcome = run_gate([_pair()], settings=MeasureSettings(), budget=Budget(6, 12),
                       compare_fn=compare_fn)  # fmt: skip
    pair = outcome.pairs[0]
    assert calls == [6, 6] and outcome.verdict is Verdict.INCONCLUSIVE
    assert pair.reloads_needed is not None and pair.reloads_needed > 12
    from service.gate.report import markdown

    assert f"about {pair.reloads_needed} session pairs" in markdown(outcome)


def test_a_regression_is_confirmed_by_a_second_round_before_it_fails_the_build():
    from devices.settings import MeasureSettings
    from service.gate.run import Budget, run_gate

    fluke = [1.06, 1.05, 1.07, 1.04, 1.06, 1.05]  # one round that looks 5.5% slower
    same = [0.98, 1.01, 0.97, 1.00, 0.99, 1.02]
    compare_fn, calls = _scripted([fluke, same])
    outcome = run_gate([_pair()], settings=MeasureSettings(), budget=Budget(6, 24, confirm=12),
                       compare_fn=compare_fn)  # fmt: skip
    assert calls == [6, 6] and outcome.verdict is Verdict.PASS


def test_many_pairs_widen_each_interval_so_a_marginal_pair_stops_failing():
    from devices.settings import MeasureSettings
    from service.gate.run import Budget, run_gate

    marginal = [1.10, 1.00, 1.14, 1.03, 1.11, 1.04]  # excludes 1 at 95%, not at 99.75%
    one, _ = _scripted([marginal])
    alone = run_gate([_pair()], settings=MeasureSettings(), budget=Budget(6, 6), compare_fn=one)
    many_fn, _ = _scripted([marginal] + [[1.0, 1.01, 0.99, 1.0, 1.01, 0.99]] * 19)
    many = run_gate([_pair()] * 20, settings=MeasureSettings(), budget=Budget(6, 6),
                    compare_fn=many_fn)  # fmt: skip
    assert alone.verdict is Verdict.REGRESSION
    assert many.pairs[0].decision.verdict is Verdict.INCONCLUSIVE
    assert many.pairs[0].decision.confidence == pytest.approx(0.9975)
    assert "Bonferroni over 20 pair(s)" in many.rule


# --- the CLI on real models, measured on this host ----------------------------------------------


def _gate(args, cwd, tmp_path):
    env = {**os.environ, "LATBENCH_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([LATBENCH, "gate", *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_python_factory_in_a_user_package_is_gated_on_this_host(tmp_path):
    write_sides(tmp_path, base=1, cand=6)
    done = _gate(["--baseline", "base.json", "--candidate", "cand.json", "--json"], tmp_path,
                 tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    pair = doc["pairs"][0]
    assert pair["verdict"] == "regression" and pair["ratio"] > 1.05 and pair["ci"][0] > 1
    assert pair["baseline"]["reparam"]["note"].startswith("reparam: proven")
    assert pair["baseline"]["artifact_key"] != pair["candidate"]["artifact_key"]


def _commit(repo, message):
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=repo, check=True)


@pytest.mark.slow
def test_config_gates_a_branch_against_its_merge_base(tmp_path):
    repo = tmp_path / "repo"
    write_user_package(repo, blocks=1)
    (repo / "latbench.toml").write_text(
        '[gate]\nthreshold = "5%"\nbaseline_ref = "main"\ndevices = ["cpu"]\n\n'
        '[[gate.models]]\nname = "usernet"\nref = "python:usernets.nets:build"\n'
        "kwargs = {width = 16}\ninput = {height = 32, width = 32}\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    _commit(repo, "a model")
    subprocess.run(["git", "checkout", "-qb", "feature"], cwd=repo, check=True)
    write_user_package(repo, blocks=6)  # the pull request adds blocks
    _commit(repo, "more blocks")
    done = _gate(["--config", "latbench.toml", "--markdown", str(tmp_path / "pr.md")], repo,
                 tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    comment = (tmp_path / "pr.md").read_text()
    assert "| usernet | cpu-x86_64 |" in comment.replace("cpu-arm64", "cpu-x86_64")
    assert "regression" in comment and "merge base" in comment
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True,
                               text=True, check=True)  # fmt: skip
    assert len(worktrees.stdout.strip().splitlines()) == 1  # the temporary one is gone


def test_a_pass_on_a_wide_interval_is_sampled_more_before_it_counts():
    from devices.settings import MeasureSettings
    from service.gate.run import Budget, run_gate

    wide = [1.30, 0.80, 1.25, 0.85, 1.20, 0.90]  # point under 5%, CI reaching past 10%
    steady = [1.10, 1.09, 1.11, 1.10, 1.12, 1.09]
    compare_fn, calls = _scripted([wide, steady, steady])
    outcome = run_gate([_pair()], settings=MeasureSettings(), budget=Budget(6, 24),
                       compare_fn=compare_fn)  # fmt: skip
    assert decide(1.0, (0.85, 1.2), 0.05).verdict is Verdict.PASS
    assert not decide(1.0, (0.85, 1.2), 0.05).settled and decide(1.0, (0.98, 1.02), 0.05).settled
    assert len(calls) >= 2 and outcome.verdict is Verdict.REGRESSION


@pytest.mark.parametrize(
    "args, field",
    [
        ([], "error: candidate:"),
        (["--candidate", "resnet18"], "error: baseline_ref:"),
        (["--candidate", "resnet18", "--baseline", "resnet18", "--device", "toaster"],
         "error: --device:"),
        (["--candidate", "resnet18", "--baseline", "resnet18", "--threshold", "lots"],
         "error: --threshold:"),
        (["--config", "absent.toml"], "'--config'"),
    ],
)  # fmt: skip
def test_a_gate_that_cannot_run_exits_2_naming_the_field(tmp_path, args, field):
    done = _gate(args, tmp_path, tmp_path)
    assert done.returncode == 2
    assert field in done.stderr and done.stderr.startswith("error: ")


PREDICTED = {"kind": "predicted", "ratio": 1.2, "ci95": [1.1, 1.3], "reloads": 1,
             "a": {"median": 1.0}, "b": {"median": 1.2}, "per_reload_ratios": [1.2]}  # fmt: skip


def test_a_predicted_result_is_refused_unless_allowed_wherever_the_gate_reads_one():
    from devices.results import ComparisonRecord
    from exporters.formats import DeviceClass
    from service.gate import decide_from_json
    from service.gate.compare import from_record

    record = ComparisonRecord.model_validate(PREDICTED)
    with pytest.raises(SpecError, match="--allow-predicted") as info:
        from_record(record, DeviceClass.CPU_X86_64)
    assert info.value.field == "kind"
    allowed = from_record(record, DeviceClass.CPU_X86_64, allow_predicted=True)
    assert allowed.wall == (1.2,)
    with pytest.raises(SpecError, match="predicted"):
        decide_from_json(json.dumps(PREDICTED), 0.05)
    assert decide_from_json(json.dumps(PREDICTED), 0.05, allow_predicted=True).ratio == 1.2
    measured = from_record(ComparisonRecord.model_validate({**PREDICTED, "kind": "measured"}),
                           DeviceClass.CPU_X86_64)  # fmt: skip
    assert measured.reloads == 1


def test_the_gate_cli_refuses_a_predicted_document(tmp_path):
    document = tmp_path / "predicted.json"
    document.write_text(json.dumps(PREDICTED))
    refused = subprocess.run(
        [LATBENCH, "gate", str(document)], check=False, capture_output=True, text=True
    )
    allowed = subprocess.run(
        [LATBENCH, "gate", str(document), "--allow-predicted"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "kind" in refused.stderr, refused.stderr
    assert allowed.returncode == 1, allowed.stderr  # 1.2 [1.1, 1.3]: a regression
