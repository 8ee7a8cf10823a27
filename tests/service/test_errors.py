"""Every class of the error tree maps to one HTTP status, most specific first."""

from __future__ import annotations

import inspect

import pytest

from exporters import errors as e
from service.errors import STATUS, status_for

TREE = [
    cls for _, cls in inspect.getmembers(e, inspect.isclass) if issubclass(cls, e.LatbenchError)
]


def _instance(cls):
    if cls is e.UnknownModelError:
        return cls("x", [])
    if issubclass(cls, e.ExportError):
        return cls("onnx", "boom")
    return cls("boom")


# Every class of the tree and the status it must get: a new class fails here until it is listed.
EXPECTED = {
    e.LatbenchError: 500,
    e.SpecError: 422,
    e.UnknownModelError: 422,
    e.ExportError: 422,
    e.ArtifactUnavailableError: 422,
    e.EquivalenceError: 422,
    e.RunnerError: 502,
    e.RunnerUnavailableError: 503,
    e.NotFoundError: 404,
    e.ConflictError: 409,
    e.QuotaError: 429,
    e.PayloadTooLargeError: 413,
    e.AuthError: 401,
    e.BusyError: 503,
}


def test_the_expected_table_lists_the_whole_tree():
    assert set(TREE) == set(EXPECTED)


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_class_has_its_status_and_only_the_root_is_a_500(cls):
    assert status_for(_instance(cls)) == EXPECTED[cls]


@pytest.mark.parametrize(
    "cls, code",
    [
        (e.UnknownModelError, 422),
        (e.NotFoundError, 404),
        (e.ConflictError, 409),
        (e.PayloadTooLargeError, 413),
        (e.QuotaError, 429),
        (e.AuthError, 401),
        (e.RunnerUnavailableError, 503),
        (e.EquivalenceError, 422),
        (e.LatbenchError, 500),
    ],
)
def test_specific_classes_win_over_their_parents(cls, code):
    assert status_for(_instance(cls)) == code


def test_no_mapping_is_shadowed_by_an_earlier_parent():
    classes = [cls for cls, _ in STATUS]
    for i, cls in enumerate(classes):
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls
