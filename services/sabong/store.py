"""Every Redis key and Lua script of the Sabong service.

Key scheme (prefix `sabong:`; the `{...}` hash tag decides the Redis Cluster slot):

    sabong:{c:<clientId>}:u          hash    the user (id, username, name, displayId, ...)
    sabong:{c:<clientId>}:w          hash    the wallet (currency, balance)
    sabong:{c:<clientId>}:log        stream  audit of every token issuance, capped (MAXLEN ~)
    sabong:{c:<clientId>}:r:<sig>    string  replay guard of one accepted signature (TTL)
    sabong:{r:<sig>}                 string  replay guard of a signed request without a
                                             usable clientId (invalid body; TTL)
    sabong:{t:<sha256 b64url>}       string  a live login token -> user id (TTL = expiration);
                                             in a cluster `<user id>:<clientId>`
    sabong:{g}:next_id               string  the user id counter
    sabong:{g}:ids                   hash    user id -> clientId (login, list-users)

A client's keys differ only in what follows `}:`, and no suffix contains `}:`, so no
crafted clientId (even one holding braces) can make one client's key equal another's.
Every script receives every key it touches through KEYS.

On one Redis server an issuance is ONE script, one round trip (the performance path).
On a Redis Cluster a script may only touch one slot, so the store (deciding once, when it
is built) splits the work by slot instead, in an order where a failure at any step leaves
nothing that breaks a partner:

1. `{c:<clientId>}` script: replay guard, update of an existing user, audit. For an
   unknown clientId it writes nothing and asks for an id.
2. New users only: `INCR {g}:next_id`, then the `{c:<clientId>}` script again with that
   id: replay guard, create the user and wallet (or, if a concurrent call created them
   meanwhile, update; the id is then wasted), audit. Then `HSET {g}:ids` by the creator.
3. `SET {t:...}` with the TTL; its value is `<user id>:<clientId>` so that signing in is
   one single-slot GET+DEL, with no look-up in `{g}`. The token exists only once the user
   does; should this step fail, the replay guard is released again (best effort), so the
   partner may resend the very request it got a 500 for, as it could on one server.

Round trips per issuance: 1 on one server; in a cluster 2 (existing user) or 5 (new).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis as redis_py
from redis.exceptions import NoScriptError, RedisClusterException

from shared.exceptions import SignatureRejected
from shared.redis import is_cluster, translate_errors

PREFIX = "sabong:"

# REF-YYYY-XXXXXX: XXXXXX = base-36 of (id * MULTIPLIER + OFFSET) mod 36^6. MULTIPLIER is
# coprime to 36 (so to 36^6), which makes the map a bijection: distinct ids below 36^6
# (about 2.18 billion users) get distinct codes with no uniqueness lookup, and codes do
# not reveal how many users exist at a glance.
REFERRAL_MODULUS = 36**6
REFERRAL_MULTIPLIER = 1_345_325_471
REFERRAL_OFFSET = 918_273_645
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def user_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:u"


def wallet_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:w"


def audit_key(client_id: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:log"


def client_replay_key(client_id: str, signature: str) -> str:
    return f"{PREFIX}{{c:{client_id}}}:r:{signature}"


def client_script_keys(client_id: str, signature: str) -> list[str]:
    """KEYS of the per-client part of an issuance (replay, user, wallet, audit): one slot."""
    return [
        client_replay_key(client_id, signature),
        user_key(client_id),
        wallet_key(client_id),
        audit_key(client_id),
    ]


def orphan_replay_key(signature: str) -> str:
    return f"{PREFIX}{{r:{signature}}}"


def token_key(token: str) -> str:
    """Only a hash of the token is ever a key: a Redis dump reveals no usable link."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return f"{PREFIX}{{t:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode('ascii')}}}"


NEXT_ID_KEY = f"{PREFIX}{{g}}:next_id"
IDS_KEY = f"{PREFIX}{{g}}:ids"


def referral_suffix(user_id: int) -> str:
    """The six base-36 characters of a user's referral code (Python twin of the Lua)."""
    value = (user_id * REFERRAL_MULTIPLIER + REFERRAL_OFFSET) % REFERRAL_MODULUS
    chars = []
    for _ in range(6):
        value, digit = divmod(value, 36)
        chars.append(BASE36[digit])
    return "".join(reversed(chars))


