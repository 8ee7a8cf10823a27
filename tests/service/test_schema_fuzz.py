"""Property-based run over the OpenAPI schema against the running server (SQLite, no runner):
whatever schemathesis generates, no answer is a 5xx and every documented answer matches its
schema. Bounded: a fixed number of examples per operation (under a minute on 2 cores)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.e2e.conftest import Server, service_env

EXAMPLES_PER_OPERATION = 50

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    server = Server(service_env(directory), directory / "server.log", "--no-local-runner")
    yield server
    server.stop()


def fuzz(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call(timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


def test_no_input_makes_a_server_error_or_an_off_schema_answer(served):
    """Every operation is fuzzed (the pytest plugin of schemathesis is not used: it does not
    load with this pytest); the failures of all of them are reported together."""
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    failures, fuzzed = {}, 0
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzzed += 1
        try:
            fuzz(operation)
        except (AssertionError, FailureGroup, Failure) as exc:  # report every operation's
            failures[operation.label] = str(exc)[:2000]
    assert fuzzed >= 10
    assert failures == {}
