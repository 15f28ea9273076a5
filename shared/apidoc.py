"""The building blocks of the endpoint tables (services/*/api.py) that scripts/openapi.py
turns into the OpenAPI 3.1 document: an operation, its responses and their examples.

Anywhere a JSON Schema goes, a pydantic model class may stand instead: the generator
replaces it by a `$ref` to the model's schema. A response given as a string names one of
the document's `components/responses`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

JSON = "application/json"
# Sent with every 429 and 503: when to try again.
RETRY_AFTER = {
    "description": "Whole seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 0},
}


@dataclass(frozen=True)
class Operation:
    """One method on one path, as partners see it through the gateway."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    responses: Mapping[int, Any]
    request: type[BaseModel] | None = None  # a required JSON body
    request_body: Mapping[str, Any] | None = None  # any other requestBody, as written
    query: type[BaseModel] | None = None  # one query parameter per field
    parameters: Sequence[Mapping[str, Any]] = ()  # path and header parameters
    security: Sequence[Mapping[str, Sequence[str]]] | None = None


@dataclass(frozen=True)
class Api:
    """One API family: its operations, tags, security schemes and shared responses."""

    operations: Sequence[Operation]
    tags: Sequence[Mapping[str, str]]
    security_schemes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    responses: Mapping[str, Any] = field(default_factory=dict)


def reply(
    description: str,
    schema: type[BaseModel] | Mapping[str, Any],
    examples: Mapping[str, tuple[str, Any]] | None = None,
    example: Any = None,
    headers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON response; `examples` maps a name to (summary, body)."""
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {
            name: {"summary": summary, "value": value}
            for name, (summary, value) in examples.items()
        }
    if example is not None:
        content["example"] = example
    response: dict[str, Any] = {"description": description, "content": {JSON: content}}
    if headers:
        response["headers"] = dict(headers)
    return response


class Health(BaseModel):
    """Health answer in the envelope of whoever answered (gateway or service)."""

    status: int | str
    message: str
    data: Any = None
