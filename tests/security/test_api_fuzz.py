"""Fuzz the REST API from its own OpenAPI schema (schemathesis, in-process over ASGI)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)
BOUNDED = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def open_schema(app):
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


@pytest.fixture(scope="module")
def login_schema(auth_app):
    return schemathesis.openapi.from_asgi("/api/openapi.json", auth_app)


@pytest.fixture(scope="module")
def alice(auth_app):
    from fastapi.testclient import TestClient

    from tests.dashboard_stack import token_for

    with TestClient(auth_app) as client:
        return token_for(client, "alice", "wonder-S3CRET")


def fuzz(schema, headers=None, examples: int = 12, expect=None) -> list[str]:
    """Run every operation of `schema` for a bounded number of generated cases."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(BOUNDED, max_examples=examples)
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(headers=headers)
            if expect is not None:
                expect(case, response)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as err:
            failures.append(f"{operation.label}: {str(err)[:1500]}")
    return failures


class TestFuzzLoginOff:
    """Every operation, login off: no 5xx; status, content type and body match the schema."""

    def test_every_operation(self, open_schema):
        failures = fuzz(open_schema)
        assert not failures, "\n\n".join(failures)


class TestFuzzLoginOn:
    """Every operation with login on, as a logged-in user and as nobody (401, never 5xx)."""

    def test_every_operation_with_a_token(self, login_schema, alice):
        failures = fuzz(login_schema, headers=alice)
        assert not failures, "\n\n".join(failures)

    def test_every_operation_without_a_valid_token(self, login_schema):
        def unauthorised(case, response):
            if case.operation.path != "/auth/token":
                assert response.status_code == 401, (case.operation.label, response.text)

        failures = fuzz(login_schema, headers={"Authorization": "Bearer forged.token"},
                        examples=3, expect=unauthorised)
        assert not failures, "\n\n".join(failures)


class TestPredictAndJobsFuzz:
    """Generated bodies against the real prototype and job (which the schema fuzzer cannot
    guess): answers are 200 or a 4xx with a message, never a 5xx."""

    @settings(BOUNDED, max_examples=25)
    @given(task=st.one_of(st.sampled_from(["rotten_tomatoes", "bbc_news", "all", "nope", ""]),
                          st.text(max_size=20)),
           text=st.one_of(st.none(), st.text(max_size=300), st.just("x" * 20_000)),
           pair=st.one_of(st.none(), st.text(max_size=50)),
           items=st.one_of(st.none(), st.lists(st.fixed_dictionaries(
               {"task": st.sampled_from(["rotten_tomatoes", "bbc_news", "nope"]),
                "text": st.text(max_size=40)}), max_size=3)))
    def test_predict(self, client, stack, task, text, pair, items):
        body = {"prototype": stack.uid, "task": task, "text": text, "text_pair": pair,
                "items": items}
        reply = client.post("/api/predict", json=body)
        assert reply.status_code in (200, 404, 409, 422), reply.text
        assert isinstance(reply.json(), dict)

    @settings(BOUNDED, max_examples=10)
    @given(lines=st.integers(-5, 5000), job=st.sampled_from([1, 0, -1, 2**62]))
    def test_job_log_and_detail(self, client, stack, lines, job):
        for url in (f"/api/jobs/{job}/log?lines={lines}", f"/api/jobs/{job}"):
            reply = client.get(url)
            assert reply.status_code < 500, reply.text


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client
