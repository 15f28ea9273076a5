"""Answers the gateway makes itself: its JSON error envelope, and a local route's reply."""

from __future__ import annotations

from .http import ClientConnection, Request, ServerState
from .routing import Family, cached_error_body

# (status, content type, body) of a gateway-made answer.
Reply = tuple[int, str, bytes]
JSON = "application/json"


def json_head(state: ServerState) -> bytes:
    return b"content-type: application/json\r\n" + state.date_header


def send_error(
    request: Request, client: ClientConnection, family: Family, status: int, extra: bytes = b""
) -> None:
    """A gateway-made error in the envelope of the path's API family."""
    body = cached_error_body(family, status)
    client.respond(request, status, json_head(client.state) + extra, body)


def send_reply(reply: Reply, request: Request, client: ClientConnection) -> None:
    """A local route's answer, with its own content type."""
    status, content_type, body = reply
    head = b"content-type: " + content_type.encode("latin-1") + b"\r\n" + client.state.date_header
    client.respond(request, status, head, body)
