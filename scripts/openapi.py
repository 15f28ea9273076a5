"""Generate the partner OpenAPI 3.1 document from the models and endpoint tables.

`python -m scripts.openapi` writes shared/openapi.json (what the gateway serves at
/openapi.json and /docs, and what the SDK and the tests read); `--check` writes nothing
and exits 1 when the committed file is not what the code declares.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.sabong.api import API as SABONG
from services.ussd.api import API as K2
from shared.apidoc import Api, Health, Operation, reply
from shared.responses import k2_body, sabong_body

DOCUMENT = Path(__file__).resolve().parent.parent / "shared" / "openapi.json"
SCHEMA_REF = "#/components/schemas/{model}"
# Keys whose values are data, not schemas: never rewritten.
DATA_KEYS = frozenset({"example", "examples", "default", "const", "enum"})

INFO_DESCRIPTION = """\
Two partner API families behind one gateway (the only public entry point):

* **K2 USSD API** - `/api/auth/...`, `/api/clients/...`. Username and password give a login JWT; the login
  JWT generates a **Service ID** (a JWT valid for 1 hour) that is sent as `Authorization: Bearer <SERVICE_ID>`
  on every API request. Regenerate it about 5 minutes before it expires (its `exp` claim says when).
  Every response is the envelope `{"status": <HTTP status>, "message": str, "data": ... }`, `data: null` on errors.
* **Sabong API v1.0** - `/api/v1/...`, `/login/...`, `/me`, `/logout`. Partners sign every request with
  HMAC-SHA256 and get single-use login links for their users.
  Every JSON response is the envelope `{"status": "success"|"failed"|"error", "message": str, "data": ... }`.

### Errors made by the gateway
Answered in the envelope of the API family the path belongs to (K2 for `/api/auth/`, `/api/clients/`;
Sabong for `/api/v1/`, `/login/`, `/me`, `/logout`):
`404` unknown path, `413` body over the limit (64 KiB by default), `429` rate limit (with `Retry-After`),
`502` no replica of the service reachable, `504` the service did not answer in time.
Every response carries `X-Request-ID`.

### Sabong request signing
Every partner endpoint under `/api/v1/` (except `/api/v1/me`, which uses the signed-in user's session)
is authenticated by an HMAC signature in two headers:

| header | value |
|---|---|
| `x-timestamp` | Unix time in seconds, as a decimal integer |
| `x-signature` | lowercase hex of `HMAC-SHA256(key = client secret, message = StringToSign)` |

    StringToSign = METHOD + PATH + TIMESTAMP + PAYLOAD        (plain concatenation, UTF-8, no separators)

* `METHOD` upper-case (`POST`); `PATH` the request path without the query string
  (`/api/v1/generate-auth-token`); `TIMESTAMP` exactly the `x-timestamp` header value.
* `PAYLOAD` for a request with a body: **the body exactly as sent** - the server verifies over the raw
  bytes it received, never a re-serialised copy, so serialise once, sign those bytes, send those bytes.
  For `GET`: the query parameters sorted by key, as `key=value` joined with `&`.
* The timestamp must be within 300 seconds of the server's clock; a signature already accepted within
  that window is refused as a replay (`Duplicate request signature`).
* Upper-case hex is accepted too. During a secret rotation the server accepts either secret.

Test vector: secret `your-secret-key`, `x-timestamp: 1706802000`, `POST /api/v1/generate-auth-token` with body
`{"clientId":"CLIENT_001","username":"testuser001","displayName":"Client One","ipAddress":"192.168.1.100","expiration":5}`
gives `x-signature: 335cf4f5ab98ca80b2615ee2e659312acfb45f9b322288d2b197d71b9edfa2c8`.

Python:

    import hashlib, hmac, json, time
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    message = b"POST" + b"/api/v1/generate-auth-token" + timestamp.encode() + body
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    # send exactly `body`, with headers x-signature: signature, x-timestamp: timestamp

The Python SDK (`pip install ./sdk`: `partner_sdk.SabongClient`, `partner_sdk.generate_signature`) does
this for you.
"""  # noqa: E501 - markdown lines as partners read them

HEALTH_TAG = "Liveness and readiness of the gateway and each service."
HEALTH_EXAMPLES = {
    "k2": ("USSD service", k2_body(200, "OK", {"status": "ok"})),
    "sabong": ("Sabong service", sabong_body("success", "OK")),
}
HEALTH = Api(
    operations=[
        Operation(
            method="get",
            path="/healthz",
            operation_id="healthz",
            tag="Health",
            summary="Liveness (no I/O)",
            description="Through the gateway: the gateway process itself. Each service "
            "answers the same path directly.",
            responses={200: reply("Alive.", Health, examples=HEALTH_EXAMPLES)},
        ),
        Operation(
            method="get",
            path="/readyz",
            operation_id="readyz",
            tag="Health",
            summary="Readiness",
            description="Through the gateway: Redis and every service reachable. On a "
            "service: its Redis answers in time.",
            responses={
                200: reply("Ready.", Health, examples=HEALTH_EXAMPLES),
                503: reply("Not ready (Redis or a service unreachable).", Health),
            },
        ),
    ],
    tags=[
        {"name": "Health", "description": "Liveness and readiness of the gateway and each service."}
    ],
)
APIS = (K2, SABONG, HEALTH)


def document(apis: Iterable[Api] = APIS) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document: paths, tags, shared responses, schemas, security."""
    apis = list(apis)
    models: dict[str, type[BaseModel]] = {}
    paths: dict[str, dict[str, Any]] = {}
    for api in apis:
        for operation in api.operations:
            paths.setdefault(operation.path, {})[operation.method] = rendered(operation, models)
    responses = {
        name: with_refs(response, models)
        for api in apis
        for name, response in api.responses.items()
    }
    schemes = {name: dict(s) for api in apis for name, s in api.security_schemes.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Partner APIs: K2 USSD and Sabong v1.0",
            "version": "1.0.0",
            "description": INFO_DESCRIPTION,
        },
        "servers": [
            {"url": "/", "description": "The gateway serving this document"},
            {"url": "http://127.0.0.1:8080", "description": "Local gateway (`make run`)"},
        ],
        "tags": [dict(tag) for api in apis for tag in api.tags],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {
            "schemas": schemas(models),
            "responses": dict(sorted(responses.items())),
            "securitySchemes": dict(sorted(schemes.items())),
        },
    }


