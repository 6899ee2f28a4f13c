"""The PostgreSQL store's schema, as ordered migrations in the ``buyer_agent`` schema.

The invariants live in the database, so that every writer is held to them, whatever its code:

- ``events_at_head`` (before each event insert) locks the order row, accepts the event only in the
  order's state and at its head (``seq`` = last + 1, ``prev_hash`` = last hash; else ``stale
  writer``), checks its hash against its content (``event_hash``, byte for byte the Python
  :func:`~buyer_agent.journal._canonical.chain_hash`), and moves the row's head, state and
  ``updated_at`` with it;
- events are append-only: updates, deletes and truncation are refused;
- ``record_event`` is the one write of the store's ``record``: it checks the lease against the
  server's clock, appends, patches the context (jsonb), and checks and records a ledger commitment
  under a row lock on the (pairing, day, currency) row, all in one statement (one transaction);
- ``now()`` is the server's clock (``clock_timestamp()``), plus ``buyer_agent.time_shift`` when a
  test sets it; never a worker's clock.

Errors raised here carry SQLSTATEs of class ``BA`` (see :data:`SQLSTATES`), which the store maps to
the framework's errors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from buyer_agent._errors import JournalError
from buyer_agent.journal._canonical import GENESIS_HASH

__all__ = ["MIGRATIONS", "SCHEMA", "SQLSTATES", "Migration", "migrate"]

#: Every object of the store lives in this schema (the database can hold other things).
SCHEMA = "buyer_agent"

#: SQLSTATEs the schema raises: a generic journal error, a stale writer, a lost lease, the daily limit.
SQLSTATES = {"journal": "BA000", "stale": "BA001", "lease": "BA002", "budget": "BA003"}

# pg_advisory_xact_lock key: two processes starting at once migrate one after the other.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"buyer_agent.migrations").digest()[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: applied once, in ``version`` order, recorded in ``buyer_agent.migrations``."""

    version: int
    name: str
    sql: str


