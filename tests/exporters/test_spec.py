import json

import pytest

from exporters.errors import SpecError, UnknownModelError
from exporters.spec import load_spec_file, parse_spec, resolve_spec_argument
from exporters.zoo import resolve


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"model": "fastvit_t8", "input": {"height": 0, "width": 224}}, "input.height"),
        ({"model": "fastvit_t8", "input": {"height": -5, "width": 224}}, "input.height"),
        ({"model": "fastvit_t8", "input": {"height": 224, "width": 100000}}, "input.width"),
        ({"model": "fastvit_t8", "input": {"height": 224, "width": "wide"}}, "input.width"),
        ({"model": "fastvit_t8", "input": {"batch": 64, "height": 2048, "width": 2048}}, "input"),
        ({"model": "fastvit_t8", "checkpoint_path": "/etc/passwd"}, "checkpoint_path"),
        ({"model": "../../etc/passwd"}, "model"),
        ({"model": "fastvit_t8", "formats": ["tflite"]}, "formats.0"),
        ({"model": "fastvit_t8", "formats": []}, "formats"),
        ({"model": "fastvit_t8", "precision": "int4"}, "precision"),
        ({}, "model"),
    ],
)
def test_bad_spec_names_the_field(data, field):
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")


@pytest.mark.parametrize(
    "key",
    ["pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"],
)
def test_loader_arguments_are_never_accepted_as_overrides(key):
    spec = parse_spec({"model": "fastvit_t8", "overrides": {key: "/tmp/weights.pth"}})
    with pytest.raises(SpecError) as info:
        resolve(spec)
    assert info.value.field == f"overrides.{key}"
    assert "allowed:" in str(info.value)


def test_override_of_wrong_type_names_the_knob():
    spec = parse_spec({"model": "fastvit_t8", "overrides": {"layers": [2, 2, "many", 2]}})
    with pytest.raises(SpecError) as info:
        resolve(spec)
    assert info.value.field == "overrides.layers"


def test_valid_overrides_are_normalised():
    spec = parse_spec({"model": "fastvit_t8", "overrides": {"layers": [1, 1, 2, 1]}})
    assert resolve(spec).overrides == {"layers": (1, 1, 2, 1)}


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownModelError) as info:
        resolve(parse_spec("fastvit_t9"))
    assert "fastvit_t8" in info.value.suggestions
    assert "fastvit_t8" in str(info.value)


def test_wrong_channel_count_is_refused():
    spec = parse_spec(
        {"model": "fastvit_t8", "input": {"channels": 1, "height": 256, "width": 256}}
    )
    with pytest.raises(SpecError) as info:
        resolve(spec)
    assert info.value.field == "input.channels"


def test_hash_is_canonical_and_sensitive_to_the_graph():
    a = parse_spec(
        {"model": "fastvit_t8", "overrides": {"layers": [1, 1, 2, 1], "num_classes": 10}}
    )
    b = parse_spec(
        {"overrides": {"num_classes": 10, "layers": [1, 1, 2, 1]}, "model": "fastvit_t8"}
    )
    c = parse_spec(
        {"model": "fastvit_t8", "overrides": {"layers": [1, 1, 2, 2], "num_classes": 10}}
    )
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()
    # formats select artifacts; the precision asked for changes what is built, so it is hashed
    d = parse_spec({"model": "fastvit_t8", "formats": ["onnx"]})
    assert d.content_hash() == parse_spec("fastvit_t8").content_hash()
    e = parse_spec({"model": "fastvit_t8", "precision": "fp16"})
    assert e.content_hash() != d.content_hash()
    assert set(e.identity()) == {"model", "overrides", "input", "precision"}


def test_spec_files_json_and_yaml(tmp_path):
    data = {"model": "repvit_m0_9", "input": {"height": 160, "width": 160}, "formats": ["onnx"]}
    json_file = tmp_path / "spec.json"
    json_file.write_text(json.dumps(data))
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text("model: repvit_m0_9\ninput: {height: 160, width: 160}\nformats: [onnx]\n")
    assert load_spec_file(json_file) == load_spec_file(yaml_file)
    assert resolve_spec_argument(str(yaml_file)).input.height == 160
    with pytest.raises(SpecError):
        resolve_spec_argument(str(tmp_path / "missing.yaml"))


def test_yaml_tags_are_not_executed(tmp_path):
    evil = tmp_path / "spec.yaml"
    evil.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError):
        load_spec_file(evil)
