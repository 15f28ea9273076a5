"""Every Redis key and Lua script of the USSD service.

Redis holds what expires; the K2 client accounts and API keys themselves live in
PostgreSQL (services/ussd/account_store.py). Key scheme (prefix ``ussd:``; ``{...}`` is the
Redis Cluster hash tag)::

    ussd:{T}:a              hash    CACHE of the client record (profile, is_active, gen; never
                                    the password hash), rebuilt from PostgreSQL on a miss;
                                    TTL USSD_CLIENT_CACHE_TTL. While a miss is being filled
                                    it holds only ``lease`` (see fill_client_cache); TTL 5 s.
    ussd:{T}:s:<24 hex>     string  a live Service ID; value = the client's `gen` when it was
                                    issued; TTL 3600 s. Missing = unknown, expired or revoked.
    ussd:{lf}:p:<32 hex>    string  failed logins for one username from one source address
                                    (sha256 of both); 429 at its limit; TTL = window
    ussd:{lf}:a:<address>   string  failed logins from one source address (IPv6: its /64);
                                    429 at its limit; TTL = window
    ussd:{lf}:u:<32 hex>    string  failed logins for one username from every address (sha256
                                    of it); never a 429, only a growing delay; TTL = window

``T`` is the first 8 hex digits of the client's UUID and is unique per client (a UNIQUE
column of k2_clients). Service IDs are minted as UUID4s whose first 8 hex digits are the
client's ``T``, so the serviceId alone (the SERVICE_ID payload is exactly
serviceId/iat/exp) names both its own key and its client's cached record: every
per-request script touches keys of ONE hash slot, and the whole check (client active,
credential generation, Service ID live) is one round trip, in a cluster too. The
remaining 90 random bits keep serviceIds unguessable; the JWT signature is what
authenticates anyway.

``gen`` is bumped when a client is disabled or its password reset. Login JWTs carry the
``gen`` they were issued under and Service IDs store it, so those events kill every
outstanding token of the client at once (re-enabling does not revive them).

Fail closed: a per-request script that finds no cached record answers ``miss`` and never
accepts; the service then loads the record from PostgreSQL, caches it and runs the script
again (services/ussd/client_cache.py). The login-failure counters live in a fixed slot:
they are touched only by logins, which the password hash keeps slow anyway.

(The previous version kept the accounts in Redis: ``ussd:users`` and ``ussd:{T}:c``;
services/ussd/legacy_import.py reads those once into PostgreSQL.)
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import redis as redis_py

from shared.redis import StoreScript, translate_errors

PREFIX = "ussd:"
TAG_LENGTH = 8
# What a per-request script answers when the client record is not cached.
CACHE_MISS = "miss"
# A fill lease outlives any PostgreSQL read it covers (the statement timeout is 10 s, but
# a fill read that slow fails anyway); an abandoned lease is gone after this.
FILL_LEASE_SECONDS = 5
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Fields of the client record a Service-ID request may read (never the password hash).
PROFILE_FIELDS = (
    "id",
    "client_id",
    "username",
    "email",
    "role",
    "is_active",
    "msisdn",
    "created_at",
    "updated_at",
)
# What the cache holds: the profile, and the generation the scripts check tokens against.
CACHED_FIELDS = (*PROFILE_FIELDS, "gen")

# The login JWT's client must be cached, active and still on the same generation.
_CHECK_CLIENT = """
local c = redis.call('HMGET', KEYS[1], 'id', 'is_active', 'gen')
if not c[3] then return 'miss' end
if c[1] ~= ARGV[1] or c[2] ~= '1' or c[3] ~= ARGV[2] then return -1 end
"""

# KEYS[1] cached client, KEYS[2] new Service ID. ARGV client UUID, gen, ttl seconds.
# Returns 'miss', -1 (client refused) or 1 (recorded).
ISSUE_SERVICE_ID = (
    _CHECK_CLIENT
    + """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# KEYS[1] cached client; KEYS[2] the Service ID, absent when it has another client's tag.
# ARGV client UUID, gen. Returns 'miss', -1 login JWT's client refused, 0 Service ID
# refused, 1 Service ID live (the API key itself is then written to PostgreSQL).
CHECK_API_KEY_GRANT = (
    _CHECK_CLIENT
    + """
if #KEYS < 2 or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
return 1
"""
)

# A Service ID is live when its key exists and its client is active on the same gen. An
# unknown, expired or revoked one is refused before the client record is even looked at,
# so it can never cause a PostgreSQL read.
_CHECK_SERVICE_ID = """
local g = redis.call('GET', KEYS[2])
if not g then return false end
local c = redis.call('HMGET', KEYS[1], 'is_active', 'gen')
if not c[2] then return 'miss' end
if c[1] ~= '1' or c[2] ~= g then return false end
"""

# KEYS[1] cached client, KEYS[2] Service ID; ARGV profile field names.
# Returns the profile values, 'miss', or nil when refused.
AUTHENTICATE_SERVICE_ID = _CHECK_SERVICE_ID + "return redis.call('HMGET', KEYS[1], unpack(ARGV))"

