"""The durable records: K2 accounts and API keys, Sabong users, wallets, ledger, audit.

Every table carries its owner's key (`client` for K2, `client_id` for Sabong) and every
unique constraint of the Sabong tables includes it, so the ledger can be distributed by
that key (Citus; see docs/scaling.md). K2 accounts are few and are looked up by username,
so they stay one small table (a Citus reference table when sharded).

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

K2 = """
CREATE TABLE k2_clients (
    id            uuid PRIMARY KEY,
    tag           text GENERATED ALWAYS AS (left(id::text, 8)) STORED,
    client_id     text NOT NULL,
    username      text NOT NULL,
    username_key  text NOT NULL,
    email         text NOT NULL DEFAULT '',
    msisdn        text,
    role          text NOT NULL,
    password_hash text NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    gen           integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deleted_at    timestamptz,
    CONSTRAINT k2_clients_username_key UNIQUE (username_key),
    CONSTRAINT k2_clients_tag_key UNIQUE (tag)
);
COMMENT ON COLUMN k2_clients.username_key IS 'casefolded username: the login index';
COMMENT ON COLUMN k2_clients.tag IS
    'first 8 hex digits of id: the Redis Cluster hash tag of every key of the client';
COMMENT ON COLUMN k2_clients.gen IS
    'credential generation: bumped on disable and password reset, kills every token';

CREATE TABLE k2_api_keys (
    client     uuid NOT NULL REFERENCES k2_clients (id),
    id         uuid NOT NULL,
    service_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client, id)
);
"""

SABONG_USERS = """
CREATE SEQUENCE sabong_user_ids;
CREATE TABLE sabong_users (
    client_id     text PRIMARY KEY,
    id            bigint NOT NULL DEFAULT nextval('sabong_user_ids'),
    username      text NOT NULL,
    name          text NOT NULL,
    display_id    text NOT NULL,
    referral_code text NOT NULL,
    password      text NOT NULL,
    role          text NOT NULL DEFAULT 'user',
    status        text NOT NULL DEFAULT 'active',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX sabong_users_id ON sabong_users (id);

-- REF-YYYY-XXXXXX: XXXXXX = base 36 of (id * 1345325471 + 918273645) mod 36^6, a
-- bijection on ids below 36^6 (the multiplier is coprime to 36): unique without a
-- lookup. Twin of services.sabong referral_suffix().
CREATE FUNCTION sabong_referral_code(user_id bigint, year integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    digits constant text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    v bigint := ((user_id::numeric * 1345325471 + 918273645) % 2176782336)::bigint;
    code text := '';
BEGIN
    FOR i IN 1..6 LOOP
        code := substr(digits, (v % 36)::int + 1, 1) || code;
        v := v / 36;
    END LOOP;
    RETURN 'REF-' || lpad(year::text, 4, '0') || '-' || code;
END $$;

CREATE TABLE sabong_issuance_audit (
    client_id  text NOT NULL,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    bigint NOT NULL,
    ip_address text NOT NULL,
    expires_in integer NOT NULL,
    issued_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, id)
);
"""

SABONG_LEDGER = """
CREATE SEQUENCE sabong_wallet_ids;
CREATE TABLE sabong_wallets (
    client_id  text PRIMARY KEY REFERENCES sabong_users (client_id),
    id         bigint NOT NULL DEFAULT nextval('sabong_wallet_ids'),
    user_id    bigint NOT NULL,
    currency   text NOT NULL DEFAULT 'USD',
    balance    numeric(20, 2) NOT NULL DEFAULT 0 CONSTRAINT sabong_wallets_no_overdraw
               CHECK (balance >= 0),
    created_at timestamptz NOT NULL,
    updated_at timestamptz
);
COMMENT ON COLUMN sabong_wallets.updated_at IS 'time of the last balance change; NULL before';

CREATE SEQUENCE sabong_transaction_ids;
CREATE TABLE sabong_transactions (
    client_id     text NOT NULL REFERENCES sabong_wallets (client_id),
    id            bigint NOT NULL DEFAULT nextval('sabong_transaction_ids'),
    wallet_id     bigint NOT NULL,
    type          text NOT NULL CHECK (type IN ('credit', 'debit')),
    amount        numeric(20, 2) NOT NULL CHECK (amount > 0),
    currency      text NOT NULL,
    balance_after numeric(20, 2) NOT NULL CHECK (balance_after >= 0),
    reference     text,
    description   text,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (client_id, id),
    -- Idempotency: one (type, reference) per wallet; NULL references never collide.
    CONSTRAINT sabong_transactions_reference_key UNIQUE (client_id, type, reference)
);
CREATE INDEX sabong_transactions_created ON sabong_transactions (client_id, created_at, id);
"""


def upgrade() -> None:
    op.execute(K2)
    op.execute(SABONG_USERS)
    op.execute(SABONG_LEDGER)


def downgrade() -> None:
    op.execute(
        "DROP TABLE sabong_transactions, sabong_wallets, sabong_issuance_audit, sabong_users,"
        " k2_api_keys, k2_clients;"
        " DROP SEQUENCE sabong_transaction_ids, sabong_wallet_ids, sabong_user_ids;"
        " DROP FUNCTION sabong_referral_code(bigint, integer);"
    )
