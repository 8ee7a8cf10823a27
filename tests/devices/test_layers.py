"""Mapping profiled node names back to model blocks (pure logic)."""

import json

import pytest

from devices.layers import UNMAPPED, _slash_scopes, breakdown_from_ort_profile, stage_and_block

FASTVIT_SCOPES = [
    "stages.2",
    "stages.2.blocks",
    "stages.2.blocks.1",
    "stages.2.blocks.1.token_mixer",
]
FASTVIT_CLASSES = ["FastVitStage", "Sequential", "timm.models.fastvit.RepMixerBlock", "RepMixer"]


def test_stage_and_block_of_a_fastvit_node():
    assert stage_and_block(FASTVIT_SCOPES, FASTVIT_CLASSES) == (
        "stages.2",
        "stages.2.blocks.1",
        "RepMixerBlock",
    )


@pytest.mark.parametrize(
    ("path", "stage", "block"),
    [("layer1.0.conv1", "layer1.0", "layer1.0"), ("blocks.2.1.conv_pw", "blocks.2", "blocks.2.1"),
     ("head.fc", "head", "head")],
)  # fmt: skip
def test_stage_and_block_rules(path, stage, block):
    assert stage_and_block([path], [])[:2] == (stage, block)


def test_unknown_nodes_are_unmapped():
    assert stage_and_block([], []) == (UNMAPPED, UNMAPPED, "")


def test_torchscript_node_names_become_module_paths():
    scopes = _slash_scopes("/stages.3/blocks/blocks.1/token_mixer/mixer/Add_1")
    assert scopes[-1] == "stages.3.blocks.1.token_mixer.mixer"
    assert stage_and_block(scopes, [])[:2] == ("stages.3", "stages.3.blocks.1")


def test_breakdown_drops_warmup_runs_and_averages_per_run(tmp_path):
    def node(name, op, ts, dur):
        return {
            "cat": "Node",
            "name": f"{name}_kernel_time",
            "ts": ts,
            "dur": dur,
            "args": {"op_name": op},
        }

    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        node("/a.0/Conv", "Conv", 10, 999),  # warm-up run: dropped
        {"cat": "Session", "name": "model_run", "ts": 1000, "dur": 100},
        node("/a.0/Conv", "Conv", 1010, 3000), node("/a.1/Relu", "Relu", 1050, 1000),
        {"cat": "Session", "name": "model_run", "ts": 2000, "dur": 100},
        node("/a.0/Conv", "Conv", 2010, 1000), node("/a.1/Relu", "Relu", 2050, 1000),
    ]  # fmt: skip
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(events))
    result = breakdown_from_ort_profile(trace, skip_runs=1, model_path=_graph_with_nodes(tmp_path))
    assert result["runs"] == 2 and result["total_ms"] == pytest.approx(3.0)
    assert result["by_op"][0] == {
        "op": "Conv",
        "ms": pytest.approx(2.0),
        "share": pytest.approx(2 / 3),
    }
    assert [(row["block"], row["ms"]) for row in result["by_block"]] == [("a.0", 2.0), ("a.1", 1.0)]


def _graph_with_nodes(tmp_path):
    """A graph whose node names are the TorchScript-style ones the trace above refers to."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Identity", ["x"], ["h"], name="/a.0/Conv"),
             helper.make_node("Relu", ["h"], ["y"], name="/a.1/Relu")]  # fmt: skip
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y])), str(path))
    return path