# KEYS as above. Deletes the Service ID; 'miss', or nil when it was not live.
REVOKE_SERVICE_ID = _CHECK_SERVICE_ID + "redis.call('DEL', KEYS[2])\nreturn 1"

# KEYS[1] cached client; ARGV[1] a fresh lease id, ARGV[2] lease seconds.
# '' when the record is cached (nothing to fill); else the lease to fill under: the one
# already pending (concurrent misses share it), or ARGV[1], now set.
BEGIN_FILL = """
if redis.call('HEXISTS', KEYS[1], 'gen') == 1 then return '' end
local pending = redis.call('HGET', KEYS[1], 'lease')
if pending then return pending end
redis.call('HSET', KEYS[1], 'lease', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return ARGV[1]
"""

# KEYS[1] cached client; ARGV[1] the lease, ARGV[2] ttl, then field/value pairs.
# Writes the record only while the lease is still there: an admin write, a FLUSHALL, a
# failover or an earlier fill since BEGIN_FILL all removed it. Returns 1 written, 0 not.
FILL = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] cached client; ARGV[1] ttl, then field/value pairs. An admin change: replaces
# whatever is there (a record, a pending fill's lease) unconditionally.
REPLACE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1] (username, address) counter, KEYS[2] address counter, KEYS[3] username counter;
# ARGV the limits of the first two, then the window seconds.
# Returns {seconds until the blocking counter(s) expire (0 when neither the pair nor the
# address is at its limit), the username's failures from every address}. A counter found
# without a TTL gets one, so no lockout can ever be permanent.
LOGIN_WAIT = """
local wait = 0
for i = 1, 2 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then
      redis.call('EXPIRE', KEYS[i], ARGV[3])
      ttl = tonumber(ARGV[3])
    end
    if ttl > wait then wait = ttl end
  end
end
return {wait, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""

# KEYS as LOGIN_WAIT; ARGV[1] window seconds.
# A fixed window opened by the first failure; a counter never lives without a TTL.
LOGIN_FAILED = """
for i = 1, 3 do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"""


def is_uuid(value: object) -> TypeGuard[str]:
    """True for a canonical lowercase UUID string (the only form used in keys)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def tagged_uuid(client_uuid: str) -> str:
    """A fresh UUID4 whose first 8 hex digits are the client's tag (same hash slot)."""
    return client_uuid[:TAG_LENGTH] + str(uuid.uuid4())[TAG_LENGTH:]


def same_client_tag(client_uuid: str, tagged: str) -> bool:
    """True when `tagged` was minted for `client_uuid`'s tag."""
    return tagged[:TAG_LENGTH] == client_uuid[:TAG_LENGTH]


def client_cache_key(tagged: str) -> str:
    """The cached record of the client whose tag `tagged` (its UUID, or a Service ID) has."""
    return f"{PREFIX}{{{client_tag(tagged)}}}:a"


def client_tag(tagged: str) -> str:
    """The 8-hex-digit tag of a client UUID or of an id minted for it."""
    return tagged[:TAG_LENGTH]


def service_id_key(service_id: str) -> str:
    return _tagged_key("s", service_id)


def username_field(username: str) -> str:
    """The users-index field: usernames are unique and matched case-insensitively."""
    return username.casefold()


def login_counter_keys(username: str, address: str) -> list[str]:
    """The (username, address), address and username failure counters of one attempt.

    Usernames are hashed: bounded key length whatever the name, and no `{` from input in
    a key. Every key carries the `{lf}` tag, so each login script stays in one slot.
    """
    name = username_field(username)
    bucket = address_bucket(address)
    pair = hashlib.sha256(f"{name}\n{bucket}".encode("utf-8", "replace")).hexdigest()[:32]
    user = hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:32]
    return [f"{PREFIX}{{lf}}:p:{pair}", f"{PREFIX}{{lf}}:a:{bucket}", f"{PREFIX}{{lf}}:u:{user}"]


def address_bucket(address: str) -> str:
    """The unit the per-address limits count: an IPv4 address, or an IPv6 /64.

    One IPv6 host is routinely given a whole /64 and picks any address in it, so counting
    single IPv6 addresses would hand it 2**64 fresh buckets. Anything that is not an IP
    address (it should not happen behind the gateway) is hashed to a bounded key.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "h" + hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:32]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _tagged_key(kind: str, tagged: str) -> str:
    """`ussd:{T}:<kind>:<rest of the UUID without dashes>`: short keys, small memory."""
    return f"{PREFIX}{{{tagged[:TAG_LENGTH]}}}:{kind}:{tagged[TAG_LENGTH + 1 :].replace('-', '')}"


class ClientNotCached(Exception):
    """A per-request script found no cached client record. Never an answer on its own:
    the caller loads the record from PostgreSQL and runs the script again."""


def _unless_missed(reply: Any) -> Any:
    """A script's reply, or ClientNotCached when it says the client is not cached."""
    if reply == CACHE_MISS:
        raise ClientNotCached()
    return reply


