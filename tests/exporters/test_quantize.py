"""int8 deploy forms: what ran in int8, which calibration, and the numerical effect, on tiny nets
built here (seconds) through the real export path (fold, export, parity, quantize)."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from devices.ort import OrtCudaRunner
from devices.results import declared_quantization
from devices.settings import MeasureSettings
from exporters.artifacts import ArtifactStore
from exporters.calibration import CalibrationStore, read_array, read_local
from exporters.errors import ExportError, RunnerError, SpecError
from exporters.export import Buildable, export_model
from exporters.formats import QUANTIZATION_METADATA_KEY, ExportFormat, Precision
from exporters.quant_numerics import numerical_effect
from exporters.spec import parse_spec

SHAPE = (1, 3, 32, 32)


class TinyNet(nn.Module):
    """Conv+BN stem (folded before quantization), two convs, an optional transposed conv (which
    onnxruntime's quantizer leaves in float), and a linear head."""

    def __init__(self, transpose: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.up = nn.ConvTranspose2d(64, 64, 2, stride=2) if transpose else nn.Identity()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.body(x)).mean((2, 3)))


def tiny(
    name: str,
    fmt: ExportFormat = ExportFormat.ONNX,
    *,
    precision: Precision = Precision.INT8,
    transpose: bool = False,
    calibration: str | None = None,
) -> Buildable:
    digest = (name.encode().hex() + "0" * 32)[:32]
    return Buildable(
        model=name,
        family="tiny",
        content_hash=digest,
        input_shape=SHAPE,
        build=lambda: TinyNet(transpose).eval(),
        description={"model": name},
        formats=(fmt,),
        precision=precision,
        calibration=calibration,
    )


def quantized(source: Buildable, store: ArtifactStore):
    report = export_model(source, store=store)
    entry = report.artifacts[0]
    assert entry.ok, entry.error
    return entry


def test_tiny_conv_net_synthetic_calibration_runs_in_int8(tmp_path):
    entry = quantized(tiny("tinyconv"), ArtifactStore(tmp_path))
    stated = entry.quantization
    assert entry.key.endswith("-onnx-int8") and entry.precision == "int8"
    assert stated["calibration"] == "synthetic" and stated["samples"] == 16
    assert stated["int8_mac_fraction"] > 0.9
    assert math.isfinite(stated["sqnr_db"]) and stated["sqnr_db"] > 10
    assert 0.9 < stated["cosine"] <= 1.0
    assert "QLinearConv" in stated["kernels"]
    # the statement travels inside the artifact, where a runner reads it back
    model = onnx.load(entry.path)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert declared_quantization(metadata)["int8_mac_fraction"] == stated["int8_mac_fraction"]
    assert QUANTIZATION_METADATA_KEY in metadata
    # the CUDA provider has no int8 kernels: its runner refuses, naming the one that measures it
    with pytest.raises(RunnerError, match="ort-tensorrt"):
        OrtCudaRunner().open(Path(entry.path), MeasureSettings())


def test_op_left_in_float_is_listed_as_an_island(tmp_path):
    stated = quantized(tiny("tinyup", transpose=True), ArtifactStore(tmp_path)).quantization
    islands = {island["op"]: island for island in stated["float_islands"]}
    assert islands["ConvTranspose"]["nodes"] == 1 and islands["ConvTranspose"]["macs"] > 0
    assert stated["int8_mac_fraction"] < 0.9
    assert stated["int8_macs"] + islands["ConvTranspose"]["macs"] == stated["macs"]


