"""The PostgreSQL journal as an :class:`OrderStore`: many worker processes on many hosts, one database.

A little over 400 lines: one class, the protocol's methods and the four a whole-store copy needs,
each a few lines of SQL; the schema, the errors and the row conversions are modules of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from buyer_agent._errors import JournalError
from buyer_agent._money import Money
from buyer_agent._redact import is_sensitive_key
from buyer_agent.journal._canonical import GENESIS_HASH, dumps, encode_clean, jsonable, loads
from buyer_agent.journal._open import display_url
from buyer_agent.journal._pg_errors import password_of, scrubbed, translated
from buyer_agent.journal._pg_rows import ledger_args, ledger_entry, order_record, patch_args
from buyer_agent.journal._pg_schema import migrate
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, OrderRecord
from buyer_agent.journal._store import Lease

__all__ = ["PostgresStore"]

_ORDER_COLUMNS = (
    "order_id, state, context::text, spec::text, pairing_id, market_order_id, created_at, updated_at, "
    "lease_owner, buyer_agent.format_at(lease_until), lease_epoch"
)
_LEDGER_COLUMNS = "pairing_id, day, order_id, amount::text, currency, decimals, status"
_TODAY = "to_char(buyer_agent.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class PostgresStore:
    """:class:`OrderStore` on a PostgreSQL server (psycopg 3, async, with its connection pool).

    Open it with :meth:`open`. The invariants are the database's (see
    :mod:`buyer_agent.journal._pg_schema`): the head check, the hash, the row moving with its event
    and the append-only rule are triggers; ``record`` is one call of a server function, so its
    lease check, append, context patch (jsonb) and ledger commitment are one transaction, judged by
    the server's clock. Every statement runs in autocommit, so each call is its own transaction.

    Durability: PostgreSQL's default ``synchronous_commit=on`` makes every commit durable before it
    returns; where a server or role turned it ``off``, ``intent:`` events still commit with it on.

    A store belongs to the event loop it was opened in (its pool's connections do); open one per
    loop or thread. A connection the server dropped (a restart) fails one call with a retryable
    :class:`JournalError`, and the pool replaces it.
    """

    def __init__(
        self, pool: AsyncConnectionPool[Any], url: str, *, time_shift: Callable[[], timedelta] | None
    ) -> None:
        self._pool = pool
        self._label = display_url(url)
        self._password = password_of(url)
        self._time_shift = time_shift

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        max_connections: int = 10,
        timeout: float = 30.0,
        time_shift: Callable[[], timedelta] | None = None,
    ) -> PostgresStore:
        """Connect to ``url``, migrate the schema (``buyer_agent``) and open a connection pool.

        Args:
            url: ``postgresql://user:password@host:port/database`` (any libpq URL).
            max_connections: The pool's largest size (one connection per concurrent call).
            timeout: Seconds to wait for a connection (from the pool, or the first one).
            time_shift: Tests only: added to the server's clock in every statement (the store then
                lives at the server's ``now()`` plus this), so a test can move lease expiry and UTC
                days without waiting. Production leaves it None: the server's clock alone.

        Raises:
            JournalError: The server cannot be reached, refuses the login, is not UTF8, or holds a
                newer schema than this code.
        """
        label, password = display_url(url), password_of(url)
        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise JournalError(f"not a usable PostgreSQL URL {label}: {scrubbed(exc, password)}") from exc
        with translated(label, password):
            first = await AsyncConnection.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
            try:
                cur = await first.execute("SHOW server_encoding")
                row = await cur.fetchone()
                if row is None or str(row[0]).upper() not in ("UTF8", "UTF-8"):
                    raise JournalError(
                        f"the database at {label} is not UTF8 ({row[0] if row else '?'}): "
                        "create it with ENCODING 'UTF8'"
                    )
                await migrate(first)
            finally:
                await first.close()
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                url,
                min_size=1,
                max_size=max_connections,
                kwargs={"autocommit": True},
                timeout=timeout,
                open=False,
                name="buyer_agent",
            )
            await pool.open(wait=True, timeout=timeout)
        return cls(pool, url, time_shift=time_shift)

    def __repr__(self) -> str:
        return f"PostgresStore({self._label!r})"

    @property
    def label(self) -> str:
        """The database URL without its password."""
        return self._label

    @asynccontextmanager
    async def _conn(
        self, *, lease: Lease | None = None, ledger: LedgerChange | None = None
    ) -> AsyncIterator[AsyncConnection[Any]]:
        with translated(self._label, self._password, lease=lease, ledger=ledger):
            async with self._pool.connection() as conn:
                if self._time_shift is not None:
                    shift = self._time_shift().total_seconds()
                    await conn.execute(
                        "SELECT set_config('buyer_agent.time_shift', %s, false)", [f"{shift} seconds"]
                    )
                yield conn

    async def _one(
        self,
        sql: str,
        args: Sequence[Any] | Mapping[str, Any],
        *,
        lease: Lease | None = None,
        ledger: LedgerChange | None = None,
    ) -> tuple[Any, ...] | None:
        async with self._conn(lease=lease, ledger=ledger) as conn:
            cur = await conn.execute(sql.encode(), args)
            row = await cur.fetchone()
            return tuple(row) if row is not None else None

    async def _all(self, sql: str, args: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        async with self._conn() as conn:
            cur = await conn.execute(sql.encode(), args)
            return [tuple(r) for r in await cur.fetchall()]

    # --- orders and events -----------------------------------------------------------------

    async def create_order(
        self,
        order_id: str,
        spec: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Event:
        """See :meth:`OrderStore.create_order`."""
        clean = jsonable(dict(payload) if payload is not None else {"spec": spec})
        row = await self._one(
            "SELECT r_at, r_hash FROM buyer_agent.create_order(%s, 'created', %s::jsonb, %s::jsonb, "
            "'submit', %s)",
            [order_id, dumps(context or {}), dumps(spec), encode_clean(clean)],
        )
        assert row is not None
        return Event(order_id, 1, row[0], "submit", "created", "created", clean, GENESIS_HASH, row[1])

    async def record(
        self,
        order_id: str,
        trigger: str,
        src: str,
        dst: str,
        payload: Mapping[str, Any] | None = None,
        context_patch: Mapping[str, Any] | None = None,
        *,
        ledger: LedgerChange | None = None,
        pairing_id: str | None = None,
        market_order_id: str | None = None,
        lease: Lease | None = None,
    ) -> Event:
        """See :meth:`OrderStore.record`."""
        clean = jsonable(payload or {})
        sets, unsets = patch_args(context_patch)
        status, pairing, amount, currency, decimals, limit = ledger_args(ledger)
        row = await self._one(
            "SELECT r_seq, r_at, r_prev, r_hash FROM buyer_agent.record_event("
            "%s, %s, %s, %s, %s, %s::jsonb, %s::text[], %s, %s, %s, %s, %s, %s, %s::numeric, %s, %s, "
            "%s::numeric)",
            [
                order_id, trigger, src, dst, encode_clean(clean), sets, unsets, pairing_id,
                market_order_id, lease.owner if lease else None, lease.epoch if lease else None,
                status, pairing, amount, currency, decimals, limit,
            ],
            lease=lease,
            ledger=ledger,
        )  # fmt: skip
        assert row is not None
        return Event(order_id, int(row[0]), row[1], trigger, src, dst, clean, row[2], row[3])

    async def order(self, order_id: str) -> OrderRecord:
        """See :meth:`OrderStore.order`."""
        row = await self._one(
            f"SELECT {_ORDER_COLUMNS} FROM buyer_agent.orders WHERE order_id = %s", [order_id]
        )
        if row is None:
            raise JournalError(f"no order {order_id} in the store")
        return order_record(row)

    async def has_order(self, order_id: str) -> bool:
        """See :meth:`OrderStore.has_order`."""
        return await self._one("SELECT 1 FROM buyer_agent.orders WHERE order_id = %s", [order_id]) is not None

    async def orders(self, states: Iterable[str] | None = None) -> list[OrderRecord]:
        """See :meth:`OrderStore.orders`."""
        sql = f"SELECT {_ORDER_COLUMNS} FROM buyer_agent.orders"
        args: list[Any] = []
        if states is not None:
            sql += " WHERE state = ANY(%s)"
            args.append(list(states))
        rows = await self._all(sql + " ORDER BY created_at, order_id", args)
        return [order_record(r) for r in rows]

    async def events(self, order_id: str) -> list[Event]:
        """See :meth:`OrderStore.events`."""
        rows = await self._all(
            "SELECT order_id, seq, at, trigger, src, dst, payload, prev_hash, hash FROM buyer_agent.events "
            "WHERE order_id = %s ORDER BY seq",
            [order_id],
        )
        return [Event(r[0], r[1], r[2], r[3], r[4], r[5], loads(r[6]) or {}, r[7], r[8]) for r in rows]

    # --- leases: the server's clock decides ----------------------------------------------------

    async def acquire_lease(self, order_id: str, owner: str, ttl_s: float) -> Lease | None:
        """See :meth:`OrderStore.acquire_lease`. A renewal by the holder keeps its epoch."""
        row = await self._one(
            "UPDATE buyer_agent.orders SET lease_owner = %(owner)s, "
            "lease_epoch = CASE WHEN lease_owner IS DISTINCT FROM %(owner)s OR lease_until IS NULL "
            "OR lease_until <= c.now THEN lease_epoch + 1 ELSE lease_epoch END, "
            "lease_until = c.now + make_interval(secs => %(ttl)s) "
            "FROM (SELECT buyer_agent.now() AS now) c "
            "WHERE order_id = %(id)s AND (lease_owner IS NULL OR lease_until IS NULL "
            "OR lease_until <= c.now OR lease_owner = %(owner)s) "
            "RETURNING lease_epoch, buyer_agent.format_at(lease_until)",
            {"owner": owner, "ttl": float(ttl_s), "id": order_id},
        )
        if row is None:
            if not await self.has_order(order_id):
                raise JournalError(f"no order {order_id} in the store")
            return None
        return Lease(order_id, owner, int(row[0]), row[1])

    async def claim(self, states: Iterable[str], owner: str, ttl_s: float, limit: int) -> list[Lease]:
        """See :meth:`OrderStore.claim`: ``FOR UPDATE SKIP LOCKED``, so claimers never wait on each other."""
        wanted = list(states)
        if not wanted or limit < 1:
            return []
        rows = await self._all(
            "WITH c AS (SELECT buyer_agent.now() AS now), picked AS ("
            "SELECT o.order_id FROM buyer_agent.orders o, c WHERE o.state = ANY(%(states)s) "
            "AND (o.lease_owner IS NULL OR o.lease_until IS NULL OR o.lease_until <= c.now) "
            "ORDER BY o.created_at, o.order_id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED) "
            "UPDATE buyer_agent.orders o SET lease_owner = %(owner)s, lease_epoch = o.lease_epoch + 1, "
            "lease_until = c.now + make_interval(secs => %(ttl)s) FROM picked, c "
            "WHERE o.order_id = picked.order_id "
            "RETURNING o.order_id, o.lease_epoch, buyer_agent.format_at(o.lease_until), o.created_at",
            {"states": wanted, "limit": limit, "owner": owner, "ttl": float(ttl_s)},
        )
        rows.sort(key=lambda r: (r[3], r[0]))
        return [Lease(r[0], owner, int(r[1]), r[2]) for r in rows]

    async def release_lease(self, order_id: str, owner: str) -> None:
        """See :meth:`OrderStore.release_lease`."""
        await self._all(
            "UPDATE buyer_agent.orders SET lease_owner = NULL, lease_until = NULL "
            "WHERE order_id = %s AND lease_owner = %s RETURNING 1",
            [order_id, owner],
        )

    # --- the budget ledger -------------------------------------------------------------------

    async def ledger_entry(self, order_id: str) -> LedgerEntry | None:
        """See :meth:`OrderStore.ledger_entry`."""
        row = await self._one(
            f"SELECT {_LEDGER_COLUMNS} FROM buyer_agent.ledger WHERE order_id = %s", [order_id]
        )
        return ledger_entry(row) if row is not None else None

    async def ledger_entries(self, pairing_id: str | None = None) -> list[LedgerEntry]:
        """See :meth:`OrderStore.ledger_entries`."""
        sql = f"SELECT {_LEDGER_COLUMNS} FROM buyer_agent.ledger"
        args: list[Any] = []
        if pairing_id is not None:
            sql += " WHERE pairing_id = %s"
            args.append(pairing_id)
        return [ledger_entry(r) for r in await self._all(sql + " ORDER BY day, order_id", args)]

    async def spent_today(
        self, pairing_id: str, currency: str, decimals: int, *, day: datetime | None = None
    ) -> Money:
        """See :meth:`OrderStore.spent_today` (``day`` defaults to the server's UTC today)."""
        when = day.astimezone(UTC).date().isoformat() if day is not None else None
        row = await self._one(
            "SELECT coalesce(sum(amount), 0)::text FROM buyer_agent.ledger WHERE pairing_id = %s "
            f"AND day = coalesce(%s, {_TODAY}) AND currency = %s AND decimals = %s "
            "AND status IN ('committed', 'spent')",
            [pairing_id, when, currency, decimals],
        )
        return Money(int(row[0]) if row else 0, decimals, currency)

    # --- nonces ------------------------------------------------------------------------------

    async def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """See :meth:`OrderStore.reserve`: one upsert, so two workers never get the same nonce."""
        if count < 1:
            raise ValueError("reserve at least one nonce")
        row = await self._one(
            "INSERT INTO buyer_agent.nonces AS n (chain, address, next) "
            "VALUES (%(chain)s, %(address)s, %(chain_next)s + %(count)s) "
            "ON CONFLICT (chain, address) DO UPDATE SET next = greatest(n.next, %(chain_next)s) + %(count)s "
            "RETURNING n.next - %(count)s",
            {"chain": chain, "address": address.lower(), "chain_next": chain_next, "count": count},
        )
        assert row is not None
        return int(row[0])

    # --- meta --------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """See :meth:`OrderStore.get_meta`."""
        row = await self._one("SELECT value FROM buyer_agent.meta WHERE key = %s", [key])
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str | None) -> None:
        """See :meth:`OrderStore.set_meta` (a key's name, before any ``:``, must not name a secret)."""
        if is_sensitive_key(key.split(":", 1)[0].replace(".", "_")):
            raise JournalError(f"refusing to store {key!r}: the journal never holds secrets")
        if value is None:
            await self._all("DELETE FROM buyer_agent.meta WHERE key = %s RETURNING 1", [key])
        else:
            await self._all(
                "INSERT INTO buyer_agent.meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value RETURNING 1",
                [key, value],
            )

    async def swap_meta(self, key: str, expected: str | None, value: str | None) -> bool:
        """See :meth:`SwappableMeta.swap_meta`: one statement, so two workers never both win a swap."""
        if is_sensitive_key(key.split(":", 1)[0].replace(".", "_")):
            raise JournalError(f"refusing to store {key!r}: the journal never holds secrets")
        if expected is None and value is None:
            return not await self._all("SELECT 1 FROM buyer_agent.meta WHERE key = %s", [key])
        if expected is None:
            sql, args = (
                "INSERT INTO buyer_agent.meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING "
                "RETURNING 1",
                [key, value],
            )
        elif value is None:
            sql, args = (
                "DELETE FROM buyer_agent.meta WHERE key = %s AND value = %s RETURNING 1",
                [key, expected],
            )
        else:
            sql, args = (
                "UPDATE buyer_agent.meta SET value = %s WHERE key = %s AND value = %s RETURNING 1",
                [value, key, expected],
            )
        return bool(await self._all(sql, args))

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self._pool.close()

    # --- moving a store (``store copy``): see :mod:`buyer_agent.journal._copy` --------------------

    async def meta_items(self) -> list[tuple[str, str]]:
        """Every stored meta key and value, by key."""
        rows = await self._all("SELECT key, value FROM buyer_agent.meta ORDER BY key")
        return [(str(k), str(v)) for k, v in rows]

    async def nonce_counters(self) -> list[tuple[str, str, int]]:
        """Every (chain, address, next unreserved nonce)."""
        rows = await self._all("SELECT chain, address, next FROM buyer_agent.nonces ORDER BY chain, address")
        return [(str(c), str(a), int(n)) for c, a, n in rows]

    async def import_nonce(self, chain: str, address: str, next_nonce: int) -> None:
        """Raise the counter of (chain, address) to ``next_nonce`` (never lower it)."""
        await self._all(
            "INSERT INTO buyer_agent.nonces AS n (chain, address, next) VALUES (%s, %s, %s) "
            "ON CONFLICT (chain, address) DO UPDATE SET next = greatest(n.next, EXCLUDED.next) RETURNING 1",
            [chain, address.lower(), next_nonce],
        )

    async def import_order(
        self, order: OrderRecord, events: Sequence[Event], ledger: LedgerEntry | None
    ) -> bool:
        """Insert an order as another store holds it: its row, its events (same hashes), its ledger row.

        One transaction. The schema's head trigger accepts each event only at the head the previous
        one made and only when its hash matches its content, so a broken chain cannot arrive. No
        lease comes along.

        Returns:
            True when inserted; False when this store already holds the identical journal.

        Raises:
            JournalError: This store holds a different journal under the same order id.
        """
        if await self.has_order(order.order_id):
            if [e.to_json() for e in await self.events(order.order_id)] == [e.to_json() for e in events]:
                return False
            raise JournalError(
                f"order {order.order_id} already exists in {self.label} with a different journal; "
                "refusing to overwrite it"
            )
        if not events:
            raise JournalError(f"order {order.order_id} has no events to copy")
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO buyer_agent.orders (order_id, state, context, spec, pairing_id, "
                "market_order_id, created_at, updated_at) "
                "VALUES (%s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)",
                [order.order_id, events[0].src, dumps(order.context), dumps(order.spec), order.pairing_id,
                 order.market_order_id, order.created_at, events[0].at],
            )  # fmt: skip
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO buyer_agent.events (order_id, seq, at, trigger, src, dst, payload, "
                    "prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [[e.order_id, e.seq, e.at, e.trigger, e.src, e.dst, dumps(e.payload), e.prev_hash, e.hash]
                     for e in events],
                )  # fmt: skip
            if ledger is not None:
                await conn.execute(
                    "INSERT INTO buyer_agent.ledger (order_id, pairing_id, day, amount, currency, decimals, "
                    "status, updated_at) VALUES (%s, %s, %s, %s::numeric, %s, %s, %s, %s)",
                    [ledger.order_id, ledger.pairing_id, ledger.day, str(ledger.amount.amount),
                     ledger.amount.currency, ledger.amount.decimals, ledger.status.value, events[-1].at],
                )  # fmt: skip
        return True
