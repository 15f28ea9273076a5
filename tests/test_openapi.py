"""The OpenAPI document: generated from the code and committed up to date, valid 3.1,
complete against the SPEC and the Flask routes, examples true to schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.docs import docs_asset
from scripts import openapi
from services.sabong import create_app as create_sabong
from services.ussd import create_app as create_ussd
from shared.signing import sign
from tests.sabong.conftest import base_settings
from tests.ussd.conftest import ussd_config

DOC_URI = "urn:partner-openapi"
DOC: dict[str, Any] = json.loads(resources.files("shared").joinpath("openapi.json").read_bytes())
REGISTRY: Registry[Any] = Registry().with_resource(
    DOC_URI, Resource.from_contents(DOC, default_specification=DRAFT202012)
)

SPEC_OPERATIONS = {
    ("post", "/api/auth/login"),
    ("post", "/api/clients/generate-service-id"),
    ("post", "/api/clients/generate-api-key"),
    ("get", "/api/clients/me"),
    ("post", "/api/clients/revoke-service-id"),
    ("post", "/api/v1/generate-auth-token"),
    ("get", "/api/v1/get-balance"),
    ("post", "/api/v1/credit-balance"),
    ("post", "/api/v1/debit-balance"),
    ("get", "/api/v1/get-transactions"),
    ("get", "/api/v1/me"),
    ("get", "/login/{token}"),
    ("post", "/login/{token}"),
    ("get", "/me"),
    ("post", "/logout"),
    ("get", "/healthz"),
    ("get", "/readyz"),
}
K2_PREFIXES = ("/api/auth/", "/api/clients/")
SABONG_PREFIXES = ("/api/v1/", "/login/", "/me", "/logout")
GATEWAY_STATUSES = ("413", "429", "502", "504")


def validator_at(pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer` in the document, refs resolved in place."""
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#{pointer}"},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation in the document."""
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, operation


def examples_with_schemas() -> Iterator[tuple[str, Any]]:
    """(schema pointer, example) for every media example and every schema-level example."""
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            bodies = [("requestBody", operation.get("requestBody", {}))]
            bodies += [(f"responses/{s}", r) for s, r in operation.get("responses", {}).items()]
            for where, holder in bodies:
                for media, content in holder.get("content", {}).items():
                    pointer = (
                        f"/paths/{_escape(path)}/{method}/{where}/content/{_escape(media)}/schema"
                    )
                    if "example" in content:
                        yield pointer, content["example"]
                    for example in content.get("examples", {}).values():
                        yield pointer, example["value"]
    for name, response in DOC["components"]["responses"].items():
        for media, content in response.get("content", {}).items():
            pointer = f"/components/responses/{name}/content/{_escape(media)}/schema"
            yield pointer, content["example"]
    for name, schema in DOC["components"]["schemas"].items():
        if "example" in schema:
            yield f"/components/schemas/{name}", schema["example"]


def test_committed_document_is_the_generated_one() -> None:
    """`make openapi` after changing a model or an endpoint table; this fails until then."""
    assert openapi.main(["--check"]) == 0, "shared/openapi.json is stale: run `make openapi`"
    assert json.loads(openapi.rendered_text(openapi.document())) == DOC


def test_the_check_notices_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text(json.dumps({**DOC, "info": {**DOC["info"], "version": "0.9"}}), "utf-8")
    assert openapi.main(["--check", "--output", str(stale)]) == 1
    assert openapi.main(["--output", str(stale)]) == 0
    assert openapi.main(["--check", "--output", str(stale)]) == 0
    assert json.loads(stale.read_bytes()) == DOC


def test_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC)


def test_every_spec_endpoint_is_documented() -> None:
    documented = {(method, path) for method, path, _ in operations()}
    assert documented >= SPEC_OPERATIONS, SPEC_OPERATIONS - documented


def test_operation_ids_are_unique() -> None:
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids))


EXAMPLES = list(examples_with_schemas())


