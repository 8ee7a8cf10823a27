"""`latbench parc-forms`: measures on the real ONNX Runtime runner, records the plan in the spec
and exports that spec."""

import json

import pytest
from typer.testing import CliRunner

from exporters.spec import parse_spec
from service.cli import app


def test_a_model_without_parc_layers_is_a_usage_error():
    result = CliRunner().invoke(app, ["parc-forms", "resnet18", "--no-export"])
    assert result.exit_code == 2
    assert "resnet18 has no ParC layers" in result.output


@pytest.mark.slow
def test_parc_forms_measures_every_layer_and_exports_the_chosen_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path))
    spec_file = tmp_path / "spec.json"  # 128 px: ParC layers at 16, 8 and 4, kernels interpolated
    spec_file.write_text(
        json.dumps({"model": "parcnet_xs", "input": {"height": 128, "width": 128}})
    )
    args = ["parc-forms", str(spec_file), "--reloads", "2", "--blocks", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    plan = data["plan"]
    assert len(plan["forms"]) == 28 and len(plan["timings"]) == 6  # 3 stages x (H, W)
    assert {t["size"] for t in plan["timings"]} == {16, 8, 4}
    assert data["device"]["runner"] == "ort-cpu" and data["weights"] == "random"
    spec = parse_spec(data["spec"])
    recorded = spec.overrides.get("parc_form", "spatial")
    if isinstance(recorded, str):
        assert set(plan["forms"].values()) == {recorded}
    else:
        assert recorded == plan["forms"]
    (artifact,) = data["export"]["artifacts"]
    assert artifact["ok"] and artifact["parity"]["ok"]
    assert data["export"]["spec_hash"] == spec.content_hash()
