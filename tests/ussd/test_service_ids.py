"""Service IDs: minting, the Service-ID-authenticated endpoints, API keys, revocation,
and the attacks the token design must stop."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import redis as redis_py
from flask import Flask
from flask.testing import FlaskClient

from services.ussd import accounts
from services.ussd.runtime import set_clock
from services.ussd.store import service_id_key
from shared import tokens

from .helpers import (
    assert_envelope,
    b64url,
    bearer,
    jwt_parts,
    login_token,
    new_service_id,
)

GENERATE = "/api/clients/generate-service-id"
API_KEY = "/api/clients/generate-api-key"
ME = "/api/clients/me"
REVOKE = "/api/clients/revoke-service-id"


def test_generate_service_id_matches_the_seed(client: FlaskClient, ctx, partner) -> None:
    token = login_token(client, partner)
    response = client.post(GENERATE, headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == 201 and body["message"] == "Service created"
    assert list(body["data"]) == ["SERVICE_ID"]
    header, payload = jwt_parts(body["data"]["SERVICE_ID"])
    assert header == {"alg": "HS256", "typ": "JWT"}  # the seed's header, byte for byte
    assert list(payload) == ["serviceId", "iat", "exp"]
    assert payload["exp"] - payload["iat"] == 3600
    assert uuid.UUID(payload["serviceId"]).version == 4
    assert abs(payload["iat"] - time.time()) < 5
    # A standard HS256 JWT: any library holding the key accepts it.
    decoded = jwt.decode(body["data"]["SERVICE_ID"], ctx.service_id_token.key, algorithms=["HS256"])
    assert decoded == payload


def test_service_ids_are_dated_and_expired_by_the_runtime_clock(
    app: Flask, client: FlaskClient, partner
) -> None:
    token = login_token(client, partner)
    # In the past: PyJWT itself refuses an `iat` ahead of the real clock.
    pinned = int(time.time()) - 7200
    set_clock(app, lambda: pinned + 0.5)
    service_id = new_service_id(client, token)
    assert jwt_parts(service_id)[1]["iat"] == pinned
    me = client.get(ME, headers=bearer(service_id))
    assert me.status_code == 200 and me.get_json()["data"]["expires_in"] == 3600
    set_clock(app, lambda: pinned + 3600)  # Redis still holds it: the clock alone decides
    assert_envelope(client.get(ME, headers=bearer(service_id)), 403, "Service ID expired")


def test_service_id_is_recorded_with_one_hour_ttl(
    client: FlaskClient, partner, redis_client: redis_py.Redis
) -> None:
    service_id = new_service_id(client, login_token(client, partner))
    key = service_id_key(jwt_parts(service_id)[1]["serviceId"])
    assert key.startswith("ussd:{")
    assert 3590 <= redis_client.ttl(key) <= 3600


def test_each_call_mints_a_new_service_id(client: FlaskClient, partner) -> None:
    token = login_token(client, partner)
    ids = {jwt_parts(new_service_id(client, token))[1]["serviceId"] for _ in range(5)}
    assert len(ids) == 5


def test_generate_accepts_empty_or_any_json_body(client: FlaskClient, partner) -> None:
    token = login_token(client, partner)
    assert client.post(GENERATE, headers=bearer(token), data=b"").status_code == 201
    assert client.post(GENERATE, headers=bearer(token), json={}).status_code == 201
    assert client.post(GENERATE, headers=bearer(token), json={"x": [1]}).status_code == 201


@pytest.mark.parametrize("body", [b"{", b"not json", b"{'a': 1}", b"\xff\xfe", b"NaN", b"  "])
def test_generate_rejects_a_body_that_is_not_json(client: FlaskClient, partner, body) -> None:
    token = login_token(client, partner)
    response = client.post(
        GENERATE, headers=bearer(token), data=body, content_type="application/json"
    )
    assert_envelope(response, 400, "Invalid request format")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer x y", "token"],
)
def test_generate_without_a_usable_login_jwt_is_401(client: FlaskClient, authorization) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_envelope(client.post(GENERATE, headers=headers), 401, "Invalid JWT token")


def test_me_returns_profile_service_id_and_expiry(client: FlaskClient, partner) -> None:
    service_id = new_service_id(client, login_token(client, partner))
    response = client.get(ME, headers=bearer(service_id))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == 200 and body["message"] == "Client retrieved"
    data = body["data"]
    claims = jwt_parts(service_id)[1]
    assert data["serviceId"] == claims["serviceId"]
    assert data["expires_at"].endswith("Z") and 3590 <= data["expires_in"] <= 3600
    assert data["client"]["id"] == partner.record["id"]
    assert data["client"]["username"] == partner.username
    assert "password" not in response.get_data(as_text=True)


def test_revoke_stops_the_service_id_at_once(
    client: FlaskClient, partner, redis_client: redis_py.Redis
) -> None:
    service_id = new_service_id(client, login_token(client, partner))
    response = client.post(REVOKE, headers=bearer(service_id))
    assert response.status_code == 200
    assert response.get_json() == {
        "status": 200,
        "message": "Service ID revoked",
        "data": {"serviceId": jwt_parts(service_id)[1]["serviceId"]},
    }
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    assert_envelope(client.post(REVOKE, headers=bearer(service_id)), 401, "Invalid service ID")
    assert not redis_client.exists(service_id_key(jwt_parts(service_id)[1]["serviceId"]))


def test_revoking_one_service_id_leaves_the_others(client: FlaskClient, partner) -> None:
    token = login_token(client, partner)
    first, second = new_service_id(client, token), new_service_id(client, token)
    assert client.post(REVOKE, headers=bearer(first)).status_code == 200
    assert client.get(ME, headers=bearer(second)).status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic abc", "Bearer not-a-jwt", "Bearer a.b.c"]
)
def test_service_id_endpoints_without_a_usable_service_id_are_401(
    client: FlaskClient, authorization
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_envelope(client.get(ME, headers=headers), 401, "Invalid service ID")
    assert_envelope(client.post(REVOKE, headers=headers), 401, "Invalid service ID")


def test_expired_service_id_is_403(client: FlaskClient, ctx, partner) -> None:
    past = int(time.time()) - 3601
    service_id = str(uuid.uuid4())
    token = tokens.issue(ctx.service_id_token, {"serviceId": service_id}, now=past)
    assert_envelope(client.get(ME, headers=bearer(token)), 403, "Service ID expired")
    assert_envelope(client.post(REVOKE, headers=bearer(token)), 403, "Service ID expired")


def test_genuine_but_unrecorded_service_id_is_401(client: FlaskClient, ctx, partner) -> None:
    # Signed with the real key but never recorded by generate-service-id: Redis, not the
    # signature alone, decides whether a Service ID is live.
    forged_id = partner.record["id"][:8] + str(uuid.uuid4())[8:]
    token = tokens.issue(ctx.service_id_token, {"serviceId": forged_id})
    assert_envelope(client.get(ME, headers=bearer(token)), 401, "Invalid service ID")


def test_token_type_confusion_service_id_as_login_jwt(client: FlaskClient, partner) -> None:
    service_id = new_service_id(client, login_token(client, partner))
    assert_envelope(client.post(GENERATE, headers=bearer(service_id)), 401, "Invalid JWT token")
    response = client.post(API_KEY, headers=bearer(service_id), json={"service_id": service_id})
    assert_envelope(response, 401, "Invalid JWT token")


def test_token_type_confusion_login_jwt_as_service_id(client: FlaskClient, partner) -> None:
    token = login_token(client, partner)
    assert_envelope(client.get(ME, headers=bearer(token)), 401, "Invalid service ID")
    assert_envelope(client.post(REVOKE, headers=bearer(token)), 401, "Invalid service ID")
    response = client.post(API_KEY, headers=bearer(token), json={"service_id": token})
    assert_envelope(response, 403, "Service ID expired or invalid")


def test_token_type_confusion_same_key_other_typ_is_refused(client: FlaskClient, ctx) -> None:
    # A token signed with the Service ID key but claiming the login type (and vice versa).
    sneaky = jwt.encode(
        {"sub": str(uuid.uuid4()), "gen": 1, "iat": int(time.time()), "exp": 2**40},
        ctx.service_id_token.key,
        algorithm="HS256",
        headers={"typ": ctx.login_token.typ},
    )
    assert_envelope(client.post(GENERATE, headers=bearer(sneaky)), 401, "Invalid JWT token")


def test_alg_none_tokens_are_refused(client: FlaskClient, partner) -> None:
    claims = {"sub": partner.record["id"], "gen": 1, "iat": int(time.time()), "exp": 2**40}
    login_none = f"{b64url({'alg': 'none', 'typ': 'k2-login+jwt'})}.{b64url(claims)}."
    assert_envelope(client.post(GENERATE, headers=bearer(login_none)), 401, "Invalid JWT token")
    sid_claims = {"serviceId": str(uuid.uuid4()), "iat": int(time.time()), "exp": 2**40}
    sid_none = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(sid_claims)}."
    assert_envelope(client.get(ME, headers=bearer(sid_none)), 401, "Invalid service ID")


def test_tampered_tokens_are_refused(client: FlaskClient, partner, make_partner) -> None:
    token = login_token(client, partner)
    other = make_partner("other-client")
    head, _, signature = token.split(".")
    claims = {"sub": other.record["id"], "gen": 1, "iat": int(time.time()), "exp": 2**40}
    tampered = f"{head}.{b64url(claims)}.{signature}"
    assert_envelope(client.post(GENERATE, headers=bearer(tampered)), 401, "Invalid JWT token")
    service_id = new_service_id(client, token)
    head, payload, signature = service_id.split(".")
    flipped = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert_envelope(client.get(ME, headers=bearer(flipped)), 401, "Invalid service ID")


def test_generate_api_key_links_key_to_client_and_service_id(
    client: FlaskClient, partner, db
) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    response = client.post(API_KEY, headers=bearer(token), json={"service_id": service_id})
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == 201 and body["message"] == "API Key created"
    key_id = body["data"]["id"]
    assert str(uuid.UUID(key_id)) == key_id and list(body["data"]) == ["id"]
    # A durable record in PostgreSQL, expiring with its Service ID.
    stored = db.execute(
        "SELECT client::text, service_id::text, extract(epoch FROM expires_at)::bigint"
        " FROM k2_api_keys WHERE id = %s",
        (key_id,),
    ).fetchall()
    payload = jwt_parts(service_id)[1]
    assert stored == [(partner.record["id"], payload["serviceId"], payload["exp"])]


@pytest.mark.parametrize(
    "body", [None, {}, {"service_id": ""}, {"service_id": 5}, {"service_id": None}]
)
def test_generate_api_key_without_service_id_is_400(client: FlaskClient, partner, body) -> None:
    token = login_token(client, partner)
    kwargs = {} if body is None else {"json": body}
    response = client.post(API_KEY, headers=bearer(token), **kwargs)
    assert_envelope(response, 400, "Service ID is required")


@pytest.mark.parametrize("body", [b"{", b"[]", b'"text"', b"\xff"])
def test_generate_api_key_with_malformed_body_is_400(client: FlaskClient, partner, body) -> None:
    token = login_token(client, partner)
    response = client.post(
        API_KEY, headers=bearer(token), data=body, content_type="application/json"
    )
    assert_envelope(response, 400, "Invalid request format")


def test_generate_api_key_needs_a_login_jwt(client: FlaskClient, partner) -> None:
    service_id = new_service_id(client, login_token(client, partner))
    assert_envelope(client.post(API_KEY, json={"service_id": service_id}), 401, "Invalid JWT token")


def test_generate_api_key_refuses_expired_revoked_unknown_and_foreign_service_ids(
    client: FlaskClient, ctx, partner, make_partner
) -> None:
    token = login_token(client, partner)
    expired = tokens.issue(
        ctx.service_id_token, {"serviceId": str(uuid.uuid4())}, now=int(time.time()) - 4000
    )
    revoked = new_service_id(client, token)
    client.post(REVOKE, headers=bearer(revoked))
    unknown = tokens.issue(
        ctx.service_id_token, {"serviceId": partner.record["id"][:8] + str(uuid.uuid4())[8:]}
    )
    other = make_partner("someone-else")
    foreign = new_service_id(client, login_token(client, other))
    for service_id in (expired, revoked, unknown, foreign, "garbage"):
        response = client.post(API_KEY, headers=bearer(token), json={"service_id": service_id})
        assert_envelope(response, 403, "Service ID expired or invalid")


def test_expired_login_jwt_on_generate_api_key_is_403(client: FlaskClient, ctx, partner) -> None:
    past = int(time.time()) - 7200
    token = tokens.issue(ctx.login_token, {"sub": partner.record["id"], "gen": 1}, now=past)
    response = client.post(API_KEY, headers=bearer(token), json={"service_id": "x"})
    assert_envelope(response, 403, "JWT token expired")


def test_disabling_a_client_kills_its_tokens_at_once(client: FlaskClient, ctx, partner) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    accounts.set_active(ctx, partner.username, active=False)
    assert_envelope(client.post(GENERATE, headers=bearer(token)), 401, "Invalid JWT token")
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    response = client.post(API_KEY, headers=bearer(token), json={"service_id": service_id})
    assert_envelope(response, 401, "Invalid JWT token")
    # Enabling again lets the client log in, but the old tokens stay dead.
    accounts.set_active(ctx, partner.username, active=True)
    assert_envelope(client.post(GENERATE, headers=bearer(token)), 401, "Invalid JWT token")
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    fresh = new_service_id(client, login_token(client, partner))
    assert client.get(ME, headers=bearer(fresh)).status_code == 200


def test_password_reset_kills_outstanding_tokens(client: FlaskClient, ctx, partner) -> None:
    token = login_token(client, partner)
    service_id = new_service_id(client, token)
    accounts.reset_password(ctx, partner.username, "a brand new password")
    assert_envelope(client.post(GENERATE, headers=bearer(token)), 401, "Invalid JWT token")
    assert_envelope(client.get(ME, headers=bearer(service_id)), 401, "Invalid service ID")
    response = client.post(
        "/api/auth/login", json={"username": partner.username, "password": partner.password}
    )
    assert_envelope(response, 401, "Invalid username or password")
    response = client.post(
        "/api/auth/login", json={"username": partner.username, "password": "a brand new password"}
    )
    assert response.status_code == 200
