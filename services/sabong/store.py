"""Every Redis key and Lua script of the Sabong service: only what expires.

Users, wallets and the issuance audit are durable records in PostgreSQL
(services/sabong/user_store.py). Redis keeps what has a TTL (prefix `sabong:`; the `{...}`
hash tag decides the Redis Cluster slot):

    sabong:{c:<clientId>}:r:<sig>    string  replay guard of one accepted signature (TTL)
    sabong:{r:<sig>}                 string  replay guard of a signed request without a
                                             usable clientId (invalid body; TTL)
    sabong:{t:<sha256 b64url>}       string  a live login token -> ":<clientId>", or
                                             "<user id>:<clientId>" (TTL = expiration)

The token is stored before its user is written to PostgreSQL (issuance.py), when the user
id is not known yet: its value is ":<clientId>", and signing in looks the user up by
clientId. A value with the id ("<user id>:<clientId>", written by the issuances of
2026-12-03 to 2026-12-06, which added it in a second write) needs no look-up.

A client's guard keys differ only in what follows `}:`, and no suffix contains `}:`, so
no crafted clientId (even one holding braces) can make one client's key equal another's.
Every script receives every key it touches through KEYS.

An issuance writes a replay guard and a token, before its user is written to PostgreSQL.
On one server that is ONE script, one round trip: the guard (SET NX) and, only if the
signature is fresh, the token. In a cluster the two keys live in different slots, so the
store sends the guard first and then the token; should the token fail, the guard is
released again (best effort), so the partner may resend the very request it got a 500
for.

The previous version also kept users, wallets, audit streams and a user id counter
here; services/sabong/legacy_import.py documents those keys and imports them once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from dataclasses import dataclass

import redis as redis_py
from redis.exceptions import RedisClusterException

from shared.exceptions import SignatureRejected
from shared.redis import PendingReply, StoreScript, is_cluster, send, translate_errors

PREFIX = "sabong:"


def client_replay_key(client_id: str, signature: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:r:{signature}"


def orphan_replay_key(signature: str) -> str:
    return f"{PREFIX}{{r:{signature}}}"


def token_key(token: str) -> str:
    """Only a hash of the token is ever a key: a Redis dump reveals no usable link."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return f"{PREFIX}{{t:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode('ascii')}}}"


def token_value(client_id: str, user_id: int | None = None) -> str:
    """What a token key holds: its user (the id left empty while not known)."""
    return f"{'' if user_id is None else user_id}:{client_id}"


def token_owner(value: str) -> tuple[int | None, str] | None:
    """(user id or None, clientId) of a token value; None if it names no user."""
    user_id, colon, client_id = value.partition(":")
    if not colon or not client_id:
        return None
    return (int(user_id) if user_id else None), client_id


# One server. KEYS: replay guard, token. ARGV: replay_ttl, token value, token_ttl.
# Returns 1, or 0 (nothing written) when the signature was already used.
ISSUE_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Slot {t:...}. KEYS: token. Returns {value, remaining TTL in ms} to the one caller that
# wins, else nil. GET+DEL inside one script is atomic: of any number of concurrent
# consumers exactly one sees the value (and it works on Redis older than 6.2, which lacks
# GETDEL). The TTL lets a sign-in that fails afterwards put the token back.
TAKE_LUA = """
local value = redis.call('GET', KEYS[1])
if not value then return nil end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {value, ttl}
"""


class PendingGuard:
    """A replay guard (SET NX) sent to Redis, its reply not read yet."""

    def __init__(self, reply: PendingReply) -> None:
        self.reply = reply

    @translate_errors
    def confirm(self) -> None:
        """Read the verdict (once): SignatureRejected if the signature was already spent."""
        if self.reply.reply() is None:
            raise SignatureRejected("replayed")


@dataclass(frozen=True)
class TakenToken:
    """A login token just consumed: whose it was, and how to put it back."""

    token: str
    remaining_ms: int
    user_id: int | None  # None: look the user up by clientId (see the module docstring)
    client_id: str


