"""Every class of the error tree maps to one HTTP status, most specific first, and a client
decodes every error answer back into the class the server named."""

from __future__ import annotations

import inspect

import httpx
import pytest

from exporters import errors as e
from service.errors import error_response

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
    assert e.http_status(_instance(cls)) == EXPECTED[cls]


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
    assert e.http_status(_instance(cls)) == code


def test_no_mapping_is_shadowed_by_an_earlier_parent():
    classes = [cls for cls, _ in e.HTTP_STATUS]
    for i, cls in enumerate(classes):
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls


def _answer(error: e.LatbenchError) -> httpx.Response:
    """What the API sends for ``error``, as the client receives it."""
    sent = error_response(error)
    return httpx.Response(sent.status_code, headers=dict(sent.headers), content=sent.body)


def _field_error(cls):
    return cls("must be positive", field="settings.runs")


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_answer_decodes_to_the_class_the_server_named(cls):
    for error in (_instance(cls), *([_field_error(cls)] if cls in FIELDED else [])):
        decoded = e.error_from_response(_answer(error))
        assert type(decoded) is cls
        assert str(decoded) == str(error)
        assert getattr(decoded, "field", None) == getattr(error, "field", None)
        assert e.http_status(decoded) == e.http_status(error)


FIELDED = (e.SpecError, e.NotFoundError)


def test_a_busy_answer_keeps_its_retry_after():
    decoded = e.error_from_response(_answer(e.BusyError("busy", retry_after_s=7)))
    assert isinstance(decoded, e.BusyError) and decoded.retry_after_s == 7


def test_a_class_the_client_lacks_or_a_foreign_body_decodes_by_status():
    from service.jobs.transitions import TransitionError  # a server-only subclass

    server_only = e.error_from_response(_answer(TransitionError("job 'j' is done")))
    assert type(server_only) is e.ConflictError and str(server_only) == "job 'j' is done"
    proxy = httpx.Response(502, text="<html>bad gateway</html>")
    assert type(e.error_from_response(proxy)) is e.RunnerError
    assert "server answered 502: <html>bad gateway" in str(e.error_from_response(proxy))
    broken = httpx.Response(418, headers={"content-type": "application/json"}, content=b"{")
    assert type(e.error_from_response(broken)) is e.LatbenchError


def test_a_real_server_answer_round_trips(settings):
    """Through the app's own handlers: a missing job and a request validation error."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.service.doubles import RecordingDispatcher

    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as http:
        missing = e.error_from_response(http.get("/jobs/nope"))
        invalid = e.error_from_response(http.post("/profile", json={"model": 3}))
    assert type(missing) is e.NotFoundError and "no job 'nope'" in str(missing)
    assert type(invalid) is e.SpecError and invalid.field.startswith("model")


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_class_crosses_a_process_boundary_whole(cls):
    """What a bounded child raises reaches its parent pickled: same class, message, attributes."""
    import pickle

    error = _instance(cls)
    crossed = pickle.loads(pickle.dumps(error))
    assert type(crossed) is cls and str(crossed) == str(error)
    assert crossed.__dict__ == error.__dict__
