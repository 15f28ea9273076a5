"""Every Redis key and Lua script of the USSD service.

Key scheme (prefix ``ussd:``; ``{...}`` is the Redis Cluster hash tag)::

    ussd:users              hash    casefolded username -> client UUID (the login index)
    ussd:{T}:c              hash    the client record (profile, password hash, is_active, gen)
    ussd:{T}:s:<24 hex>     string  a live Service ID; value = the client's `gen` when it was
                                    issued; TTL 3600 s. Missing = unknown, expired or revoked.
    ussd:{T}:k:<24 hex>     hash    an API key: c = client UUID, s = serviceId; TTL = the
                                    remaining TTL of its Service ID
    ussd:{lf}:p:<32 hex>    string  failed logins for one username from one source address
                                    (sha256 of both); 429 at its limit; TTL = window
    ussd:{lf}:a:<address>   string  failed logins from one source address (IPv6: its /64);
                                    429 at its limit; TTL = window
    ussd:{lf}:u:<32 hex>    string  failed logins for one username from every address (sha256
                                    of it); never a 429, only a growing delay; TTL = window

``T`` is the first 8 hex digits of the client's UUID and is unique per client (checked
when the client is created). Service IDs and API key IDs are minted as UUID4s whose first
8 hex digits are the client's ``T``, so the serviceId alone (the SERVICE_ID payload is
exactly serviceId/iat/exp) names both its own key and its client's record: every
per-request script touches keys of ONE hash slot, and the whole check (client active,
credential generation, Service ID live) is one round trip, in a cluster too. The remaining
90 random bits keep serviceIds unguessable; the JWT signature is what authenticates anyway.

``gen`` is bumped when a client is disabled or its password reset. Login JWTs carry the
``gen`` they were issued under and Service IDs store it, so those events kill every
outstanding token of the client at once (re-enabling does not revive them).

The users index and the login-failure counters live in fixed slots: they are touched only
by logins and admin commands, which the password hash keeps slow anyway.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard, cast

import redis as redis_py

from shared.redis import translate_errors

PREFIX = "ussd:"
USERS_KEY = "ussd:users"
TAG_LENGTH = 8
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

# The login JWT's client must exist, be active and still be on the same generation.
_CHECK_CLIENT = """
local c = redis.call('HMGET', KEYS[1], 'id', 'is_active', 'gen')
if c[1] ~= ARGV[1] or c[2] ~= '1' or c[3] ~= ARGV[2] then return -1 end
"""

# KEYS[1] client record, KEYS[2] new Service ID. ARGV client UUID, gen, ttl seconds.
ISSUE_SERVICE_ID = (
    _CHECK_CLIENT
    + """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# KEYS[1] client record; KEYS[2] Service ID and KEYS[3] new API key, both absent when the
# Service ID has another client's tag. ARGV client UUID, gen, serviceId.
# Returns -1 login JWT's client refused, 0 Service ID refused, 1 created.
CREATE_API_KEY = (
    _CHECK_CLIENT
    + """
if #KEYS < 3 or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return 0 end
redis.call('HSET', KEYS[3], 'c', ARGV[1], 's', ARGV[3])
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
"""
)

# A Service ID is live when its key exists and its client is active on the same gen.
_CHECK_SERVICE_ID = """
local g = redis.call('GET', KEYS[2])
if not g then return false end
local c = redis.call('HMGET', KEYS[1], 'is_active', 'gen')
if c[1] ~= '1' or c[2] ~= g then return false end
"""

# KEYS[1] client record, KEYS[2] Service ID; ARGV profile field names. Nil when refused.
AUTHENTICATE_SERVICE_ID = _CHECK_SERVICE_ID + "return redis.call('HMGET', KEYS[1], unpack(ARGV))"

# KEYS as above. Deletes the Service ID; nil when it was not live.
REVOKE_SERVICE_ID = _CHECK_SERVICE_ID + "redis.call('DEL', KEYS[2])\nreturn 1"

