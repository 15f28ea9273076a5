"""Living with gevent: which standard modules it has patched, and sends on its sockets."""

from __future__ import annotations

import sys
from typing import Any


def patched_by_gevent(module: str) -> Any | None:
    """gevent's `monkey` module when it has patched `module` (e.g. "select") in this
    process, else None. Never imports gevent: a process that did not patch is not on it."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched(module):
        return None
    return monkey


def _is_plain_gevent_socket(sock: Any) -> bool:
    """Whether `sock` is an instance of gevent's own socket class itself (never imports
    gevent: a process that never loaded it has no gevent sockets)."""
    gevent_socket = sys.modules.get("gevent.socket")
    # Exactly that class, never a subclass: gevent's TLS socket wraps a raw socket as
    # well, and writing to that one directly would send the bytes unencrypted.
    return gevent_socket is not None and type(sock) is gevent_socket.socket


def sent_at_once(sock: Any, data: bytes) -> int:
    """How many bytes of `data` one non-blocking send put on `sock`: 0 unless it is a
    plain gevent socket, whose `sendall` the caller then finishes with.

    gevent's `sendall` asks the kernel for the socket's buffer size (a getsockopt system
    call) and slices the data into chunks on every call; a request's answer or a store
    command fits the buffer, so one send usually takes it whole (2 us less per call).
    An error is left for `sendall` to meet again and report as it always does.
    """
    if not _is_plain_gevent_socket(sock):
        return 0
    raw = getattr(sock, "_sock", None)  # the non-blocking socket gevent waits on
    if raw is None:
        return 0
    try:
        sent: int = raw.send(data)
    except OSError:  # EAGAIN (a full buffer) or a broken connection: sendall's to handle
        return 0
    return sent