_M001 = f"""
-- Keys and times sort byte by byte (COLLATE "C"), as in SQLite, whatever the database's locale.
CREATE TABLE buyer_agent.orders (
    order_id text COLLATE "C" PRIMARY KEY,
    state text NOT NULL,
    context jsonb NOT NULL,
    spec jsonb NOT NULL,
    pairing_id text,
    market_order_id text,
    created_at text COLLATE "C" NOT NULL,
    updated_at text NOT NULL,
    last_seq integer NOT NULL DEFAULT 0,
    last_hash text NOT NULL DEFAULT '{GENESIS_HASH}',
    lease_owner text,
    lease_until timestamptz,
    lease_epoch bigint NOT NULL DEFAULT 0
);
CREATE INDEX orders_state ON buyer_agent.orders (state, created_at, order_id);

-- payload is the canonical JSON text the hash covers, kept byte for byte (jsonb would re-encode it).
CREATE TABLE buyer_agent.events (
    order_id text COLLATE "C" NOT NULL REFERENCES buyer_agent.orders (order_id),
    seq integer NOT NULL,
    at text NOT NULL,
    trigger text NOT NULL,
    src text NOT NULL,
    dst text NOT NULL,
    payload text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (order_id, seq)
);

CREATE TABLE buyer_agent.ledger (
    order_id text COLLATE "C" PRIMARY KEY,
    pairing_id text NOT NULL,
    day text COLLATE "C" NOT NULL,
    amount numeric NOT NULL CHECK (amount >= 0 AND scale(amount) = 0),
    currency text NOT NULL,
    decimals integer NOT NULL,
    status text NOT NULL CHECK (status IN ('committed', 'spent', 'released')),
    updated_at text NOT NULL
);
CREATE INDEX ledger_day ON buyer_agent.ledger (pairing_id, day, currency);

-- One row per (pairing, UTC day, currency): commitments lock it, so they check the limit one at a time.
CREATE TABLE buyer_agent.ledger_days (
    pairing_id text NOT NULL,
    day text NOT NULL,
    currency text NOT NULL,
    PRIMARY KEY (pairing_id, day, currency)
);

CREATE TABLE buyer_agent.nonces (
    chain text COLLATE "C" NOT NULL,
    address text COLLATE "C" NOT NULL,
    next bigint NOT NULL,
    PRIMARY KEY (chain, address)
);

CREATE TABLE buyer_agent.meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);

-- The store's clock: the server's, never a worker's. Tests shift it with buyer_agent.time_shift.
CREATE FUNCTION buyer_agent.now() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT clock_timestamp()
        + coalesce(nullif(current_setting('buyer_agent.time_shift', true), ''), '0')::interval
$$;

-- ISO-8601 UTC with microseconds and a Z, as the Python format_at writes it.
CREATE FUNCTION buyer_agent.format_at(ts timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- sha256_hex(prev_hash + canonical): the same bytes as the Python chain_hash (to_json escapes
-- strings exactly as Python's json encoder with ensure_ascii=False does).
CREATE FUNCTION buyer_agent.event_hash(
    prev_hash text, order_id text, seq integer, at text, trigger text, src text, dst text, payload text
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(
        prev_hash || '{{"at":' || to_json(at)::text || ',"dst":' || to_json(dst)::text
        || ',"order_id":' || to_json(order_id)::text || ',"payload":' || payload
        || ',"seq":' || seq::text || ',"src":' || to_json(src)::text
        || ',"trigger":' || to_json(trigger)::text || '}}', 'UTF8')), 'hex')
$$;

CREATE FUNCTION buyer_agent.events_at_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o record;
BEGIN
    SELECT state, last_seq, last_hash INTO o FROM buyer_agent.orders
        WHERE order_id = NEW.order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no order % in the store', NEW.order_id USING ERRCODE = 'BA000';
    END IF;
    IF o.state <> NEW.src OR o.last_seq + 1 <> NEW.seq OR o.last_hash <> NEW.prev_hash THEN
        RAISE EXCEPTION 'stale writer: the event does not start at the order''s head'
            USING ERRCODE = 'BA001';
    END IF;
    IF NEW.hash <> buyer_agent.event_hash(NEW.prev_hash, NEW.order_id, NEW.seq, NEW.at, NEW.trigger,
                                          NEW.src, NEW.dst, NEW.payload) THEN
        RAISE EXCEPTION 'event % of order %: hash does not match the event''s content',
            NEW.seq, NEW.order_id USING ERRCODE = 'BA000';
    END IF;
    -- Moved here, not in an AFTER trigger: the next row of a many-row insert sees the new head.
    UPDATE buyer_agent.orders SET last_seq = NEW.seq, last_hash = NEW.hash, updated_at = NEW.at,
        state = NEW.dst WHERE order_id = NEW.order_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_at_head BEFORE INSERT ON buyer_agent.events
    FOR EACH ROW EXECUTE FUNCTION buyer_agent.events_at_head();

CREATE FUNCTION buyer_agent.events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal events are append-only' USING ERRCODE = 'BA000';
END
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON buyer_agent.events
    FOR EACH ROW EXECUTE FUNCTION buyer_agent.events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON buyer_agent.events
    FOR EACH STATEMENT EXECUTE FUNCTION buyer_agent.events_append_only();

CREATE FUNCTION buyer_agent.create_order(
    p_order_id text, p_state text, p_context jsonb, p_spec jsonb, p_trigger text, p_payload text
) RETURNS TABLE (r_at text, r_hash text) LANGUAGE plpgsql AS $$
DECLARE
    v_at text := buyer_agent.format_at(buyer_agent.now());
    v_hash text;
BEGIN
    INSERT INTO buyer_agent.orders (order_id, state, context, spec, created_at, updated_at)
        VALUES (p_order_id, p_state, p_context, p_spec, v_at, v_at) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % already exists', p_order_id USING ERRCODE = 'BA000';
    END IF;
    v_hash := buyer_agent.event_hash('{GENESIS_HASH}', p_order_id, 1, v_at, p_trigger, p_state,
                                     p_state, p_payload);
    INSERT INTO buyer_agent.events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash)
        VALUES (p_order_id, 1, v_at, p_trigger, p_state, p_state, p_payload, '{GENESIS_HASH}', v_hash);
    RETURN QUERY SELECT v_at, v_hash;
END
$$;

CREATE FUNCTION buyer_agent.record_event(
    p_order_id text, p_trigger text, p_src text, p_dst text, p_payload text,
    p_set jsonb, p_unset text[], p_pairing_id text, p_market_order_id text,
    p_lease_owner text, p_lease_epoch bigint,
    p_ledger text, p_ledger_pairing text, p_amount numeric, p_currency text, p_decimals integer,
    p_limit numeric
) RETURNS TABLE (r_seq integer, r_at text, r_prev text, r_hash text) LANGUAGE plpgsql AS $$
DECLARE
    o record;
    v_now timestamptz;
    v_at text;
    v_seq integer;
    v_hash text;
    v_day text;
    v_spent numeric;
BEGIN
    SELECT state, last_seq, last_hash, lease_owner, lease_epoch, lease_until INTO o
        FROM buyer_agent.orders WHERE order_id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no order % in the store', p_order_id USING ERRCODE = 'BA000';
    END IF;
    -- Read after the row lock: a write that waited for another one is judged at its own moment.
    v_now := buyer_agent.now();
    IF p_lease_owner IS NOT NULL AND (o.lease_owner IS DISTINCT FROM p_lease_owner
            OR o.lease_epoch <> p_lease_epoch OR o.lease_until IS NULL OR o.lease_until <= v_now) THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'BA002';
    END IF;
    IF o.state <> p_src THEN
        RAISE EXCEPTION 'order % is %, not %: refusing event %', p_order_id, o.state, p_src, p_trigger
            USING ERRCODE = 'BA000';
    END IF;
    -- An intent is on disk before its side effect runs, even where the server or role turned
    -- synchronous_commit off (this commit also flushes every earlier one: the WAL is in order).
    IF p_trigger LIKE 'intent:%' AND current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    v_at := buyer_agent.format_at(v_now);
    v_seq := o.last_seq + 1;
    v_hash := buyer_agent.event_hash(o.last_hash, p_order_id, v_seq, v_at, p_trigger, p_src, p_dst,
                                     p_payload);
    INSERT INTO buyer_agent.events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash)
        VALUES (p_order_id, v_seq, v_at, p_trigger, p_src, p_dst, p_payload, o.last_hash, v_hash);
    IF p_set IS NOT NULL OR p_unset IS NOT NULL OR p_pairing_id IS NOT NULL
            OR p_market_order_id IS NOT NULL THEN
        UPDATE buyer_agent.orders SET
            context = (context || coalesce(p_set, '{{}}'::jsonb)) - coalesce(p_unset, '{{}}'::text[]),
            pairing_id = coalesce(p_pairing_id, pairing_id),
            market_order_id = coalesce(p_market_order_id, market_order_id)
        WHERE order_id = p_order_id;
    END IF;
    IF p_ledger = 'committed' THEN
        v_day := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD');
        IF p_limit IS NOT NULL THEN
            INSERT INTO buyer_agent.ledger_days VALUES (p_ledger_pairing, v_day, p_currency)
                ON CONFLICT DO NOTHING;
            PERFORM 1 FROM buyer_agent.ledger_days WHERE pairing_id = p_ledger_pairing
                AND day = v_day AND currency = p_currency FOR UPDATE;
            -- A new statement, so a new snapshot: it sees what the writers before us committed.
            SELECT coalesce(sum(amount), 0) INTO v_spent FROM buyer_agent.ledger
                WHERE pairing_id = p_ledger_pairing AND day = v_day AND currency = p_currency
                AND decimals = p_decimals AND status IN ('committed', 'spent')
                AND order_id <> p_order_id;
            IF v_spent + p_amount > p_limit THEN
                RAISE EXCEPTION 'daily limit' USING ERRCODE = 'BA003', DETAIL = v_spent::text;
            END IF;
        END IF;
        INSERT INTO buyer_agent.ledger
            (order_id, pairing_id, day, amount, currency, decimals, status, updated_at)
            VALUES (p_order_id, p_ledger_pairing, v_day, p_amount, p_currency, p_decimals,
                    'committed', v_at)
            ON CONFLICT (order_id) DO UPDATE SET amount = EXCLUDED.amount,
                currency = EXCLUDED.currency, decimals = EXCLUDED.decimals, status = 'committed',
                updated_at = EXCLUDED.updated_at;
    ELSIF p_ledger IS NOT NULL THEN
        UPDATE buyer_agent.ledger SET status = p_ledger, updated_at = v_at WHERE order_id = p_order_id;
        IF NOT FOUND AND p_ledger = 'spent' THEN
            RAISE EXCEPTION 'order % has no ledger commitment to spend', p_order_id
                USING ERRCODE = 'BA000';
        END IF;
    END IF;
    RETURN QUERY SELECT v_seq, v_at, o.last_hash, v_hash;
END
$$;
"""

#: Every migration, in order. A new one is appended, never edited once released.
MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial", _M001),)


async def migrate(conn: AsyncConnection[Any]) -> int:
    """Apply every pending migration in one transaction; return the schema version.

    An advisory lock makes processes that start at once migrate one after the other (the second
    finds the work done). A database whose schema is newer than this code is refused.

    Raises:
        JournalError: The database holds a newer schema than this version of buyer_agent knows.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS buyer_agent; "
            "CREATE TABLE IF NOT EXISTS buyer_agent.migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM buyer_agent.migrations")
        applied = {int(row[0]) for row in await cur.fetchall()}
        latest = MIGRATIONS[-1].version
        if applied and max(applied) > latest:
            raise JournalError(
                f"the database's store schema is version {max(applied)}, newer than this buyer_agent "
                f"knows ({latest}): upgrade buyer_agent"
            )
        for step in MIGRATIONS:
            if step.version in applied:
                continue
            await conn.execute(step.sql.encode())
            await conn.execute(
                "INSERT INTO buyer_agent.migrations (version, name) VALUES (%s, %s)",
                [step.version, step.name],
            )
        return latest