# KEYS[1] client record; ARGV field/value pairs. Never overwrites (tag collision -> 0).
CREATE_CLIENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS[1] client record; ARGV field/value pairs to set, then 1 to bump gen (else 0) last.
UPDATE_CLIENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local bump = table.remove(ARGV)
redis.call('HSET', KEYS[1], unpack(ARGV))
if bump == '1' then redis.call('HINCRBY', KEYS[1], 'gen', 1) end
return 1
"""

# KEYS[1] client record; ARGV hash that was verified, its replacement. Compare-and-set,
# so a login upgrading an old hash can never undo a concurrent password reset.
UPGRADE_HASH = """
if redis.call('HGET', KEYS[1], 'password_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[2])
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


def client_key(client_uuid: str) -> str:
    return f"{PREFIX}{{{client_uuid[:TAG_LENGTH]}}}:c"


def service_id_key(service_id: str) -> str:
    return _tagged_key("s", service_id)


def api_key_key(api_key_id: str) -> str:
    return _tagged_key("k", api_key_id)


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


def _pairs(fields: Mapping[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class UssdStore:
    """Redis access for the USSD service; Redis outages surface as StoreUnavailable."""

    def __init__(self, client: redis_py.Redis) -> None:
        self.redis = client
        self._issue_service_id = client.register_script(ISSUE_SERVICE_ID)
        self._create_api_key = client.register_script(CREATE_API_KEY)
        self._authenticate_service_id = client.register_script(AUTHENTICATE_SERVICE_ID)
        self._revoke_service_id = client.register_script(REVOKE_SERVICE_ID)
        self._create_client = client.register_script(CREATE_CLIENT)
        self._update_client = client.register_script(UPDATE_CLIENT)
        self._upgrade_password_hash = client.register_script(UPGRADE_HASH)
        self._login_wait = client.register_script(LOGIN_WAIT)
        self._login_failed = client.register_script(LOGIN_FAILED)

    # -- clients ---------------------------------------------------------------------

    @translate_errors
    def insert_client_record(self, record: Mapping[str, str]) -> bool:
        """Write a new client record; False when its tag is already taken (pick another id)."""
        return bool(self._create_client(keys=[client_key(record["id"])], args=_pairs(record)))

    @translate_errors
    def claim_username(self, username: str, client_uuid: str) -> bool:
        """Point the username at the client; False when the name is already taken."""
        return bool(self.redis.hsetnx(USERS_KEY, username_field(username), client_uuid))

    @translate_errors
    def delete_client_record(self, client_uuid: str) -> None:
        """Remove a record whose username claim failed (it was never reachable)."""
        self.redis.delete(client_key(client_uuid))

    @translate_errors
    def client_uuid_for(self, username: str) -> str | None:
        # decode_responses=True (shared.redis.connect): replies are str, never bytes.
        return cast(str | None, self.redis.hget(USERS_KEY, username_field(username)))

    @translate_errors
    def client(self, client_uuid: str) -> dict[str, str] | None:
        """The full client record (with password hash), or None."""
        record = cast(dict[str, str], self.redis.hgetall(client_key(client_uuid)))
        return record or None

    @translate_errors
    def all_clients(self) -> list[dict[str, str]]:
        """Every client reachable from the users index."""
        client_uuids = cast(list[str], self.redis.hvals(USERS_KEY))
        pipe = self.redis.pipeline(transaction=False)
        for client_uuid in client_uuids:
            pipe.hgetall(client_key(client_uuid))
        return [cast(dict[str, str], record) for record in pipe.execute() if record]

    @translate_errors
    def update_client(self, client_uuid: str, fields: Mapping[str, str], bump_gen: bool) -> bool:
        """Set fields of an existing client, optionally killing its tokens; False if absent."""
        args = [*_pairs(fields), "1" if bump_gen else "0"]
        return bool(self._update_client(keys=[client_key(client_uuid)], args=args))

    @translate_errors
    def upgrade_password_hash(self, client_uuid: str, verified: str, replacement: str) -> bool:
        keys = [client_key(client_uuid)]
        return bool(self._upgrade_password_hash(keys=keys, args=[verified, replacement]))

    # -- Service IDs and API keys ----------------------------------------------------

    @translate_errors
    def issue_service_id(self, client_uuid: str, gen: int, service_id: str, ttl: int) -> bool:
        """Record a Service ID if the client is active on `gen`; one round trip."""
        keys = [client_key(client_uuid), service_id_key(service_id)]
        return bool(self._issue_service_id(keys=keys, args=[client_uuid, gen, ttl]) == 1)

    @translate_errors
    def create_api_key(
        self, client_uuid: str, gen: int, service_id: str | None, key_id: str
    ) -> int:
        """-1 client refused, 0 Service ID refused, 1 created; one round trip.

        A Service ID that is None (not genuine) or has another client's tag is refused
        without touching its key, which may live in another hash slot.
        """
        keys = [client_key(client_uuid)]
        if service_id is not None and same_client_tag(client_uuid, service_id):
            keys += [service_id_key(service_id), api_key_key(key_id)]
        args: list[str | int] = [client_uuid, gen, service_id or ""]
        result: int = self._create_api_key(keys=keys, args=args)
        return result

    @translate_errors
    def authenticate_service_id(self, service_id: str) -> dict[str, str] | None:
        """The client profile when the Service ID is live, else None; one round trip."""
        keys = [client_key(service_id), service_id_key(service_id)]
        values: Sequence[Any] | None = self._authenticate_service_id(
            keys=keys, args=list(PROFILE_FIELDS)
        )
        if values is None:
            return None
        return {name: value or "" for name, value in zip(PROFILE_FIELDS, values, strict=True)}

    @translate_errors
    def revoke_service_id(self, service_id: str) -> bool:
        """Delete a live Service ID at once; False when it was not live."""
        keys = [client_key(service_id), service_id_key(service_id)]
        return bool(self._revoke_service_id(keys=keys) == 1)

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
