"""Every Redis key and Lua script of the Sabong service.

Key scheme (prefix `sabong:`; the `{...}` hash tag decides the Redis Cluster slot):

    sabong:{c:<clientId>}:u          hash    the user (id, username, name, displayId, ...)
    sabong:{c:<clientId>}:w          hash    the wallet (currency, balance)
    sabong:{c:<clientId>}:log        stream  audit of every token issuance, capped (MAXLEN ~)
    sabong:{c:<clientId>}:r:<sig>    string  replay guard of one accepted signature (TTL)
    sabong:{r:<sig>}                 string  replay guard of a signed request without a
                                             usable clientId (invalid body; TTL)
    sabong:{t:<sha256 b64url>}       string  a live login token -> user id (TTL = expiration)
    sabong:{g}:next_id               string  the user id counter
    sabong:{g}:ids                   hash    user id -> clientId (login, list-users)

A client's keys differ only in what follows `}:`, and no suffix contains `}:`, so no
crafted clientId (even one holding braces) can make one client's key equal another's.
Every script receives every key it touches through KEYS, so a cluster-aware caller can
split a script by slot; on a single node each path is one round trip.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import redis as redis_py

from shared.exceptions import SignatureRejected
from shared.redis import translate_errors

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


# KEYS: replay, user, wallet, audit, token, next_id, ids
# ARGV: replay_ttl, clientId, username, name, now_iso, year, password_hash, token_ttl,
#       ipAddress, audit_maxlen
# Returns {1, user_id, is_new} or {-1} when the signature was already used.
_ISSUE_LUA_TEMPLATE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {-1}
end
local id = redis.call('HGET', KEYS[2], 'id')
local is_new = 0
if id then
  redis.call('HSET', KEYS[2], 'username', ARGV[3], 'name', ARGV[4], 'updatedAt', ARGV[5])
else
  is_new = 1
  id = redis.call('INCR', KEYS[6])
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
  redis.call('HSET', KEYS[2], 'id', id, 'username', ARGV[3], 'name', ARGV[4],
    'displayId', ARGV[2], 'clientId', ARGV[2], 'referralCode', 'REF-' .. ARGV[6] .. '-' .. code,
    'password', ARGV[7], 'role', 'user', 'status', 'active',
    'createdAt', ARGV[5], 'updatedAt', ARGV[5])
  redis.call('HSET', KEYS[3], 'currency', 'USD', 'balance', '0.00')
  redis.call('HSET', KEYS[7], id, ARGV[2])
end
redis.call('SET', KEYS[5], id, 'EX', ARGV[8])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[10], '*',
  'clientId', ARGV[2], 'userId', id, 'ipAddress', ARGV[9], 'expiresIn', ARGV[8],
  'at', ARGV[5])
return {1, tonumber(id), is_new}
"""
# The referral constants are compiled into the script rather than sent with every call.
ISSUE_LUA = (
    _ISSUE_LUA_TEMPLATE.replace("REFERRAL_MODULUS", str(REFERRAL_MODULUS))
    .replace("REFERRAL_MULTIPLIER", str(REFERRAL_MULTIPLIER))
    .replace("REFERRAL_OFFSET", str(REFERRAL_OFFSET))
)

# KEYS: token, ids. Returns {user_id, clientId} for the one caller that wins, else nil.
# GET+DEL inside one script is atomic: of any number of concurrent consumers exactly one
# sees the value (and it works on Redis older than 6.2, which lacks GETDEL).
CONSUME_LUA = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
redis.call('DEL', KEYS[1])
return {id, redis.call('HGET', KEYS[2], id) or ''}
"""


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
    """Redis access for the Sabong service; every method is one round trip."""

    def __init__(self, client: redis_py.Redis, audit_maxlen: int, replay_ttl: int) -> None:
        self.client = client
        self.audit_maxlen = audit_maxlen
        self.replay_ttl = replay_ttl
        self._issue = client.register_script(ISSUE_LUA)
        self._consume = client.register_script(CONSUME_LUA)

    @translate_errors
    def issue_token(self, item: Issuance, signature: str) -> IssueResult:
        """Replay check, user upsert, wallet, token and audit in one atomic script."""
        keys = [
            client_replay_key(item.client_id, signature),
            user_key(item.client_id),
            wallet_key(item.client_id),
            audit_key(item.client_id),
            token_key(item.token),
            NEXT_ID_KEY,
            IDS_KEY,
        ]
        args: list[str | int] = [
            self.replay_ttl, item.client_id, item.username, item.display_name, item.now_iso,
            item.year, item.password_hash, item.token_ttl, item.ip_address, self.audit_maxlen,
        ]  # fmt: skip
        reply = self._issue(keys=keys, args=args)
        if int(reply[0]) < 0:
            raise SignatureRejected("replayed")
        return IssueResult(user_id=int(reply[1]), is_new=bool(int(reply[2])))

    @translate_errors
    def remember_signature(self, signature: str, client_id: str | None) -> None:
        """Record a signature on an error path (SET NX); SignatureRejected if seen."""
        key = client_replay_key(client_id, signature) if client_id else orphan_replay_key(signature)
        if not self.client.set(key, "1", nx=True, ex=self.replay_ttl):
            raise SignatureRejected("replayed")

    @translate_errors
    def token_exists(self, token: str) -> bool:
        """Whether a login token is live, without consuming it."""
        return bool(self.client.exists(token_key(token)))

    @translate_errors
    def consume_token(self, token: str) -> tuple[int, str] | None:
        """Delete a live token and return (user id, clientId); None if not live."""
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