# Lua shared by the issuance scripts. ARGV (both scripts): replay_ttl, clientId, username,
# name, now_iso, year, password_hash, token_ttl, ipAddress, audit_maxlen.
_USER_LUA_TEMPLATE = """
local function referral_code(id)
  local m = REFERRAL_MODULUS
  local a = REFERRAL_MULTIPLIER
  -- (id * a) mod m without losing precision in Lua's doubles: split a in 16-bit halves.
  local a_hi = math.floor(a / 65536)
  local a_lo = a % 65536
  local x = id % m
  local v = (((x * a_hi) % m) * 65536 + x * a_lo + REFERRAL_OFFSET) % m
  local digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'
  local code = ''
  for _ = 1, 6 do
    local d = v % 36
    code = string.sub(digits, d + 1, d + 1) .. code
    v = (v - d) / 36
  end
  return 'REF-' .. ARGV[6] .. '-' .. code
end

local function create_user(user_key, wallet_key, id)
  redis.call('HSET', user_key, 'id', id, 'username', ARGV[3], 'name', ARGV[4],
    'displayId', ARGV[2], 'clientId', ARGV[2], 'referralCode', referral_code(id),
    'password', ARGV[7], 'role', 'user', 'status', 'active',
    'createdAt', ARGV[5], 'updatedAt', ARGV[5])
  redis.call('HSET', wallet_key, 'currency', 'USD', 'balance', '0.00')
end

local function update_user(user_key)
  redis.call('HSET', user_key, 'username', ARGV[3], 'name', ARGV[4], 'updatedAt', ARGV[5])
end

local function audit(audit_key, id)
  redis.call('XADD', audit_key, 'MAXLEN', '~', ARGV[10], '*',
    'clientId', ARGV[2], 'userId', id, 'ipAddress', ARGV[9], 'expiresIn', ARGV[8],
    'at', ARGV[5])
end
"""
# The referral constants are compiled into the scripts rather than sent with every call.
_USER_LUA = (
    _USER_LUA_TEMPLATE.replace("REFERRAL_MODULUS", str(REFERRAL_MODULUS))
    .replace("REFERRAL_MULTIPLIER", str(REFERRAL_MULTIPLIER))
    .replace("REFERRAL_OFFSET", str(REFERRAL_OFFSET))
)

# One server. KEYS: replay, user, wallet, audit, token, next_id, ids.
# Returns {1, user_id, is_new} or {-1} when the signature was already used.
ISSUE_LUA = (
    _USER_LUA
    + """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {-1}
end
local id = redis.call('HGET', KEYS[2], 'id')
local is_new = 0
if id then
  update_user(KEYS[2])
else
  is_new = 1
  id = redis.call('INCR', KEYS[6])
  create_user(KEYS[2], KEYS[3], id)
  redis.call('HSET', KEYS[7], id, ARGV[2])
end
redis.call('SET', KEYS[5], id, 'EX', ARGV[8])
audit(KEYS[4], id)
return {1, tonumber(id), is_new}
"""
)

# Cluster, slot {c:<clientId>}. KEYS: replay, user, wallet, audit. ARGV[11]: a fresh user
# id from {g}:next_id, or '' on the first call.
# Returns {1, user_id, is_new}, {-1} when the signature was already used, or {0} when the
# user does not exist and no id was given (nothing written: the caller gets an id first).
UPSERT_LUA = (
    _USER_LUA
    + """
local id = redis.call('HGET', KEYS[2], 'id')
if not id and ARGV[11] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end
  return {0}
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {-1}
end
local is_new = 0
if id then
  update_user(KEYS[2])
else
  is_new = 1
  id = ARGV[11]
  create_user(KEYS[2], KEYS[3], id)
end
audit(KEYS[4], id)
return {1, tonumber(id), is_new}
"""
)
REPLAYED, NEEDS_ID = -1, 0

