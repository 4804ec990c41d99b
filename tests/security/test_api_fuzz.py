"""Fuzz the REST API from its own OpenAPI schema (schemathesis, in-process over ASGI)."""

from __future__ import annotations

import json

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

CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)
BOUNDED = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


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
            if case.operation.path.removeprefix("/api") not in ("/auth/token", "/health"):
                assert response.status_code == 401, (case.operation.label, response.text)

        failures = fuzz(
            login_schema,
            headers={"Authorization": "Bearer forged.token"},
            examples=3,
            expect=unauthorised,
        )
        assert not failures, "\n\n".join(failures)


class TestPredictAndJobsFuzz:
    """Generated bodies against the real prototype and job (which the schema fuzzer cannot
    guess): answers are 200 or a 4xx with a message, never a 5xx."""

    @settings(BOUNDED, max_examples=25)
    @given(
        task=st.one_of(
            st.sampled_from(["rotten_tomatoes", "bbc_news", "all", "nope", ""]),
            st.text(max_size=20),
        ),
        text=st.one_of(st.none(), st.text(max_size=300), st.just("x" * 20_000)),
        pair=st.one_of(st.none(), st.text(max_size=50)),
        items=st.one_of(
            st.none(),
            st.lists(
                st.fixed_dictionaries(
                    {
                        "task": st.sampled_from(["rotten_tomatoes", "bbc_news", "nope"]),
                        "text": st.text(max_size=40),
                    }
                ),
                max_size=3,
            ),
        ),
    )
    def test_predict(self, client, stack, task, text, pair, items):
        body = {
            "prototype": stack.uid,
            "task": task,
            "text": text,
            "text_pair": pair,
            "items": items,
        }
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


# --- what the schema fuzzer above did not generate: non-ASCII header bytes, non-finite
# numbers (NaN / Infinity are not JSON, but Python's parser accepts them) ------------------


def _schema_routes(app) -> list[tuple[str, str]]:
    return sorted(
        (method, path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


def _fill(path: str) -> str:
    return (
        path.replace("{job_id}", "1")
        .replace("{sweep_id}", "1")
        .replace("{uid}", "x")
        .replace("{task}", "t")
    )


class TestHeaderBytes:
    """Any bytes in the token headers: 401 on every route, never a 5xx."""

    @settings(BOUNDED, max_examples=30)
    @given(
        token=st.binary(min_size=1, max_size=40).filter(
            lambda b: not any(c in b for c in b"\r\n\x00")
        ),
        header=st.sampled_from(["X-API-Token", "Authorization"]),
    )
    def test_every_route(self, auth_app, token, header):
        from fastapi.testclient import TestClient

        value = (b"Bearer " + token) if header == "Authorization" else token
        with TestClient(auth_app) as client:
            for method, path in _schema_routes(auth_app):
                if path in ("/api/auth/token", "/api/health"):  # answer without login
                    continue
                reply = client.request(method, _fill(path), headers={header: value})
                assert reply.status_code == 401, (method, path, value, reply.text)


def _number_paths(schema: dict, spec: dict, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    """Paths to every number field of a JSON body schema (through $ref / anyOf / allOf)."""
    if depth > 10:
        return []
    if "$ref" in schema:
        return _number_paths(
            spec["components"]["schemas"][schema["$ref"].split("/")[-1]], spec, prefix, depth + 1
        )
    out: list[tuple] = []
    for part in schema.get("anyOf", []) + schema.get("allOf", []):
        out += _number_paths(part, spec, prefix, depth + 1)
    if schema.get("type") in ("number", "integer") and prefix:
        out.append(prefix)
    if schema.get("type") == "string" and len(prefix) == 1:
        out.append(prefix)  # a string field given a non-finite number (prototype: NaN)
    for name, sub in (schema.get("properties") or {}).items():
        out += _number_paths(sub, spec, (*prefix, name), depth + 1)
    return sorted(set(out))


def _refuse(constant: str) -> None:
    raise AssertionError(f"the answer holds {constant}, which is not JSON")


def _body(path: tuple, value: float) -> dict:
    body: dict = {}
    target = body
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
    return body


class TestNonFiniteNumbers:
    """Every number (and top-level text) field of every JSON body, given NaN, Infinity or
    -Infinity: a 4xx whose body is valid JSON, never a 5xx."""

    def test_every_field_of_every_body(self, auth_app, alice):
        import math

        from fastapi.testclient import TestClient

        spec = auth_app.openapi()
        values = [math.nan, math.inf, -math.inf]
        sent = 0
        with TestClient(auth_app) as client:
            for path, item in spec["paths"].items():
                for method, operation in item.items():
                    content = (operation.get("requestBody") or {}).get("content", {})
                    schema = content.get("application/json", {}).get("schema")
                    if not schema or path == "/api/auth/token":
                        continue
                    for i, field in enumerate(_number_paths(schema, spec)):
                        text = json.dumps(_body(field, values[i % 3]))  # NaN, Infinity
                        reply = client.request(
                            method,
                            _fill(path),
                            content=text,
                            headers={**alice, "Content-Type": "application/json"},
                        )
                        sent += 1
                        assert 400 <= reply.status_code < 500, (path, field, reply.text)
                        json.loads(reply.text, parse_constant=_refuse)  # strict JSON back
        assert sent > 50
