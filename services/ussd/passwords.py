"""Password hashing with stdlib scrypt; parameters travel with each hash."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from shared.exceptions import ConfigError
from shared.offload import in_native_thread

SCHEME = "scrypt"
DEFAULT_N = 2**14  # ~16 MiB and tens of ms per hash: slow for attackers, fine for logins
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
# A hash read back from Redis is data, not code: refuse parameters that would let a
# tampered record make one login burn gigabytes or minutes.
MAX_N = 2**20
MAX_R = 32
MAX_P = 16


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost parameters (N: CPU/memory cost, r: block size, p: parallelism)."""

    n: int = DEFAULT_N
    r: int = DEFAULT_R
    p: int = DEFAULT_P

    def __post_init__(self) -> None:
        if not _acceptable(self.n, self.r, self.p):
            raise ConfigError(f"scrypt parameters out of range: n={self.n} r={self.r} p={self.p}")


def hash_password(password: str, params: ScryptParams) -> str:
    """`scrypt$n$r$p$salt$key` with a fresh random salt (base64, no padding)."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, params.n, params.r, params.p)
    return "$".join((SCHEME, str(params.n), str(params.r), str(params.p), _b64(salt), _b64(key)))


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded`; a malformed hash never matches."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, expected = parsed
    # Constant-time comparison: no early exit revealing how many bytes matched.
    return hmac.compare_digest(_derive(password, salt, n, r, p), expected)


def needs_rehash(encoded: str, params: ScryptParams) -> bool:
    """True when `encoded` was made with other parameters than the current ones."""
    parsed = _parse(encoded)
    return parsed is None or parsed[:3] != (params.n, params.r, params.p)


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The raw scrypt key; maxmem sized to the parameters so OpenSSL accepts large N."""
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    # Tens of milliseconds of CPU: off the event loop when the worker runs gevent.
    return in_native_thread(
        hashlib.scrypt,
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=maxmem,
        dklen=KEY_BYTES,
    )


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    """(n, r, p, salt, key) from the stored form, or None when it is not one of ours."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return None
    if not _acceptable(n, r, p) or not salt or len(key) != KEY_BYTES:
        return None
    return n, r, p, salt, key


def _acceptable(n: int, r: int, p: int) -> bool:
    """N a power of two above 1, and every parameter within the bounds above."""
    return 1 < n <= MAX_N and n & (n - 1) == 0 and 1 <= r <= MAX_R and 1 <= p <= MAX_P


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