def _cached_pairs(record: Mapping[str, str]) -> list[str]:
    """Field/value pairs of what the cache keeps of a record (never the password hash)."""
    return [item for name in CACHED_FIELDS for item in (name, record.get(name) or "")]


class UssdStore:
    """Redis access for the USSD service; Redis outages surface as StoreUnavailable."""

    def __init__(self, client: redis_py.Redis, client_cache_ttl: int = 300) -> None:
        self.redis = client
        self.client_cache_ttl = client_cache_ttl
        self._issue_service_id = StoreScript(client, ISSUE_SERVICE_ID)
        self._check_api_key_grant = StoreScript(client, CHECK_API_KEY_GRANT)
        self._authenticate_service_id = StoreScript(client, AUTHENTICATE_SERVICE_ID)
        self._revoke_service_id = StoreScript(client, REVOKE_SERVICE_ID)
        self._begin_fill = StoreScript(client, BEGIN_FILL)
        self._fill = StoreScript(client, FILL)
        self._replace = StoreScript(client, REPLACE)
        self._login_wait = StoreScript(client, LOGIN_WAIT)
        self._login_failed = StoreScript(client, LOGIN_FAILED)

    # -- the client cache (services/ussd/client_cache.py says when each is used) -----

    @translate_errors
    def begin_client_fill(self, tag: str, lease: str) -> str:
        """'' when the client is cached; else the lease a fill must be written under."""
        reply: str = self._begin_fill(
            keys=[client_cache_key(tag)], args=[lease, FILL_LEASE_SECONDS]
        )
        return reply

    @translate_errors
    def fill_client_cache(self, record: Mapping[str, str], lease: str) -> bool:
        """Cache a record read from PostgreSQL, unless anything was written since `lease`."""
        args: list[str | int] = [lease, self.client_cache_ttl, *_cached_pairs(record)]
        return bool(self._fill(keys=[client_cache_key(record["id"])], args=args))

    @translate_errors
    def replace_client_cache(self, record: Mapping[str, str]) -> None:
        """Cache an admin change's record over whatever is cached (pending fills fail)."""
        args: list[str | int] = [self.client_cache_ttl, *_cached_pairs(record)]
        self._replace(keys=[client_cache_key(record["id"])], args=args)

    # -- Service IDs and API keys: each raises ClientNotCached on a cache miss -------

    @translate_errors
    def issue_service_id(self, client_uuid: str, gen: int, service_id: str, ttl: int) -> bool:
        """Record a Service ID if the client is active on `gen`; one round trip."""
        keys = [client_cache_key(client_uuid), service_id_key(service_id)]
        reply = _unless_missed(self._issue_service_id(keys=keys, args=[client_uuid, gen, ttl]))
        return bool(reply == 1)

    @translate_errors
    def check_api_key_grant(self, client_uuid: str, gen: int, service_id: str | None) -> int:
        """-1 client refused, 0 Service ID refused, 1 the Service ID is live; one round trip.

        A Service ID that is None (not genuine) or has another client's tag is refused
        without touching its key, which may live in another hash slot.
        """
        keys = [client_cache_key(client_uuid)]
        if service_id is not None and same_client_tag(client_uuid, service_id):
            keys.append(service_id_key(service_id))
        return int(_unless_missed(self._check_api_key_grant(keys=keys, args=[client_uuid, gen])))

    @translate_errors
    def authenticate_service_id(self, service_id: str) -> dict[str, str] | None:
        """The client profile when the Service ID is live, else None; one round trip."""
        keys = [client_cache_key(service_id), service_id_key(service_id)]
        values: Sequence[Any] | None = _unless_missed(
            self._authenticate_service_id(keys=keys, args=list(PROFILE_FIELDS))
        )
        if values is None:
            return None
        return {name: value or "" for name, value in zip(PROFILE_FIELDS, values, strict=True)}

    @translate_errors
    def revoke_service_id(self, service_id: str) -> bool:
        """Delete a live Service ID at once; False when it was not live."""
        keys = [client_cache_key(service_id), service_id_key(service_id)]
        return bool(_unless_missed(self._revoke_service_id(keys=keys)) == 1)

    # -- login throttling ------------------------------------------------------------

    @translate_errors
    def login_wait(
        self, username: str, address: str, limits: tuple[int, int], window: int
    ) -> tuple[int, int]:
        """Seconds the caller must wait before another attempt (0 = go ahead), and the
        username's failed logins from every address in the current window."""
        keys = login_counter_keys(username, address)
        wait, username_failures = self._login_wait(keys=keys, args=[*limits, window])
        return int(wait), int(username_failures)

    @translate_errors
    def record_login_failure(self, username: str, address: str, window: int) -> None:
        self._login_failed(keys=login_counter_keys(username, address), args=[window])

    @translate_errors
    def clear_username_failures(self, username: str, address: str) -> None:
        """The right password: the username starts over, from this address and overall."""
        pair, _, overall = login_counter_keys(username, address)
        # The address counter stays: one good account must not unlock an address.
        self.redis.delete(pair, overall)