@pytest.mark.parametrize(("pointer", "example"), EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_examples_satisfy_their_schemas(pointer: str, example: Any) -> None:
    errors = [e.message for e in validator_at(pointer).iter_errors(example)]
    assert not errors


def test_schemas_reject_what_the_contract_rejects() -> None:
    token_response = validator_at("/components/schemas/GenerateAuthTokenResponse")
    good = DOC["components"]["schemas"]["GenerateAuthTokenResponse"]["example"]
    assert token_response.is_valid(good)
    extra_field = {**good, "data": {**good["data"], "debug": "leak"}}
    short_token = {**good, "data": {**good["data"], "token": "abc"}}
    no_millis = {**good, "data": {**good["data"], "expiration": "2026-02-01T14:59:42Z"}}
    for bad in (extra_field, short_token, no_millis):
        assert not token_response.is_valid(bad)
    k2_error = validator_at("/components/schemas/K2Error")
    assert k2_error.is_valid({"status": 401, "message": "Invalid JWT token", "data": None})
    assert not k2_error.is_valid({"status": "error", "message": "x", "data": None})


def test_wallet_schemas_hold_the_contract() -> None:
    balance = validator_at("/components/schemas/WalletBalanceResponse")
    good = DOC["components"]["schemas"]["WalletBalanceResponse"]["example"]
    assert balance.is_valid(good)
    assert balance.is_valid({**good, "data": {**good["data"], "updatedAt": None}})
    as_string = {**good, "data": {**good["data"], "balance": "1600.50"}}
    assert not balance.is_valid(as_string)
    history = validator_at("/components/schemas/WalletTransaction")
    row = DOC["components"]["schemas"]["WalletTransactionsResponse"]["example"]["data"]["data"][0]
    assert history.is_valid(row)
    assert not history.is_valid({**row, "amount": 100.5})  # history amounts are strings
    assert not history.is_valid({**row, "balanceAfter": "1600.5"})
    for path in ("/api/v1/credit-balance", "/api/v1/debit-balance"):
        operation = DOC["paths"][path]["post"]
        assert {"200", "400", "401", "404", "409", "500"} <= set(operation["responses"])
        assert "Idempotent-Replayed" in operation["responses"]["200"]["headers"]


def _json_schema_refs(operation: dict[str, Any], status: str) -> str:
    """The serialised schemas of one response (after following a components/responses ref)."""
    response = operation["responses"][status]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return json.dumps(response.get("content", {}).get("application/json", {}))


@pytest.mark.parametrize(
    ("method", "path"), sorted((m, p) for m, p, _ in operations() if p.startswith(K2_PREFIXES))
)
def test_k2_errors_use_the_k2_envelope(method: str, path: str) -> None:
    operation = DOC["paths"][path][method]
    for status in operation["responses"]:
        if int(status) >= 400:
            assert "#/components/schemas/K2Error" in _json_schema_refs(operation, status)
    for status in GATEWAY_STATUSES:
        assert operation["responses"][status]["$ref"].endswith(f"/K2{_gateway_name(status)}")


@pytest.mark.parametrize(
    ("method", "path"),
    sorted((m, p) for m, p, _ in operations() if p.startswith(SABONG_PREFIXES)),
)
def test_sabong_operations_carry_gateway_errors_in_the_sabong_envelope(
    method: str, path: str
) -> None:
    operation = DOC["paths"][path][method]
    for status in GATEWAY_STATUSES:
        assert operation["responses"][status]["$ref"].endswith(f"/Sabong{_gateway_name(status)}")
        assert "#/components/schemas/SabongError" in _json_schema_refs(operation, status)


def _gateway_name(status: str) -> str:
    return {
        "413": "PayloadTooLarge",
        "429": "TooManyRequests",
        "502": "BadGateway",
        "504": "GatewayTimeout",
    }[status]


def test_not_found_is_documented_for_both_families() -> None:
    responses = DOC["components"]["responses"]
    assert responses["K2NotFound"]["content"]["application/json"]["example"]["status"] == 404
    assert (
        responses["SabongNotFound"]["content"]["application/json"]["example"]["status"] == "error"
    )


def test_generate_auth_token_documents_the_signature_headers() -> None:
    operation = DOC["paths"]["/api/v1/generate-auth-token"]["post"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers["x-signature"]["required"] and headers["x-timestamp"]["required"]
    assert {"400", "401", "500"} <= set(operation["responses"])
    assert "X-Auth-Error" in operation["responses"]["401"]["headers"]


def test_the_documented_signing_example_is_correct() -> None:
    """The worked example in the description must verify with the real signing code."""
    text = DOC["info"]["description"]
    assert "StringToSign = METHOD + PATH + TIMESTAMP + PAYLOAD" in text
    body = re.search(r"with body\s+`(\{.*?\})`", text, re.S)
    signature = re.search(r"x-signature: ([0-9a-f]{64})", text)
    assert body and signature
    computed = sign(
        "your-secret-key", "POST", "/api/v1/generate-auth-token", 1706802000, body.group(1)
    )
    assert computed == signature.group(1)


def test_docs_serves_this_exact_document() -> None:
    served = docs_asset("/openapi.json")
    assert served is not None
    content_type, body = served
    assert content_type.startswith("application/json")
    assert json.loads(body) == DOC


# -- the document against the Flask routes -------------------------------------------------

# Routes a service serves that are not part of the partner contract, with the reason.
UNDOCUMENTED_ROUTES = {
    # Prometheus exposition for allow-listed scrapers (operators), not for partners.
    ("get", "/metrics"),
}


@pytest.fixture(scope="module")
def isolated_dotenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("openapi-routes") / "test.env"
        patch.setenv("DOTENV_PATH", str(path))
        yield path


@pytest.fixture(scope="module")
def service_routes(session_redis_url: str, isolated_dotenv: Path) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of both services."""
    apps = (
        create_sabong(base_settings(session_redis_url)),
        create_ussd(ussd_config(session_redis_url)),
    )
    return {route for app in apps for route in flask_routes(app)}


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    return routes


def test_every_flask_route_is_documented(service_routes: set[tuple[str, str]]) -> None:
    documented = {(method, path) for method, path, _ in operations()}
    assert service_routes - UNDOCUMENTED_ROUTES <= documented, (
        service_routes - UNDOCUMENTED_ROUTES - documented
    )


def test_every_documented_operation_is_a_flask_route(
    service_routes: set[tuple[str, str]],
) -> None:
    documented = {(method, path) for method, path, _ in operations()}
    assert documented <= service_routes, documented - service_routes