def test_user_calibration_is_recorded_and_changes_the_key(tmp_path):
    store = ArtifactStore(tmp_path)
    images = np.random.default_rng(5).uniform(-2, 2, (10, 3, 32, 32)).astype(np.float32)
    set_id = CalibrationStore(tmp_path).put(images)
    entry = quantized(tiny("tinyuser", calibration=set_id), store)
    stated = entry.quantization
    assert (stated["calibration"], stated["samples"], stated["set"]) == ("user", 8, set_id)
    assert stated["held_aside"] == 2
    plain = parse_spec({"model": "resnet18", "precision": "int8"})
    user = parse_spec({"model": "resnet18", "precision": "int8", "calibration": set_id})
    assert plain.content_hash() != user.content_hash()
    assert "calibration" not in plain.identity()  # unset: earlier hashes unchanged


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            np.zeros((4, 3, 16, 16), np.float32),
            r"shape \[4, 3, 16, 16\] given; the model takes \[N, 3, 32, 32\]",
        ),
        (np.zeros((4, 3, 32), np.float32), r"shape \[4, 3, 32\]"),
        (np.full((2, 3, 32, 32), np.nan, np.float32), "NaN"),
        (np.array(["a"] * 4), "numbers are needed"),
    ],
)
def test_wrong_calibration_array_names_the_field(tmp_path, array, message):
    path = tmp_path / "set.npy"
    np.save(path, array)
    with pytest.raises(SpecError, match=message) as caught:
        read_local(path, SHAPE)
    assert caught.value.field == "calibration"


def test_empty_folder_and_pickles_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="holds no") as caught:
        read_local(tmp_path / "empty", SHAPE)
    assert caught.value.field == "calibration"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SpecError, match="without objects"):
        read_array(buffer.getvalue())
    with pytest.raises(SpecError, match="without objects"):
        read_array(pickle.dumps([1, 2, 3]))


def test_image_folder_becomes_normalised_samples(tmp_path):
    from PIL import Image

    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    array = read_local(tmp_path, SHAPE)
    assert array.shape == (3, 3, 32, 32) and array.dtype == np.float32
    assert -2.2 < array.min() < 0 < array.max() < 2.7  # ImageNet-normalised


def test_calibration_needs_int8():
    with pytest.raises(SpecError) as caught:
        parse_spec({"model": "resnet18", "calibration": "a" * 32})
    assert caught.value.field == "calibration"


def test_broken_output_fails_the_export():
    reference = np.linspace(-1, 1, 40)
    with pytest.raises(ExportError, match="NaN"):
        numerical_effect(reference, np.full(40, np.nan), "onnx")
    with pytest.raises(ExportError, match="collapsed"):
        numerical_effect(reference, np.zeros(40), "onnx")
    assert numerical_effect(reference, reference + 1e-3, "onnx")["sqnr_db"] > 40


def test_onnx_int8_is_refused_for_pt2():
    error = ExportFormat.TORCH_EXPORT.precision_error(Precision.INT8)
    assert error is not None and error.field == "precision"
    assert ExportFormat.ONNX.precision_error(Precision.W8) is not None


@pytest.mark.coreml
@pytest.mark.parametrize("precision", [Precision.INT8, Precision.W8])
def test_coreml_quantized_forms_convert(tmp_path, precision):
    import coremltools as ct

    entry = quantized(
        tiny(f"tinycml{precision.value}", ExportFormat.COREML, precision=precision),
        ArtifactStore(tmp_path),
    )
    stated = entry.quantization
    assert stated["quantized_weight_mac_fraction"] == 1.0
    if precision is Precision.INT8:  # W8A8: activations quantized too
        assert stated["calibration"] == "synthetic" and stated["int8_mac_fraction"] == 1.0
        assert math.isfinite(stated["sqnr_db"])
    else:  # weights only: computed in fp16
        assert stated["calibration"] == "none" and stated["int8_mac_fraction"] == 0.0
    spec = ct.utils.load_spec(entry.path)
    stored = dict(spec.description.metadata.userDefined)
    assert declared_quantization(stored)["scheme"] == stated["scheme"]
    blocks = spec.mlProgram.functions["main"].block_specializations.values()
    ops = {op.type for block in blocks for op in block.operations}
    assert ("quantize" in ops) is (precision is Precision.INT8)
