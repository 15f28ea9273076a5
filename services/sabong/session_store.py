"""Signed-in player sessions: revocable records in Redis, in the player's own slot.

The cookie `sabong_session` (Flask's signed cookie) holds one value, the session id

    <secret>.<clientId, base64url>

`secret` is 32 random bytes (base64url, 43 characters) and is the only thing that
authorises anything; the clientId part merely says in which user's keys to look, so a
session lives in the same Redis Cluster slot as its user. Only a SHA-256 of the secret is
ever a key, so a Redis dump reveals no usable session.

Keys (prefix `sabong:`; `{c:<clientId>}` is the user's hash tag, as in store.py):

    sabong:{c:<clientId>}:s:<sha256 b64url>   string  user id; TTL = the session lifetime
    sabong:{c:<clientId>}:sessions            zset    session hashes scored by their expiry
                                                      (Unix s): lets a player or operator
                                                      end every session of the user

Ending a session deletes its record: its cookie never works again, from anywhere, even
though the browser may keep the signed cookie until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass

import redis as redis_py

from shared.redis import StoreScript, translate_errors

from .store import PREFIX

SECRET_BYTES = 32
MAX_CLIENT_ID_CHARS = 255
# Members ended per script call by end_all (keeps each script short), and rounds at most
# (a session started while the previous round ran is ended by the next one).
END_ALL_BATCH = 500
END_ALL_MAX_ROUNDS = 20

_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def session_key(client_id: str, secret_hash: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:s:{secret_hash}"


def session_index_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:sessions"


def hash_secret(secret: str) -> str:
    """The key part of a session: SHA-256 of the secret, base64url without padding."""
    digest = hashlib.sha256(secret.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64encode(text: str) -> str:
    """`text` as UTF-8 in base64url without padding."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> str | None:
    """The UTF-8 text base64url `text` encodes, or None."""
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


@dataclass(frozen=True)
class SessionId:
    """A parsed session id: the user's clientId and the random secret."""

    client_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.secret}.{_b64encode(self.client_id)}"

    @classmethod
    def parse(cls, raw: object) -> SessionId | None:
        """A well-formed session id, or None (garbage never costs a Redis call)."""
        if not isinstance(raw, str) or len(raw) > 2048:
            return None
        secret, dot, encoded = raw.partition(".")
        if not dot or not _SECRET_SHAPE.fullmatch(secret):
            return None
        client_id = _b64decode(encoded)
        if not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
            return None
        if _b64encode(client_id) != encoded:  # one spelling per session id, no variants
            return None
        return cls(client_id, secret)

    @property
    def keys(self) -> list[str]:
        """KEYS of this session's scripts: the record, then the user's index (one slot)."""
        return [
            session_key(self.client_id, hash_secret(self.secret)),
            session_index_key(self.client_id),
        ]


# KEYS: session, index. ARGV: user id, lifetime (s), now (Unix s), session hash.
# Expired members are pruned on every start, so the index stays as small as the number of
# live sessions; the index itself lives as long as the newest session.
START_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: session, index. ARGV: session hash. Returns 1 if a live session was ended.
END_LUA = """
local ended = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return ended
"""

# KEYS: index, then one session key per ARGV member (session hashes), all in one slot.
# Returns how many live sessions were ended.
END_MANY_LUA = """
local ended = 0
for i = 1, #ARGV do
  ended = ended + redis.call('DEL', KEYS[i + 1])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return ended
"""


class SessionStore:
    """Start, look up and end sessions; every call touches one user's slot only."""

    def __init__(self, client: redis_py.Redis, lifetime_seconds: int) -> None:
        self.client = client
        self.lifetime = lifetime_seconds
        self._start = StoreScript(client, START_LUA)
        self._end = StoreScript(client, END_LUA)
        self._end_many = StoreScript(client, END_MANY_LUA)

    @translate_errors
    def start(self, client_id: str, user_id: int, now: float) -> str:
        """Record a new session for the user; its id (for the cookie)."""
        session = SessionId(client_id, secrets.token_urlsafe(SECRET_BYTES))
        args: list[str | int] = [user_id, self.lifetime, int(now), hash_secret(session.secret)]
        self._start(keys=session.keys, args=args)
        return str(session)

    @translate_errors
    def find(self, raw_id: object) -> tuple[str, int] | None:
        """(clientId, user id) of a live session, or None."""
        session = SessionId.parse(raw_id)
        if session is None:
            return None
        value = self.client.get(session.keys[0])
        if value is None:
            return None
        return session.client_id, int(value)

    @translate_errors
    def end(self, raw_id: object) -> bool:
        """End one session; whether it was live."""
        session = SessionId.parse(raw_id)
        if session is None:
            return False
        return bool(self._end(keys=session.keys, args=[hash_secret(session.secret)]))

    @translate_errors
    def end_all(self, client_id: str) -> int:
        """End every session of a user; how many were live."""
        index = session_index_key(client_id)
        ended = 0
        for _ in range(END_ALL_MAX_ROUNDS):
            members: list[str] = self.client.zrange(index, 0, END_ALL_BATCH - 1)  # type: ignore[assignment]
            if not members:
                break
            keys = [index, *(session_key(client_id, member) for member in members)]
            ended += int(self._end_many(keys=keys, args=members))
        return ended