def rendered(operation: Operation, models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """One operation object; every model it names is added to `models`."""
    result: dict[str, Any] = {
        "operationId": operation.operation_id,
        "tags": [operation.tag],
        "summary": operation.summary,
        "description": operation.description,
    }
    if operation.security is not None:
        result["security"] = [dict(s) for s in operation.security]
    parameters = query_parameters(operation.query) if operation.query else []
    parameters += [dict(p) for p in operation.parameters]
    if parameters:
        result["parameters"] = with_refs(parameters, models)
    if operation.request is not None:
        body = {"required": True, "content": {"application/json": {"schema": operation.request}}}
        result["requestBody"] = with_refs(body, models)
    elif operation.request_body is not None:
        result["requestBody"] = with_refs(operation.request_body, models)
    result["responses"] = {
        str(status): response_object(response, models)
        for status, response in sorted(operation.responses.items())
    }
    return result


def with_refs(value: Any, models: dict[str, type[BaseModel]]) -> Any:
    """`value` with each model class replaced by a `$ref` and each response name by a
    `components/responses` `$ref`."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        models[value.__name__] = value
        return {"$ref": SCHEMA_REF.format(model=value.__name__)}
    if isinstance(value, dict):
        return {k: v if k in DATA_KEYS else with_refs(v, models) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [with_refs(item, models) for item in value]
    return value


def response_object(response: Any, models: dict[str, type[BaseModel]]) -> Any:
    """A response as written, or a `$ref` to the shared response it names."""
    if isinstance(response, str):
        return {"$ref": f"#/components/responses/{response}"}
    return with_refs(response, models)


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One `in: query` parameter per field of `model`, in field order."""
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema["properties"].items():
        field = not_null(untitled(field))
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in field:
            parameter["description"] = field.pop("description")
        examples = field.pop("examples", None)
        parameter["schema"] = field
        if examples:
            parameter["example"] = examples[0]
        parameters.append(parameter)
    return parameters


def not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never null: drop the `null` branch."""
    branches = schema.get("anyOf", [])
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1 or len(branches) != 2:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    if rest.get("default", "") is None:
        del rest["default"]
    return {**kept[0], **rest}


def schemas(models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """The JSON Schema of every model (and of the models they use), by name."""
    _, top = models_json_schema(
        [(models[name], "validation") for name in sorted(models)], ref_template=SCHEMA_REF
    )
    found = {name: untitled(schema) for name, schema in top.get("$defs", {}).items()}
    return dict(sorted(found.items()))


def untitled(schema: Any) -> Any:
    """`schema` without pydantic's generated `title`s (the names say it already) and
    without a `null` default the schema itself would refuse."""
    if isinstance(schema, list):
        return [untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None and schema.get("type") not in (None, "null"):
            continue  # an optional field that is absent when not given, never null
        if key in DATA_KEYS:
            result[key] = value
        elif key in ("properties", "$defs", "patternProperties"):
            result[key] = {name: untitled(item) for name, item in value.items()}
        else:
            result[key] = untitled(value)
    return result


def rendered_text(doc: dict[str, Any]) -> str:
    """The document as committed: 2-space JSON, UTF-8 as is, a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DOCUMENT)
    args = parser.parse_args(argv)
    text = rendered_text(document())
    if args.check:
        current = args.output.read_text("utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
