"""Model sources: a user's python: factory goes through the zoo's path (its own deploy switch,
the Conv+BN fold, the proof, export) and is keyed by what it builds; ready artifacts are
validated, content-addressed and never rebuilt."""

from __future__ import annotations

import sys

import onnx
import pytest
from onnx import TensorProto, helper

from exporters.artifacts import ArtifactStore
from exporters.errors import PayloadTooLargeError, SpecError
from exporters.formats import ExportFormat
from exporters.sources import buildable, materialize
from exporters.sources.ready import NOT_REPARAMETERIZED, ingest
from tests.user_package import write_user_package

SMALL = {"height": 32, "width": 32}


@pytest.fixture
def user_ref(tmp_path, monkeypatch):
    ref = write_user_package(tmp_path / "repo")
    monkeypatch.syspath_prepend(str(tmp_path / "repo"))
    yield ref
    for name in [m for m in sys.modules if m.startswith("usernets")]:
        del sys.modules[name]


def test_python_source_is_folded_by_its_own_switch_proven_and_exported(tmp_path, user_ref):
    store = ArtifactStore(tmp_path / "store")
    done = materialize({"model": user_ref, "input": SMALL}, store=store, fmt=ExportFormat.ONNX)
    assert done.built and not done.cached
    assert done.reparam["ok"] and done.reparam["rel_error"] < 1e-8
    # RepBlock.reparameterize() removed its two BatchNorms; the stem's pair was folded generically
    assert done.reparam["train"]["batchnorms"] == 5 and done.reparam["deploy"]["batchnorms"] == 0
    assert done.reparam["generic_conv_bn_folds"] == 1
    onnx.checker.check_model(str(done.artifact.path))
    again = materialize({"model": user_ref, "input": SMALL}, store=store, fmt=ExportFormat.ONNX)
    assert again.cached and again.artifact.key == done.artifact.key


def test_python_source_is_keyed_by_what_it_builds_not_by_its_name(user_ref):
    two = buildable({"model": user_ref, "input": SMALL})
    three = buildable({"model": user_ref, "input": SMALL, "kwargs": {"blocks": 3}})
    same = buildable({"model": user_ref, "input": SMALL, "kwargs": {"blocks": 2}})
    assert two.model == three.model == "usernets.nets:build"
    assert two.content_hash != three.content_hash
    assert two.content_hash == same.content_hash


def test_same_code_under_another_name_is_the_same_model_a_code_change_is_not(
    tmp_path, user_ref, monkeypatch
):
    other = write_user_package(tmp_path / "repo", name="usernets_copy")
    changed = write_user_package(
        tmp_path / "repo", name="usernets_gelu", activation="nn.functional.gelu"
    )
    hashes = [buildable({"model": ref, "input": SMALL}).content_hash
              for ref in (user_ref, other, changed)]  # fmt: skip
    assert hashes[0] == hashes[1] != hashes[2]


@pytest.mark.parametrize(
    "doc, field",
    [
        ({"model": "python:usernets.nets:nothing"}, "model"),
        ({"model": "python:no_such_package.nets:build"}, "model"),
        ({"model": "python:usernets.nets:build", "kwargs": {"colour": 1}}, "kwargs"),
        ({"model": "python:usernets.nets:build", "overrides": {"x": 1}}, "overrides"),
        ({"model": "python:not a reference"}, "model"),
    ],
)
def test_bad_python_sources_name_the_field(user_ref, doc, field):
    with pytest.raises(SpecError) as info:
        buildable(doc)
    assert info.value.field == field


def _onnx_model(tmp_path, *, opset=17, external=False, name="m.onnx"):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    if external:  # the weight's bytes "live" in a file outside the upload
        stored = model.graph.initializer[0]
        stored.data_location = TensorProto.EXTERNAL
        entry = stored.external_data.add()
        entry.key, entry.value = "location", "../../etc/passwd"
        stored.ClearField("float_data")
    path.write_bytes(model.SerializeToString())
    return path


def test_ready_onnx_is_validated_stored_once_and_never_rebuilt(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    path = _onnx_model(tmp_path)
    done = materialize(str(path), store=store, fmt=ExportFormat.ONNX)
    assert not done.built and done.reparam is None
    assert done.to_dict()["reparam"] == {
        "ok": None,
        "rel_error": None,
        "tolerance": None,
        "note": NOT_REPARAMETERIZED,
    }
    assert done.artifact.meta["checks"]["checker"] == "passed"
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(path.read_bytes())
    again = materialize(str(copy), store=store, fmt=ExportFormat.ONNX)
    assert again.cached and again.artifact.key == done.artifact.key


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: _onnx_model(p, external=True), "external data"),
        (lambda p: _onnx_model(p, opset=3), "opset"),
        (lambda p: p.joinpath("junk.onnx").write_bytes(b"not a model") and p / "junk.onnx",
         "not an ONNX model"),
        (lambda p: _truncated(_onnx_model(p)), "ONNX"),
    ],
)  # fmt: skip
def test_hostile_artifacts_are_refused_and_leave_nothing(tmp_path, make, error):
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(SpecError, match=error) as info:
        ingest(store, make(tmp_path))
    assert info.value.field == "artifact"
    assert not any((tmp_path / "store").rglob("model*"))


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-9])
    return path


def test_oversized_artifact_is_refused_before_it_is_read(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(PayloadTooLargeError):
        ingest(store, _onnx_model(tmp_path), max_bytes=10)
    assert not (tmp_path / "store" / "artifacts").exists()