class SabongStore:
    """Redis access for the Sabong service: replay guards and login tokens."""

    def __init__(self, client: redis_py.Redis, replay_ttl: int) -> None:
        self.client = client
        self.replay_ttl = replay_ttl
        self.cluster = is_cluster(client)
        self._issue = StoreScript(client, ISSUE_LUA)
        self._take = StoreScript(client, TAKE_LUA)

    @translate_errors
    def store_token(self, token: str, ttl: int, client_id: str, signature: str) -> None:
        """Spend the signature and store the token; SignatureRejected if already spent."""
        guard = client_replay_key(client_id, signature)
        value = token_value(client_id)
        if self.cluster:
            self._store_token_in_cluster(token, ttl, value, guard)
            return
        args: list[str | int] = [self.replay_ttl, value, ttl]
        if not int(self._issue(keys=[guard, token_key(token)], args=args)):
            raise SignatureRejected("replayed")

    def _store_token_in_cluster(self, token: str, ttl: int, value: str, guard: str) -> None:
        """The same two writes as single-slot commands: the guard first, then the token."""
        if not self.client.set(guard, "1", nx=True, ex=self.replay_ttl):
            raise SignatureRejected("replayed")
        try:
            self.client.set(token_key(token), value, ex=ttl)
        except (redis_py.RedisError, RedisClusterException):
            # No token was handed out: free the signature so that the partner may resend
            # the request it gets a 500 for. If this fails too, a resend is a replay.
            with contextlib.suppress(redis_py.RedisError, RedisClusterException):
                self.client.delete(guard)
            raise

    def forget_token(self, token: str, client_id: str, signature: str) -> None:
        """Best effort: delete a token and free its signature (its issuance was undone)."""
        for key in (token_key(token), client_replay_key(client_id, signature)):
            # One key per call: in a cluster they live in different slots.
            with contextlib.suppress(redis_py.RedisError, RedisClusterException):
                self.client.delete(key)

    def remember_signature(self, signature: str, client_id: str | None) -> None:
        """Record a signature (SET NX); SignatureRejected if it was already seen."""
        self.send_signature_guard(signature, client_id).confirm()

    @translate_errors
    def send_signature_guard(self, signature: str, client_id: str | None) -> PendingGuard:
        """Send the replay guard of a signature now; its verdict comes with `confirm()`."""
        key = client_replay_key(client_id, signature) if client_id else orphan_replay_key(signature)
        # Every wallet request passes here: the lean path (see shared.redis.command).
        return PendingGuard(send(self.client, "SET", key, "1", "NX", "EX", self.replay_ttl))

    def forget_signature(self, signature: str, client_id: str | None) -> None:
        """Best effort: release a remembered signature whose request did nothing (a 500),
        so that the partner may resend that very request."""
        key = client_replay_key(client_id, signature) if client_id else orphan_replay_key(signature)
        with contextlib.suppress(redis_py.RedisError, RedisClusterException):
            self.client.delete(key)

    @translate_errors
    def token_exists(self, token: str) -> bool:
        """Whether a login token is live, without consuming it."""
        return bool(self.client.exists(token_key(token)))

    @translate_errors
    def consume_token(self, token: str) -> TakenToken | None:
        """Delete a live token and return what it held; None if it was not live."""
        taken = self._take(keys=[token_key(token)])
        if not taken:
            return None
        owner = token_owner(str(taken[0]))
        if owner is None:
            return None
        return TakenToken(token, int(taken[1]), *owner)

    def restore_token(self, taken: TakenToken) -> None:
        """Best effort: put a consumed token back for the rest of its TTL (its sign-in
        failed for a reason not the player's, so their link must keep working)."""
        if taken.remaining_ms <= 0:
            return
        with contextlib.suppress(redis_py.RedisError, RedisClusterException):
            # NX: never overwrite; the token cannot have been re-issued meanwhile anyway.
            value = token_value(taken.client_id, taken.user_id)
            self.client.set(token_key(taken.token), value, px=taken.remaining_ms, nx=True)