# One server. KEYS: token, ids. Returns {user_id, clientId} for the one caller that wins,
# else nil. GET+DEL inside one script is atomic: of any number of concurrent consumers
# exactly one sees the value (and it works on Redis older than 6.2, which lacks GETDEL).
CONSUME_LUA = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
redis.call('DEL', KEYS[1])
return {id, redis.call('HGET', KEYS[2], id) or ''}
"""

# Cluster, slot {t:...}. KEYS: token. Returns its value ("<user id>:<clientId>") to the one
# caller that wins, else nil.
TAKE_LUA = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""


class StoreScript:
    """A Lua script run with EVALSHA; on NOSCRIPT, EVAL (which caches it on that server).

    redis-py's own `register_script` answers NOSCRIPT with SCRIPT LOAD on every master of
    a cluster, which fails while any master is down, even one this script never touches;
    EVAL goes only to the master owning the keys (a promoted replica, a restarted node).
    """

    def __init__(self, client: redis_py.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    def __call__(self, keys: Sequence[str], args: Sequence[str | int] = ()) -> Any:
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.client.eval(self.source, len(keys), *keys, *args)


@dataclass(frozen=True)
class Issuance:
    """What one token issuance needs to write."""

    client_id: str
    username: str
    display_name: str
    ip_address: str
    token: str
    token_ttl: int
    now_iso: str
    year: int
    password_hash: str


@dataclass(frozen=True)
class IssueResult:
    """Outcome of an issuance: the user id and whether this call created the user."""

    user_id: int
    is_new: bool


class SabongStore:
    """Redis access for the Sabong service: one round trip per call on one server."""

    def __init__(self, client: redis_py.Redis, audit_maxlen: int, replay_ttl: int) -> None:
        self.client = client
        self.audit_maxlen = audit_maxlen
        self.replay_ttl = replay_ttl
        self.cluster = is_cluster(client)
        if self.cluster:
            self._upsert = StoreScript(client, UPSERT_LUA)
            self._consume = StoreScript(client, TAKE_LUA)
        else:
            self._issue = StoreScript(client, ISSUE_LUA)
            self._consume = StoreScript(client, CONSUME_LUA)

    @translate_errors
    def issue_token(self, item: Issuance, signature: str) -> IssueResult:
        """Replay check, user upsert, wallet, token and audit; atomic on one server."""
        args: list[str | int] = [
            self.replay_ttl, item.client_id, item.username, item.display_name, item.now_iso,
            item.year, item.password_hash, item.token_ttl, item.ip_address, self.audit_maxlen,
        ]  # fmt: skip
        client_keys = client_script_keys(item.client_id, signature)
        if self.cluster:
            return self._issue_in_cluster(item, client_keys, args)
        keys = [*client_keys, token_key(item.token), NEXT_ID_KEY, IDS_KEY]
        reply = self._issue(keys=keys, args=args)
        if int(reply[0]) == REPLAYED:
            raise SignatureRejected("replayed")
        return IssueResult(user_id=int(reply[1]), is_new=bool(int(reply[2])))

    def _issue_in_cluster(
        self, item: Issuance, client_keys: list[str], args: list[str | int]
    ) -> IssueResult:
        """The same issuance as single-slot steps (see the module docstring)."""
        reply = self._upsert(keys=client_keys, args=[*args, ""])
        if int(reply[0]) == NEEDS_ID:
            new_id = int(self.client.incr(NEXT_ID_KEY))
            reply = self._upsert(keys=client_keys, args=[*args, new_id])
        if int(reply[0]) == REPLAYED:
            raise SignatureRejected("replayed")
        result = IssueResult(user_id=int(reply[1]), is_new=bool(int(reply[2])))
        try:
            if result.is_new:
                self.client.hset(IDS_KEY, str(result.user_id), item.client_id)
            value = f"{result.user_id}:{item.client_id}"
            self.client.set(token_key(item.token), value, ex=item.token_ttl)
        except (redis_py.RedisError, RedisClusterException):
            # No token was handed out: free the signature so that the partner may resend
            # the request it gets a 500 for. If this fails too, a resend is a replay.
            with contextlib.suppress(redis_py.RedisError, RedisClusterException):
                self.client.delete(client_keys[0])
            raise
        return result

    @translate_errors
    def remember_signature(self, signature: str, client_id: str | None) -> None:
        """Record a signature on an error path (SET NX); SignatureRejected if seen."""
        key = client_replay_key(client_id, signature) if client_id else orphan_replay_key(signature)
        if not self.client.set(key, "1", nx=True, ex=self.replay_ttl):
            raise SignatureRejected("replayed")

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
    def consume_token(self, token: str) -> tuple[int, str] | None:
        """Delete a live token and return (user id, clientId); None if not live."""
        if self.cluster:
            value = self._consume(keys=[token_key(token)])
            if not value:
                return None
            user_id, _, client_id = str(value).partition(":")
            return (int(user_id), client_id) if client_id else None
        reply = self._consume(keys=[token_key(token), IDS_KEY])
        if not reply or not reply[1]:
            return None
        return int(reply[0]), str(reply[1])

    @translate_errors
    def profile(self, client_id: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """The user and wallet hashes of a client (one pipelined round trip), or None."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(user_key(client_id))
        pipe.hgetall(wallet_key(client_id))
        user, wallet = pipe.execute()
        if not user:
            return None
        return user, wallet

    @translate_errors
    def list_clients(self) -> list[tuple[int, str]]:
        """(user id, clientId) of every user, by id."""
        ids: dict[str, str] = self.client.hgetall(IDS_KEY)  # type: ignore[assignment]
        return sorted((int(uid), cid) for uid, cid in ids.items())

    @translate_errors
    def users(self, client_ids: list[str]) -> list[dict[str, str]]:
        """The user hashes of several clients in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for client_id in client_ids:
            pipe.hgetall(user_key(client_id))
        return [user for user in pipe.execute() if user]

    @translate_errors
    def audit(self, client_id: str, count: int) -> list[dict[str, Any]]:
        """The most recent `count` issuances of a client, newest first."""
        entries: list[tuple[str, dict[str, str]]] = self.client.xrevrange(  # type: ignore[assignment]
            audit_key(client_id), count=count
        )
        return [{"entryId": entry_id, **fields} for entry_id, fields in entries]
