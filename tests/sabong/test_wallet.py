"""The wallet API (SPEC 3, "The wallet API"): shapes, messages, status codes, exact money.

Every test that may move money ends with the operator's `reconcile` (fixture `reconciled`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from services.sabong.runtime import set_clock

from .conftest import VECTOR_TIME, Partner

pytestmark = pytest.mark.usefixtures("reconciled")

BALANCE = "/api/v1/get-balance"
CREDIT = "/api/v1/credit-balance"
DEBIT = "/api/v1/debit-balance"
HISTORY = "/api/v1/get-transactions"

MakeUser = Callable[..., int]


def money(partner: Partner, path: str, **fields: Any) -> TestResponse:
    """A signed credit or debit; an ignored unique field keeps equal bodies from replaying."""
    return partner.post({**fields, "requestId": uuid.uuid4().hex}, path=path)


def balance_of(partner: Partner, client_id: str) -> Any:
    response = partner.get(BALANCE, {"clientId": client_id, "requestId": uuid.uuid4().hex})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]["balance"]


def raw(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# -- get-balance ------------------------------------------------------------------------


def test_get_balance_of_a_new_wallet_is_zero_with_no_update_time(
    partner: Partner, make_user: MakeUser
) -> None:
    user_id = make_user("CLIENT_001")
    response = partner.get(BALANCE, {"clientId": "CLIENT_001"})
    assert response.status_code == 200
    assert raw(response) == (
        '{"status":"success","message":"Balance retrieved successfully","data":'
        f'{{"userId":{user_id},"clientId":"CLIENT_001","balance":0.00,"updatedAt":null}}}}'
    )


def test_get_balance_accepts_the_contract_get_vector(
    app: Flask, vector_partner: Partner, make_user: MakeUser
) -> None:
    make_user("CLIENT_001")
    signature = "f2026e7edf9d2b011e91764814d0db900898ad92614981a26f2f80def1a055bf"
    response = vector_partner.client.get(
        f"{BALANCE}?clientId=CLIENT_001",
        headers={"x-signature": signature, "x-timestamp": str(VECTOR_TIME)},
    )
    assert response.status_code == 200, raw(response)


def test_get_signature_covers_the_query_so_another_client_id_is_refused(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("VICTIM")
    signed = partner.get(BALANCE, {"clientId": "MINE"})
    headers = {k: signed.request.headers[k] for k in ("x-signature", "x-timestamp")}
    response = partner.client.get(f"{BALANCE}?clientId=VICTIM", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["message"] == "Invalid signature"


def test_get_balance_query_parameters_are_signed_in_sorted_order(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    # Sent as zeta, clientId; signed sorted: clientId=C1&zeta=1.
    response = partner.get(BALANCE, {"zeta": "1", "clientId": "C1"})
    assert response.status_code == 200


def test_get_balance_renders_two_decimals_and_the_time_of_the_last_change(
    app: Flask, partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    set_clock(app, lambda: 1_790_000_000.123)
    assert money(partner, CREDIT, clientId="C1", amount="1600.5").status_code == 200
    response = partner.get(BALANCE, {"clientId": "C1"})
    assert '"balance":1600.50,' in raw(response)
    assert response.get_json()["data"]["updatedAt"] == "2026-09-21T14:13:20.123Z"


def test_get_balance_without_client_id_is_a_validation_error(partner: Partner) -> None:
    for params in ({}, {"clientId": ""}, {"clientId": "   "}):
        response = partner.get(BALANCE, params)
        assert response.status_code == 400
        assert response.get_json() == {
            "status": "failed",
            "message": "Validation failed",
            "data": {"errors": {"clientId": ["The clientId field is required."]}},
        }


def test_get_balance_of_an_unknown_client_is_404(partner: Partner) -> None:
    response = partner.get(BALANCE, {"clientId": "NOBODY"})
    assert response.status_code == 404
    assert response.get_json() == {"status": "failed", "message": "User not found", "data": None}


def test_get_balance_unsigned_is_401(partner: Partner, make_user: MakeUser) -> None:
    make_user("C1")
    response = partner.client.get(f"{BALANCE}?clientId=C1")
    assert response.status_code == 401
    assert response.headers["X-Auth-Error"] == "missing_headers"


def test_replayed_get_balance_signature_is_refused(partner: Partner, make_user: MakeUser) -> None:
    make_user("C1")
    first = partner.get(BALANCE, {"clientId": "C1"})
    headers = {k: first.request.headers[k] for k in ("x-signature", "x-timestamp")}
    again = partner.client.get(f"{BALANCE}?clientId=C1", headers=headers)
    assert again.status_code == 401
    assert again.get_json()["message"] == "Duplicate request signature"


@pytest.mark.parametrize("query", [{"clientId": "NOBODY"}, {"clientId": ""}], ids=["404", "400"])
def test_a_replay_is_refused_whatever_the_read_found(
    partner: Partner, query: dict[str, str]
) -> None:
    # The balance is read while the replay guard's reply is on its way: the guard's
    # verdict must still win over the read's 404 or 400.
    first = partner.get(BALANCE, query)
    assert first.status_code in (400, 404)
    headers = {k: first.request.headers[k] for k in ("x-signature", "x-timestamp")}
    again = partner.client.get(BALANCE, query_string=query, headers=headers)
    assert (again.status_code, again.get_json()["message"]) == (
        401,
        "Duplicate request signature",
    )


# -- credit and debit -------------------------------------------------------------------


def test_credit_then_debit_move_the_balance_exactly(partner: Partner, make_user: MakeUser) -> None:
    user_id = make_user("C1")
    credit = money(partner, CREDIT, clientId="C1", amount=100.5, description="top up")
    assert credit.status_code == 200
    assert raw(credit) == (
        '{"status":"success","message":"Balance credited successfully","data":'
        f'{{"userId":{user_id},"clientId":"C1","amount":100.50,"type":"credit",'
        '"transactionId":1,"balance":100.50}}'
    )
    assert "Idempotent-Replayed" not in credit.headers
    debit = money(partner, DEBIT, clientId="C1", amount="0.30")
    assert debit.status_code == 200
    assert raw(debit) == (
        '{"status":"success","message":"Balance debited successfully","data":'
        f'{{"userId":{user_id},"clientId":"C1","amount":0.30,"type":"debit",'
        '"transactionId":2,"balance":100.20}}'
    )


def test_tenths_add_up_exactly_where_floats_would_drift(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    for _ in range(10):
        assert money(partner, CREDIT, clientId="C1", amount=0.1).status_code == 200
    assert money(partner, DEBIT, clientId="C1", amount=0.3).status_code == 200
    response = partner.get(BALANCE, {"clientId": "C1"})
    assert '"balance":0.70,' in raw(response)


def test_the_largest_amounts_stay_exact(partner: Partner, make_user: MakeUser, db: Any) -> None:
    make_user("C1")
    for _ in range(3):
        assert money(partner, CREDIT, clientId="C1", amount=999999.99).status_code == 200
    response = money(partner, DEBIT, clientId="C1", amount="0.01")
    assert '"balance":2999999.96}' in raw(response)
    (stored,) = db.execute("SELECT balance FROM sabong_wallets").fetchone()
    assert stored == Decimal("2999999.96")


def test_debit_over_the_balance_is_refused_and_moves_nothing(
    partner: Partner, make_user: MakeUser, db: Any
) -> None:
    make_user("C1", balance="10.00")
    response = money(partner, DEBIT, clientId="C1", amount="10.01")
    assert response.status_code == 400
    assert raw(response) == (
        '{"status":"failed","message":"Insufficient balance",'
        '"data":{"balance":10.00,"amount":10.01}}'
    )
    assert balance_of(partner, "C1") == 10.0
    assert db.execute("SELECT count(*) FROM sabong_transactions").fetchone() == (1,)
    exact = money(partner, DEBIT, clientId="C1", amount=10)
    assert exact.status_code == 200 and exact.get_json()["data"]["balance"] == 0


def test_credit_to_an_unknown_client_is_404(partner: Partner, db: Any) -> None:
    for path in (CREDIT, DEBIT):
        response = money(partner, path, clientId="NOBODY", amount=1)
        assert response.status_code == 404
        assert response.get_json() == {
            "status": "failed",
            "message": "User not found",
            "data": None,
        }
    assert db.execute("SELECT count(*) FROM sabong_transactions").fetchone() == (0,)


def test_transactions_record_description_reference_and_balance_after(
    partner: Partner, make_user: MakeUser, db: Any
) -> None:
    make_user("C1")
    money(partner, CREDIT, clientId="C1", amount=5, description="bonus", reference="R-1")
    money(partner, DEBIT, clientId="C1", amount=2, description="", reference=None)
    rows = db.execute(
        "SELECT type, amount, balance_after, reference, description, currency"
        " FROM sabong_transactions ORDER BY id"
    ).fetchall()
    assert rows == [
        ("credit", Decimal("5.00"), Decimal("5.00"), "R-1", "bonus", "USD"),
        ("debit", Decimal("2.00"), Decimal("3.00"), None, None, "USD"),
    ]


# -- validation -------------------------------------------------------------------------


def errors_of(response: TestResponse) -> dict[str, list[str]]:
    assert response.status_code == 400, raw(response)
    body = response.get_json()
    assert body["status"] == "failed" and body["message"] == "Validation failed"
    errors: dict[str, list[str]] = body["data"]["errors"]
    return errors


@pytest.mark.parametrize(
    ("amount", "messages"),
    [
        (None, ["The amount field is required."]),
        ("", ["The amount field is required."]),
        ("ten", ["The amount must be a number."]),
        (True, ["The amount must be a number."]),
        (False, ["The amount must be a number."]),
        ([], ["The amount field is required."]),
        ([1], ["The amount must be a number."]),
        ({"value": 1}, ["The amount must be a number."]),
        ("NaN", ["The amount must be a number."]),
        ("Infinity", ["The amount must be a number."]),
        ("0x10", ["The amount must be a number."]),
        (0, ["The amount must be at least 0.01."]),
        (-5, ["The amount must be at least 0.01."]),
        ("-0", ["The amount must be at least 0.01."]),
        (1000000.01, ["The amount must not be greater than 1000000."]),
        ("1000001", ["The amount must not be greater than 1000000."]),
        (1.005, ["The amount must have 0-2 decimal places."]),
        ("10.125", ["The amount must have 0-2 decimal places."]),
        (0.001, ["The amount must be at least 0.01.", "The amount must have 0-2 decimal places."]),
    ],
)
def test_bad_amounts_are_refused_with_laravel_messages(
    partner: Partner, make_user: MakeUser, amount: Any, messages: list[str]
) -> None:
    make_user("C1", balance="50.00")
    for path in (CREDIT, DEBIT):
        response = money(partner, path, clientId="C1", amount=amount)
        assert errors_of(response) == {"amount": messages}
    assert balance_of(partner, "C1") == 50


@pytest.mark.parametrize(
    ("literal", "messages"),
    [
        (b"1e309", ["The amount must not be greater than 1000000."]),
        (b"-0", ["The amount must be at least 0.01."]),
        (b"-0.0", ["The amount must be at least 0.01."]),
        (
            b"1E-400",
            ["The amount must be at least 0.01.", "The amount must have 0-2 decimal places."],
        ),
        (b"1e9999999999", ["The amount must not be greater than 1000000."]),
        (b"0.30000000000000004", ["The amount must have 0-2 decimal places."]),
    ],
)
def test_json_number_literals_are_judged_digit_for_digit(
    partner: Partner, make_user: MakeUser, literal: bytes, messages: list[str]
) -> None:
    make_user("C1", balance="50.00")
    body = b'{"clientId":"C1","amount":' + literal + b"}"
    assert errors_of(partner.post(body, path=DEBIT)) == {"amount": messages}
    assert balance_of(partner, "C1") == 50


def test_trailing_zeros_are_not_extra_decimal_places(partner: Partner, make_user: MakeUser) -> None:
    make_user("C1")
    response = partner.post(b'{"clientId":"C1","amount":10.500}', path=CREDIT)
    assert response.status_code == 200
    assert response.get_json()["data"]["amount"] == 10.5


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_number_constants_are_an_invalid_body(
    partner: Partner, make_user: MakeUser, constant: bytes
) -> None:
    make_user("C1")
    response = partner.post(b'{"clientId":"C1","amount":' + constant + b"}", path=CREDIT)
    assert response.status_code == 400
    assert response.get_json() == {"status": "failed", "message": "Invalid JSON body", "data": None}


def test_every_failing_field_is_reported(partner: Partner) -> None:
    response = money(
        partner, CREDIT, clientId=5, amount="x", description="d" * 501, reference="r" * 256
    )
    assert errors_of(response) == {
        "clientId": ["The clientId must be a string."],
        "amount": ["The amount must be a number."],
        "description": ["The description must not be greater than 500 characters."],
        "reference": ["The reference must not be greater than 255 characters."],
    }
    response = money(partner, DEBIT, description=7, reference=["x"])
    assert errors_of(response) == {
        "clientId": ["The clientId field is required."],
        "amount": ["The amount field is required."],
        "description": ["The description must be a string."],
        "reference": ["The reference must be a string."],
    }


def test_long_client_id_and_limits_at_the_edge(partner: Partner, make_user: MakeUser) -> None:
    response = money(partner, CREDIT, clientId="c" * 256, amount=1)
    assert errors_of(response) == {
        "clientId": ["The clientId must not be greater than 255 characters."]
    }
    make_user("C1")
    edge = money(partner, CREDIT, clientId="C1", amount=1000000, description="d" * 500,
                 reference="r" * 255)  # fmt: skip
    assert edge.status_code == 200, raw(edge)


def test_a_body_that_is_not_a_json_object_is_refused(partner: Partner) -> None:
    for body in (b"", b"[]", b"not json", b'"text"', b"\xff"):
        response = partner.post(body, path=CREDIT)
        assert response.status_code == 400
        assert response.get_json()["message"] == "Invalid JSON body"


def test_replay_of_a_credit_signature_is_refused_and_applies_once(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    body = b'{"clientId":"C1","amount":5}'
    stamp = partner.now()
    first = partner.post(body, path=CREDIT, timestamp=stamp)
    again = partner.post(body, path=CREDIT, timestamp=stamp)
    assert first.status_code == 200
    assert again.status_code == 401
    assert again.get_json()["message"] == "Duplicate request signature"
    assert again.headers["X-Auth-Error"] == "replayed"
    assert balance_of(partner, "C1") == 5


@pytest.mark.parametrize(
    "body",
    [b'{"clientId":"C1","amount":"x"}', b'{"amount":5}', b"not json"],
    ids=["invalid-amount", "no-client", "not-json"],
)
def test_a_credit_replay_is_refused_whatever_the_validation_found(
    partner: Partner, make_user: MakeUser, body: bytes
) -> None:
    # The body is validated while the replay guard's reply is on its way: the guard's
    # verdict must still win over the validation's 400 or 422, and the replay must not
    # count as a second validation refusal.
    make_user("C1")
    refusals = ("sabong_wallet_refusals_total", {"type": "credit", "reason": "validation"})
    before = metric(partner, refusals[0], **refusals[1])
    stamp = partner.now()
    first = partner.post(body, path=CREDIT, timestamp=stamp)
    assert first.status_code in (400, 422)
    again = partner.post(body, path=CREDIT, timestamp=stamp)
    assert (again.status_code, again.get_json()["message"]) == (
        401,
        "Duplicate request signature",
    )
    assert metric(partner, refusals[0], **refusals[1]) - before == 1
    assert balance_of(partner, "C1") == 0


def test_a_signature_for_credit_cannot_be_used_to_debit(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1", balance="5.00")
    response = partner.post(b'{"clientId":"C1","amount":5}', path=DEBIT, signed_path=CREDIT)
    assert response.status_code == 401
    assert balance_of(partner, "C1") == 5


def test_signature_is_checked_before_validation(partner: Partner) -> None:
    response = partner.post(b'{"amount":"x"}', path=CREDIT, secret="wrong")
    assert response.status_code == 401
    assert response.get_json()["message"] == "Invalid signature"


# -- idempotency by reference -----------------------------------------------------------


def test_a_repeated_reference_with_the_same_amount_replays_the_original(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1", balance="10.00")
    first = money(partner, DEBIT, clientId="C1", amount="4.00", reference="bet-1")
    money(partner, CREDIT, clientId="C1", amount=1)  # the balance moves on meanwhile
    again = money(partner, DEBIT, clientId="C1", amount=4, reference="bet-1")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert first.get_json()["data"]["balance"] == 6
    assert balance_of(partner, "C1") == 7


def test_a_repeated_reference_with_another_amount_is_409(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    first = money(partner, CREDIT, clientId="C1", amount=3, reference="dep-9")
    conflict = money(partner, CREDIT, clientId="C1", amount="3.01", reference="dep-9")
    assert conflict.status_code == 409
    assert conflict.get_json() == {
        "status": "failed",
        "message": "Duplicate reference",
        "data": {"transactionId": first.get_json()["data"]["transactionId"]},
    }
    assert balance_of(partner, "C1") == 3


def test_a_reference_is_scoped_by_client_and_type(partner: Partner, make_user: MakeUser) -> None:
    make_user("A")
    make_user("B")
    for client_id in ("A", "B"):
        response = money(partner, CREDIT, clientId=client_id, amount=5, reference="same")
        assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers
    debit = money(partner, DEBIT, clientId="A", amount=5, reference="same")
    assert debit.status_code == 200 and "Idempotent-Replayed" not in debit.headers
    assert balance_of(partner, "A") == 0 and balance_of(partner, "B") == 5


def test_requests_without_reference_are_never_deduplicated(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    for _ in range(3):
        assert money(partner, CREDIT, clientId="C1", amount=2).status_code == 200
    assert balance_of(partner, "C1") == 6


def test_a_replayed_debit_is_not_refused_for_insufficient_balance(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1", balance="5.00")
    assert money(partner, DEBIT, clientId="C1", amount=5, reference="all-in").status_code == 200
    again = money(partner, DEBIT, clientId="C1", amount=5, reference="all-in")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["data"]["balance"] == 0


# -- get-transactions -------------------------------------------------------------------


def history(partner: Partner, **params: str) -> TestResponse:
    return partner.get(HISTORY, {**params, "requestId": uuid.uuid4().hex})


def seed_history(app: Flask, partner: Partner) -> None:
    """C1: credit 100.50 (day 1), debit 20 (day 2), credit 0.25 (day 3), one per day."""
    day = 1_790_035_200  # 2026-09-22T00:00:00Z
    steps = [(CREDIT, "100.50", "r-1"), (DEBIT, "20", None), (CREDIT, "0.25", "r-3")]
    for index, (path, amount, reference) in enumerate(steps):
        set_clock(app, lambda index=index: day + index * 86400 + 3600.5)
        assert (
            money(partner, path, clientId="C1", amount=amount, reference=reference).status_code
            == 200
        )


def test_history_lists_newest_first_with_the_contract_fields(
    app: Flask, partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    seed_history(app, partner)
    response = history(partner, clientId="C1")
    assert response.status_code == 200
    body = response.get_json()
    assert body["message"] == "Transactions retrieved successfully"
    data = body["data"]
    assert {k: v for k, v in data.items() if k != "data"} == {
        "clientId": "C1",
        "totalCount": 3,
        "resultCount": 3,
        "totalPages": 1,
        "currentPage": 1,
        "limit": 10,
        "filters": {},
        "sort": {"sortBy": "createdAt", "sortOrder": "desc"},
    }
    assert data["data"][0] == {
        "id": 3,
        "walletId": data["data"][0]["walletId"],
        "amount": "0.25",
        "currency": "USD",
        "type": "credit",
        "referenceId": "r-3",
        "description": None,
        "createdAt": "2026-09-24T01:00:00.500Z",
        "balanceAfter": "80.75",
    }
    assert [(t["id"], t["amount"], t["balanceAfter"]) for t in data["data"]] == [
        (3, "0.25", "80.75"),
        (2, "20.00", "80.50"),
        (1, "100.50", "100.50"),
    ]


def test_history_filters_sorts_and_pages(app: Flask, partner: Partner, make_user: MakeUser) -> None:
    make_user("C1")
    seed_history(app, partner)
    credits = history(partner, clientId="C1", type="credit", sortBy="amount", sortOrder="asc")
    data = credits.get_json()["data"]
    assert data["filters"] == {"type": "credit"}
    assert data["sort"] == {"sortBy": "amount", "sortOrder": "asc"}
    assert [t["amount"] for t in data["data"]] == ["0.25", "100.50"]
    page2 = history(partner, clientId="C1", limit="2", page="2", sortBy="id", sortOrder="asc")
    data = page2.get_json()["data"]
    assert (data["totalCount"], data["resultCount"], data["totalPages"]) == (3, 1, 2)
    assert [t["id"] for t in data["data"]] == [3]
    past = history(partner, clientId="C1", page="99999999999999999999")
    assert past.status_code == 200 and past.get_json()["data"]["data"] == []


def test_history_date_filters_are_inclusive_and_a_bare_date_to_covers_the_day(
    app: Flask, partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    seed_history(app, partner)

    def ids(**params: str) -> list[int]:
        response = history(partner, clientId="C1", sortBy="id", sortOrder="asc", **params)
        assert response.status_code == 200, raw(response)
        return [t["id"] for t in response.get_json()["data"]["data"]]

    assert ids(dateFrom="2026-09-23", dateTo="2026-09-23") == [2]
    assert ids(dateFrom="2026-09-23") == [2, 3]
    assert ids(dateTo="2026-09-23") == [1, 2]
    assert ids(dateFrom="2026-09-23T01:00:00.500Z", dateTo="2026-09-24T01:00:00.500Z") == [2, 3]
    assert ids(dateTo="2026-09-23T01:00:00Z") == [1]
    filtered = history(partner, clientId="C1", dateFrom="2026-09-23")
    assert filtered.get_json()["data"]["filters"] == {"dateFrom": "2026-09-23"}


def test_history_of_an_empty_wallet(partner: Partner, make_user: MakeUser) -> None:
    make_user("C1")
    data = history(partner, clientId="C1").get_json()["data"]
    assert (data["totalCount"], data["totalPages"], data["data"]) == (0, 0, [])


def test_history_of_an_unknown_client_is_404(partner: Partner) -> None:
    response = history(partner, clientId="NOBODY")
    assert response.status_code == 404
    assert response.get_json() == {"status": "failed", "message": "User not found", "data": None}


def test_history_query_errors_are_all_reported(partner: Partner) -> None:
    response = history(
        partner, limit="0", page="x", type="refund", sortBy="balance", sortOrder="up",
        dateFrom="yesterday", dateTo="2026-02-30",
    )  # fmt: skip
    assert errors_of(response) == {
        "clientId": ["The clientId field is required."],
        "limit": ["The limit must be at least 1."],
        "page": ["The page must be an integer."],
        "type": ["The selected type is invalid."],
        "sortBy": ["The selected sortBy is invalid."],
        "sortOrder": ["The selected sortOrder is invalid."],
        "dateFrom": ["The dateFrom is not a valid date."],
        "dateTo": ["The dateTo is not a valid date."],
    }
    response = history(partner, clientId="C1", limit="101", page="0")
    assert errors_of(response) == {
        "limit": ["The limit must not be greater than 100."],
        "page": ["The page must be at least 1."],
    }


def test_date_to_before_date_from_is_refused(partner: Partner, make_user: MakeUser) -> None:
    make_user("C1")
    response = history(partner, clientId="C1", dateFrom="2026-09-23", dateTo="2026-09-22T23:59:59Z")
    assert errors_of(response) == {
        "dateTo": ["The dateTo must be a date after or equal to dateFrom."]
    }


# -- metrics ----------------------------------------------------------------------------


def metric(partner: Partner, name: str, **labels: str) -> float:
    """The current value of one sample on /metrics (0 when not yet exported)."""
    text = partner.client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == f"{name}{{{wanted}}}":
            return float(value)
    return 0.0


def test_metrics_count_money_moves_refusals_and_replays(
    partner: Partner, make_user: MakeUser
) -> None:
    make_user("C1")
    refusals, moves = "sabong_wallet_refusals_total", "sabong_wallet_transactions_total"
    names = {
        "credits": (moves, {"type": "credit"}),
        "debits": (moves, {"type": "debit"}),
        "short": (refusals, {"type": "debit", "reason": "insufficient_balance"}),
        "invalid": (refusals, {"type": "credit", "reason": "validation"}),
        "unknown": (refusals, {"type": "credit", "reason": "user_not_found"}),
        "conflict": (refusals, {"type": "credit", "reason": "duplicate_reference"}),
        "replays": ("sabong_wallet_idempotent_replays_total", {"type": "credit"}),
    }
    before = {key: metric(partner, name, **labels) for key, (name, labels) in names.items()}
    money(partner, CREDIT, clientId="C1", amount=5, reference="m-1")
    money(partner, CREDIT, clientId="C1", amount=5, reference="m-1")
    money(partner, CREDIT, clientId="C1", amount=6, reference="m-1")
    money(partner, DEBIT, clientId="C1", amount=1)
    money(partner, DEBIT, clientId="C1", amount=100)
    money(partner, CREDIT, clientId="C1", amount="x")
    money(partner, CREDIT, clientId="NOBODY", amount=1)
    after = {key: metric(partner, name, **labels) for key, (name, labels) in names.items()}
    deltas = {key: after[key] - before[key] for key in names}
    assert deltas == {
        "credits": 1, "debits": 1, "short": 1, "invalid": 1, "unknown": 1, "conflict": 1,
        "replays": 1,
    }  # fmt: skip
