"""The SQLite journal: orders, append-only hash-chained events, the budget ledger, nonces, meta.

Over ~400 lines on purpose: one class whose writes share one connection and one transaction
discipline (the head check, the lease check, the daily limit and nonce reservations each inside the
write they guard); split across modules, those rules would no longer read as one.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from buyer_agent._errors import BudgetExceeded, JournalError, JournalIntegrityError, LeaseLost
from buyer_agent._money import Money
from buyer_agent._redact import is_sensitive_key
from buyer_agent.journal._canonical import (
    GENESIS_HASH,
    chain_hash,
    dumps,
    encode_clean,
    event_hash,
    format_at,
    jsonable,
    loads,
)
from buyer_agent.journal._paths import DB_NAME
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, LedgerStatus, OrderRecord
from buyer_agent.journal._schema import ORDER_PARTS, migrate
from buyer_agent.journal._store import Lease

__all__ = ["Journal", "lease_owner_id", "utc_now"]

_DURABILITY = {"normal": "NORMAL", "full": "FULL"}
# Events recorded before a side effect runs: committed durably (see Journal._atomic).
_INTENT = "intent:"
# Intents of effects that are harmless to repeat under a new key after a power cut, committed
# without the sync like every other event: a search asks for quotes again (nothing is bought); the
# market documents the payment intent as idempotent per order (it returns the existing payment) and
# the escrow lock as idempotent once the payment is held.
_UNSYNCED_INTENTS = frozenset(
    {"intent:search_market", "intent:create_payment_intent", "intent:lock_escrow_payment"}
)


def _synced(trigger: str) -> bool:
    """True when the event is an intent whose commit must reach the disk before its effect runs."""
    return trigger.startswith(_INTENT) and trigger not in _UNSYNCED_INTENTS


# The message of the schema's events_at_head trigger.
_STALE = "stale writer"
_INSERT_EVENT = (
    "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The same, only while the lease is the order's (owner and epoch, unexpired at the event's time):
# the check and the append in one statement.
_INSERT_LEASED = (
    "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM orders WHERE order_id = ? "
    "AND lease_owner = ? AND lease_epoch = ? AND lease_until > ?)"
)
# An order's head: its state and newest event (migration m007: the row no longer copies them).
_READ_HEAD = (
    "SELECT o.state, e.seq, e.hash FROM orders o LEFT JOIN events e ON e.order_id = o.order_id "
    "AND e.seq = (SELECT max(seq) FROM events WHERE order_id = o.order_id) WHERE o.order_id = ?"
)
# The order row's columns as an OrderRecord reads them; updated_at is the newest event's time.
_ORDER_COLUMNS = (
    "SELECT order_id, state, context, spec, pairing_id, market_order_id, created_at, "
    "coalesce((SELECT at FROM events WHERE events.order_id = orders.order_id "
    "ORDER BY seq DESC LIMIT 1), updated_at), lease_owner, lease_until, lease_epoch FROM orders"
)
# Context keys are the framework's own names; anything else cannot be a JSON path member safely.
_CONTEXT_KEY = re.compile(r"[A-Za-z0-9_:.-]+")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Journal:
    """The order journal in one SQLite file (WAL), or in memory when ``path`` is None.

    Every event is appended together with the order row it changes (and any ledger change) in one
    ``db.atomic()`` transaction, so a crash leaves either both or neither. Nothing secret is ever
    written: payloads hold ids, amounts, addresses and signed bytes, never keys or tokens.

    Args:
        path: The database file; None for an in-memory journal (tests).
        durability: ``"normal"`` (``synchronous=NORMAL``, except that every ``intent:`` event is
            committed with a sync of the log, so the record of each side effect, and everything
            journaled before it, survives a power cut before the effect runs) or ``"full"``
            (``synchronous=FULL``: every event survives a power cut, slower).
        clock: Where event times come from (injected so tests and replays are deterministic).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        durability: str = "normal",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if durability not in _DURABILITY:
            raise ValueError(f"durability must be one of {sorted(_DURABILITY)}, not {durability!r}")
        self.path: Path | None = Path(path) if path is not None else None
        self.durability = durability
        self._clock = clock
        # The (state, seq, hash) head of each order this journal wrote last: a cache the database
        # checks on every append (see :meth:`record`), never trusted on its own.
        self._heads: dict[str, tuple[str, int, str]] = {}
        # The connection :meth:`sync` writes its mark on, opened on first use; it may run on a
        # worker thread (the store's group commit), so it never shares the journal's connection.
        self._sync_lock = threading.Lock()
        self._sync_conn: sqlite3.Connection | None = None
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: db.atomic() is the only place a transaction begins, so nothing is
            # left half-open by the sqlite3 module's implicit transactions.
            conn = sqlite3.connect(
                str(self.path) if self.path is not None else ":memory:",
                isolation_level=None,
                timeout=30.0,
                check_same_thread=False,
            )
            self.db = Database(conn)
            # Writes go to the sqlite3 connection itself (sqlite-utils' wrapper costs more per call
            # than an event's whole SQL).
            self._conn = conn
            if self.path is not None:
                _enter_wal(conn)
            self.db.execute(f"PRAGMA synchronous={_DURABILITY[durability]}")
            self.db.execute("PRAGMA foreign_keys=ON")
            migrate(self.db)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal at {self.path}: {exc}") from exc

    @classmethod
    def open_dir(cls, state_dir: str | Path, *, durability: str = "normal") -> Journal:
        """Open (creating if needed) ``<state_dir>/buyer_agent.db``."""
        return cls(Path(state_dir) / DB_NAME, durability=durability)

    def close(self) -> None:
        """Close the connection."""
        with self._sync_lock:
            if self._sync_conn is not None:
                self._sync_conn.close()
                self._sync_conn = None
        self.db.close()

    def __repr__(self) -> str:
        return (
            f"Journal(path={str(self.path) if self.path else ':memory:'!r}, durability={self.durability!r})"
        )

    def now(self) -> datetime:
        """The journal's clock."""
        return self._clock()

    def _atomic(self, *, durable: bool = False) -> _Write:
        """One transaction; ``durable`` syncs the log at its commit even at ``synchronous=NORMAL``.

        In WAL mode a synced commit also makes every earlier commit durable (the log is written in
        order), so syncing the intents is enough for nothing done outside to be forgotten.
        """
        return _Write(self._conn, durable and self.durability == "normal" and self.path is not None)

    # --- orders and events -----------------------------------------------------------------

    def create_order(
        self,
        order_id: str,
        spec: Mapping[str, Any],
        *,
        state: str = "created",
        context: Mapping[str, Any] | None = None,
        trigger: str = "submit",
        payload: Mapping[str, Any] | None = None,
    ) -> Event:
        """Insert a new order row and its first event (``trigger``, ``state → state``)."""
        at = format_at(self._clock())
        first_payload = dict(payload) if payload is not None else {"spec": spec}
        row_context = {k: v for k, v in (context or {}).items() if k not in ORDER_PARTS}
        parts = {k: v for k, v in (context or {}).items() if k in ORDER_PARTS}
        with self._atomic() as db:
            if db.execute("SELECT 1 FROM orders WHERE order_id = ?", [order_id]).fetchone():
                raise JournalError(f"order {order_id} already exists")
            db.execute(
                "INSERT INTO orders (order_id, state, context, spec, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [order_id, state, dumps(row_context), dumps(spec), at, at],
            )
            _write_parts(db, order_id, parts)
            event = self._append(
                db, order_id, (state, 0, GENESIS_HASH), at, trigger, state, jsonable(first_payload)
            )
        self._heads[order_id] = (state, event.seq, event.hash)
        return event

    def record(
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
        durable: bool | None = None,
    ) -> Event:
        """Append an event and update the order row (state, context) in ONE transaction.

        The database accepts the event only at the order's head and in ``src`` (the schema's
        ``events_at_head`` trigger) and then moves the order row to ``dst``; this journal remembers
        the heads it wrote, so an append costs one insert, and reads the row again only when another
        writer moved the order meanwhile.

        Args:
            order_id: The order.
            trigger: The machine trigger, or ``intent:<effect>`` / ``result:<effect>`` (src == dst).
            src: The state the order must be in now (a stale writer is refused).
            dst: The state after the event.
            payload: What happened (JSON-able; never a secret).
            context_patch: Top-level keys to set in the order's context (a None value removes the key).
            ledger: A ledger change applied in the same transaction.
            pairing_id: Set the order's pairing id.
            market_order_id: Set the order's market order id.
            lease: Append only while this is the order's current lease (owner and epoch, not
                expired by the journal's clock), checked in the same transaction.
            durable: Sync the log at this commit (None: for intents, the default); False leaves an
                intent for a later :meth:`sync` to make durable (a group commit).

        Returns:
            The stored event.

        Raises:
            JournalError: The order does not exist or is not in ``src``.
            LeaseLost: ``lease`` is no longer the order's.
            BudgetExceeded: ``ledger`` commits past its ``daily_limit``.
        """
        at_dt = self._clock()
        at = format_at(at_dt)
        clean = jsonable(payload) if payload else {}
        text = encode_clean(clean)
        if context_patch or pairing_id is not None or market_order_id is not None:
            sets, args, parts = _row_changes(context_patch, pairing_id, market_order_id, payload, clean)
        else:
            sets, args, parts = "", [], {}
        durable = _synced(trigger) if durable is None else durable
        # An event with nothing else to write is one INSERT, a transaction by itself: it takes the
        # write lock before it reads the row (the head trigger), so it needs no BEGIN IMMEDIATE.
        alone = lease is None and not sets and not parts and ledger is None
        for attempt in (1, 2):
            head = self._heads.get(order_id)
            if head is None or head[0] != src or attempt == 2:
                head = self._read_head(order_id)
                if head[0] != src:
                    raise JournalError(f"order {order_id} is {head[0]}, not {src}: refusing event {trigger}")
            seq = head[1] + 1
            prev = head[2]
            digest = chain_hash(prev, order_id, seq, at, trigger, src, dst, text)
            row = (order_id, seq, at, trigger, src, dst, text, prev, digest)
            try:
                if alone:
                    self._insert_alone(row, durable)
                else:
                    with self._atomic(durable=durable) as db:
                        if lease is None:
                            db.execute(_INSERT_EVENT, row)
                        elif db.execute(_INSERT_LEASED, (*row, *_lease_args(lease, at))).rowcount != 1:
                            _check_lease(db, lease, at)  # says why: no such order, or the lease passed on
                            raise LeaseLost(lease.order_id, lease.owner, lease.epoch)
                        if sets:
                            db.execute(f"UPDATE orders SET {sets} WHERE order_id = ?", [*args, order_id])
                        if parts:
                            _write_parts(db, order_id, parts)
                        if ledger is not None:
                            self._apply_ledger(db, order_id, ledger, at_dt)
            except JournalError as exc:
                self._heads.pop(order_id, None)
                if attempt == 1 and _STALE in str(exc):
                    continue  # another writer moved the order: read its head and try once more
                raise
            self._heads[order_id] = (dst, seq, digest)
            return Event(order_id, seq, at, trigger, src, dst, clean, prev, digest)
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_alone(self, row: tuple[Any, ...], durable: bool) -> None:
        """Append one event as a statement of its own (its own transaction, synced when ``durable``)."""
        conn = self._conn
        sync = durable and self.durability == "normal" and self.path is not None
        try:
            if sync:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute(_INSERT_EVENT, row)
            finally:
                if sync:
                    conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc

    def needs_sync(self, trigger: str) -> bool:
        """True when an event with ``trigger`` must reach the disk before its effect runs.

        Only at ``synchronous=NORMAL`` on a file: otherwise every commit syncs (or there is no disk).
        """
        return _synced(trigger) and self.durability == "normal" and self.path is not None

    def sync(self) -> None:
        """Make every commit so far durable: a write of the sync mark, then the log on disk.

        Safe to call from another thread while this journal writes (the store's group commit waits
        for it in a worker thread): the mark is written on a connection of its own, and the log is
        then flushed with an ``fsync`` of the write-ahead log file, the same flush SQLite makes at a
        synced commit. The log holds every commit of every connection in order, so that flush makes
        the mark and everything committed before it durable; it runs after the mark's commit has
        given the write lock back, so the journal's own writes go on while it waits on the disk. A
        checkpoint moves commits from the log into the database only after syncing the log, and
        syncs the database before the log is reused, so nothing committed is ever only in a part of
        the log this flush misses.
        """
        if self.durability != "normal" or self.path is None:
            return  # every commit is synced already, or there is no disk
        with self._sync_lock:
            try:
                conn = self._sync_conn
                if conn is None:
                    conn = sqlite3.connect(
                        str(self.path), isolation_level=None, timeout=30.0, check_same_thread=False
                    )
                    conn.execute("PRAGMA synchronous=NORMAL")
                    self._sync_conn = conn
                conn.execute("UPDATE sync_mark SET n = n + 1 WHERE id = 1")
                log = os.open(f"{self.path}-wal", os.O_RDWR)
                try:
                    os.fsync(log)
                finally:
                    os.close(log)
            except (sqlite3.Error, OSError) as exc:
                raise JournalError(f"journal sync failed: {exc}") from exc

    def _read_head(self, order_id: str) -> tuple[str, int, str]:
        row = self._conn.execute(_READ_HEAD, [order_id]).fetchone()
        if row is None:
            raise JournalError(f"no order {order_id} in the journal")
        if row[1] is None:  # no event yet
            return (str(row[0]), 0, GENESIS_HASH)
        return (str(row[0]), int(row[1]), str(row[2]))

    def _append(
        self,
        db: sqlite3.Connection,
        order_id: str,
        head: tuple[str, int, str],
        at: str,
        trigger: str,
        dst: str,
        clean: Any,
    ) -> Event:
        """Insert the event after ``head``; ``clean`` is the payload already made plain (:func:`jsonable`)."""
        src, last_seq, prev = head
        text = encode_clean(clean)
        seq = last_seq + 1
        digest = chain_hash(prev, order_id, seq, at, trigger, src, dst, text)
        db.execute(_INSERT_EVENT, (order_id, seq, at, trigger, src, dst, text, prev, digest))
        return Event(order_id, seq, at, trigger, src, dst, clean, prev, digest)

    def order(self, order_id: str) -> OrderRecord:
        """The order's current row.

        Raises:
            JournalError: No such order.
        """
        row = self.db.execute(f"{_ORDER_COLUMNS} WHERE order_id = ?", [order_id]).fetchone()
        if row is None:
            raise JournalError(f"no order {order_id} in the journal")
        parts = self.db.execute(
            "SELECT name, value FROM order_parts WHERE order_id = ?", [order_id]
        ).fetchall()
        return _order(row, parts)

    def has_order(self, order_id: str) -> bool:
        """True when the journal knows ``order_id``."""
        return self.db.execute("SELECT 1 FROM orders WHERE order_id = ?", [order_id]).fetchone() is not None

    def orders(self, states: Iterable[str] | None = None) -> list[OrderRecord]:
        """Every order (optionally only those in ``states``), oldest first."""
        sql = _ORDER_COLUMNS
        args: list[Any] = []
        if states is not None:
            wanted = list(states)
            sql += f" WHERE state IN ({', '.join('?' for _ in wanted)})"
            args = wanted
        sql += " ORDER BY created_at, order_id"
        rows = self.db.execute(sql, args).fetchall()
        parts: dict[str, list[Any]] = {}
        if states is None and rows:
            found = self.db.execute("SELECT order_id, name, value FROM order_parts").fetchall()
        else:  # the parts of these orders only (the open ones of a resume, not every order's)
            ids = [row[0] for row in rows]
            found = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found += self.db.execute(
                    "SELECT order_id, name, value FROM order_parts "
                    f"WHERE order_id IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                ).fetchall()
        for order_id, name, value in found:
            parts.setdefault(order_id, []).append((name, value))
        return [_order(row, parts.get(row[0], ())) for row in rows]

    def events(self, order_id: str) -> list[Event]:
        """The order's events in sequence order."""
        rows = self.db.execute(
            "SELECT order_id, seq, at, trigger, src, dst, payload, prev_hash, hash FROM events "
            "WHERE order_id = ? ORDER BY seq",
            [order_id],
        ).fetchall()
        return [Event(r[0], r[1], r[2], r[3], r[4], r[5], loads(r[6]) or {}, r[7], r[8]) for r in rows]

    def verify(self, order_id: str) -> int:
        """Check the order's hash chain; return the number of events.

        Raises:
            JournalIntegrityError: at the first event whose sequence, link or hash is wrong.
        """
        prev = GENESIS_HASH
        events = self.events(order_id)
        for expected_seq, ev in enumerate(events, start=1):
            if ev.seq != expected_seq:
                raise JournalIntegrityError(ev.seq, f"expected sequence {expected_seq}")
            if ev.prev_hash != prev:
                raise JournalIntegrityError(ev.seq, "prev_hash does not link to the previous event")
            digest = event_hash(
                prev,
                order_id=ev.order_id,
                seq=ev.seq,
                at=ev.at,
                trigger=ev.trigger,
                src=ev.src,
                dst=ev.dst,
                payload=ev.payload,
            )
            if digest != ev.hash:
                raise JournalIntegrityError(ev.seq, "hash does not match the event's content")
            prev = ev.hash
        return len(events)

    # --- leases: one driver per order across processes --------------------------------------

    def acquire_lease(self, order_id: str, owner: str, ttl_s: float) -> Lease | None:
        """Take (or renew) the right to drive ``order_id`` for ``ttl_s`` seconds.

        Succeeds when the order is unleased, already ours, expired, or held by a process on this
        host that no longer exists (a crashed run). The epoch rises when the lease changes hands.

        Returns:
            The lease, or None when another live owner holds it.
        """
        now = self._clock()
        with self._atomic() as db:
            row = db.execute(
                "SELECT lease_owner, lease_until, lease_epoch FROM orders WHERE order_id = ?", [order_id]
            ).fetchone()
            if row is None:
                raise JournalError(f"no order {order_id} in the journal")
            return _take_lease(db, order_id, owner, ttl_s, now, row)

    def claim(self, states: Iterable[str], owner: str, ttl_s: float, limit: int) -> list[Lease]:
        """Lease up to ``limit`` orders in ``states`` that nobody live holds, oldest first.

        One SQLite file has one writer at a time, so the claim is a plain transaction here.
        """
        wanted = list(states)
        if not wanted or limit < 1:
            return []
        now = self._clock()
        marks = ", ".join("?" for _ in wanted)
        leases: list[Lease] = []
        with self._atomic() as db:
            rows = db.execute(
                "SELECT order_id, lease_owner, lease_until, lease_epoch FROM orders "
                f"WHERE state IN ({marks}) ORDER BY created_at, order_id",
                wanted,
            ).fetchall()
            for order_id, *row in rows:
                lease = _take_lease(db, order_id, owner, ttl_s, now, tuple(row), renew=False)
                if lease is not None:
                    leases.append(lease)
                    if len(leases) >= limit:
                        break
        return leases

    def release_lease(self, order_id: str, owner: str) -> None:
        """Give the order's lease back (only if ``owner`` holds it)."""
        with self._atomic() as db:
            db.execute(
                "UPDATE orders SET lease_owner = NULL, lease_until = NULL "
                "WHERE order_id = ? AND lease_owner = ?",
                [order_id, owner],
            )

    # --- the budget ledger -------------------------------------------------------------------

    def _apply_ledger(
        self, db: sqlite3.Connection, order_id: str, change: LedgerChange, at: datetime
    ) -> None:
        stamp = format_at(at)
        if change.status is LedgerStatus.COMMITTED:
            if change.pairing_id is None or change.amount is None:
                raise JournalError("a ledger commitment needs a pairing id and an amount")
            money = change.amount
            if change.daily_limit is not None:
                _check_daily_limit(db, order_id, change.pairing_id, money, change.daily_limit, at)
            db.execute(
                "INSERT INTO ledger "
                "(order_id, pairing_id, day, amount, currency, decimals, status, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'committed', ?) "
                "ON CONFLICT(order_id) DO UPDATE SET amount = excluded.amount, currency = excluded.currency, "
                "decimals = excluded.decimals, status = 'committed', updated_at = excluded.updated_at",
                [
                    order_id,
                    change.pairing_id,
                    at.astimezone(UTC).date().isoformat(),
                    str(money.amount),
                    money.currency,
                    money.decimals,
                    stamp,
                ],
            )
            return
        cur = db.execute(
            "UPDATE ledger SET status = ?, updated_at = ? WHERE order_id = ?",
            [change.status.value, stamp, order_id],
        )
        if cur.rowcount == 0 and change.status is LedgerStatus.SPENT:
            raise JournalError(f"order {order_id} has no ledger commitment to spend")

    def ledger_entry(self, order_id: str) -> LedgerEntry | None:
        """The order's ledger row, if it has one."""
        row = self.db.execute(
            "SELECT pairing_id, day, order_id, amount, currency, decimals, status FROM ledger "
            "WHERE order_id = ?",
            [order_id],
        ).fetchone()
        if row is None:
            return None
        return LedgerEntry(row[0], row[1], row[2], Money(int(row[3]), row[5], row[4]), LedgerStatus(row[6]))

    def ledger_entries(self, pairing_id: str | None = None) -> list[LedgerEntry]:
        """Every ledger row (optionally of one pairing)."""
        sql = "SELECT pairing_id, day, order_id, amount, currency, decimals, status FROM ledger"
        args: list[Any] = []
        if pairing_id is not None:
            sql += " WHERE pairing_id = ?"
            args.append(pairing_id)
        rows = self.db.execute(sql + " ORDER BY day, order_id", args).fetchall()
        return [LedgerEntry(r[0], r[1], r[2], Money(int(r[3]), r[5], r[4]), LedgerStatus(r[6])) for r in rows]

    def spent_today(
        self, pairing_id: str, currency: str, decimals: int, *, day: datetime | None = None
    ) -> Money:
        """What ``pairing_id`` has committed plus spent in ``currency`` on the UTC day of ``day``.

        Released reservations do not count. ``day`` defaults to the journal clock's today.
        """
        when = (day or self._clock()).astimezone(UTC).date().isoformat()
        return Money(_day_total(self._conn, pairing_id, when, currency, decimals), decimals, currency)

    # --- nonces (the rails' NonceStore) ------------------------------------------------------

    def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """Reserve ``count`` consecutive nonces for ``address`` on ``chain``; return the first.

        The first is ``max(chain_next, last reserved + 1)``; the reservation is committed before
        this returns, so concurrent orders and restarts never reuse a nonce.
        """
        if count < 1:
            raise ValueError("reserve at least one nonce")
        addr = address.lower()
        with self._atomic() as db:
            db.execute(
                "INSERT INTO nonces (chain, address, next) VALUES (?, ?, ?) "
                "ON CONFLICT(chain, address) DO UPDATE SET next = next",
                [chain, addr, chain_next],
            )
            stored = db.execute(
                "SELECT next FROM nonces WHERE chain = ? AND address = ?", [chain, addr]
            ).fetchone()[0]
            first = max(chain_next, int(stored))
            db.execute(
                "UPDATE nonces SET next = ? WHERE chain = ? AND address = ?", [first + count, chain, addr]
            )
            return first

    # --- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored value (e.g. the pairing id of a machine), or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, delete) a value. Keys that name a secret are refused.

        A key is ``name`` or ``name:qualifier``; only the name says what the value is (the qualifier
        is data, such as a market URL whose path may hold any word).
        """
        if is_sensitive_key(key.split(":", 1)[0].replace(".", "_")):
            raise JournalError(f"refusing to store {key!r}: the journal never holds secrets")
        with self._atomic() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", [key])
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [key, value],
                )

    def swap_meta(self, key: str, expected: str | None, value: str | None) -> bool:
        """Set ``key`` to ``value`` (None: delete) if it holds ``expected`` (None: absent); True if so."""
        if is_sensitive_key(key.split(":", 1)[0].replace(".", "_")):
            raise JournalError(f"refusing to store {key!r}: the journal never holds secrets")
        with self._atomic() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
            if (None if row is None else str(row[0])) != expected:
                return False
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", [key])
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [key, value],
                )
        return True


class _Write:
    """One write transaction on the journal's connection (:meth:`Journal._atomic`).

    A class rather than a generator-based context manager: it is entered for nearly every write,
    where the generator's machinery cost more than the transaction's own statements.
    """

    __slots__ = ("_conn", "_sync")

    def __init__(self, conn: sqlite3.Connection, sync: bool) -> None:
        self._conn = conn
        self._sync = sync

    def __enter__(self) -> sqlite3.Connection:
        conn = self._conn
        try:
            if self._sync:
                conn.execute("PRAGMA synchronous=FULL")
            # IMMEDIATE takes the write lock at BEGIN, where the busy timeout waits for it. A
            # deferred transaction that reads first (a lease, the orders to claim) and writes after
            # fails at once with "database is locked" when another connection committed in between
            # (WAL's snapshot rule), which two processes sharing a file would hit.
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._restore()
            raise JournalError(f"journal write failed: {exc}") from exc
        except BaseException:
            self._restore()
            raise
        return conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        conn = self._conn
        try:
            try:
                if kind is None:
                    try:
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                elif conn.in_transaction:
                    conn.execute("ROLLBACK")
            finally:
                if self._sync:
                    conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as err:
            raise JournalError(f"journal write failed: {err}") from err
        if isinstance(exc, sqlite3.Error):
            raise JournalError(f"journal write failed: {exc}") from exc

    def _restore(self) -> None:
        if self._sync:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA synchronous=NORMAL")


def _row_changes(
    context_patch: Mapping[str, Any] | None,
    pairing_id: str | None,
    market_order_id: str | None,
    payload: Mapping[str, Any] | None = None,
    clean: Any = None,
) -> tuple[str, list[Any], dict[str, Any]]:
    """The ``SET`` clause (and its arguments) an event's row changes need, and its parts to write.

    The context is patched inside SQLite (``json_set`` / ``json_remove`` on the stored text), so an
    event never reads, decodes and rewrites the whole context; the write-once parts
    (:data:`ORDER_PARTS`) go to their own table and leave the row small. A value that is the
    payload's own (the same object, e.g. a search's quotes) is encoded from the payload's plain
    form (``clean``) instead of being made plain again. All removals go in one ``json_remove`` and
    all values in one ``json_set`` (the keys are distinct, so their order does not matter): each
    call parses and writes the whole context text once, however many keys it takes.
    """
    sets: list[str] = []
    args: list[Any] = []
    parts: dict[str, Any] = {}
    if context_patch:
        removed: list[str] = []
        values: list[str] = []
        for key, value in context_patch.items():
            if not _CONTEXT_KEY.fullmatch(key):
                raise JournalError(f"context key {key!r} is not a plain name")
            text = None
            if value is not None and payload is not None and payload.get(key) is value:
                text = encode_clean(clean[key])
            if key in ORDER_PARTS:
                # Kept apart; a copy an older row (or an import) still holds in its context goes.
                parts[key] = value if text is None else _Encoded(text)
                removed.append(f'$."{key}"')
            elif value is None:
                removed.append(f'$."{key}"')
            else:
                values.extend([f'$."{key}"', dumps(value) if text is None else text])
        expr = "context"
        if removed:
            expr = f"json_remove({expr}{', ?' * len(removed)})"
            args.extend(removed)
        if values:
            expr = f"json_set({expr}{', ?, json(?)' * (len(values) // 2)})"
            args.extend(values)
        if expr != "context":
            sets.append(f"context = {expr}")
    if pairing_id is not None:
        sets.append("pairing_id = ?")
        args.append(pairing_id)
    if market_order_id is not None:
        sets.append("market_order_id = ?")
        args.append(market_order_id)
    return ", ".join(sets), args, parts


class _Encoded(str):
    """A context value already in canonical JSON text."""


def _write_parts(db: sqlite3.Connection, order_id: str, parts: Mapping[str, Any]) -> None:
    """Set (or, for None, drop) write-once parts of an order's context."""
    for name, value in parts.items():
        if value is None:
            db.execute("DELETE FROM order_parts WHERE order_id = ? AND name = ?", [order_id, name])
        else:
            db.execute(
                "INSERT INTO order_parts (order_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(order_id, name) DO UPDATE SET value = excluded.value",
                [order_id, name, str(value) if isinstance(value, _Encoded) else dumps(value)],
            )


def _enter_wal(conn: sqlite3.Connection, *, wait_s: float = 30.0) -> None:
    """Switch the file to WAL, waiting out another connection that is doing the same.

    Changing the journal mode needs the database to itself for a moment, and SQLite answers
    "database is locked" at once instead of calling the busy handler, so two processes opening a
    new journal together would make one of them fail.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _take_lease(
    db: sqlite3.Connection,
    order_id: str,
    owner: str,
    ttl_s: float,
    now: datetime,
    row: tuple[Any, ...],
    *,
    renew: bool = True,
) -> Lease | None:
    """Give ``owner`` the lease of ``order_id`` if it is free (or, with ``renew``, already its own)."""
    holder, holder_until, epoch = row[0], row[1], int(row[2])
    mine = holder == owner
    free = (
        holder is None
        or holder_until is None
        or holder_until <= format_at(now)
        or (not mine and _owner_is_dead(holder))
    )
    if not (free or (renew and mine)):
        return None
    if not mine or holder_until is None or holder_until <= format_at(now):
        epoch += 1  # a new tenure: whoever held it before can no longer write
    until = format_at(now + timedelta(seconds=ttl_s))
    db.execute(
        "UPDATE orders SET lease_owner = ?, lease_until = ?, lease_epoch = ? WHERE order_id = ?",
        [owner, until, epoch, order_id],
    )
    return Lease(order_id, owner, epoch, until)


def _lease_args(lease: Lease, at: str) -> tuple[str, str, int, str]:
    """The arguments of :data:`_INSERT_LEASED`'s lease condition."""
    return (lease.order_id, lease.owner, lease.epoch, at)


def _check_lease(db: sqlite3.Connection, lease: Lease, at: str) -> None:
    """Refuse a write under ``lease`` unless it is still the order's, unexpired at ``at``."""
    row = db.execute(
        "SELECT lease_owner, lease_epoch, lease_until FROM orders WHERE order_id = ?", [lease.order_id]
    ).fetchone()
    if row is None:
        raise JournalError(f"no order {lease.order_id} in the journal")
    owner, epoch, until = row
    if owner != lease.owner or int(epoch) != lease.epoch or until is None or until <= at:
        raise LeaseLost(lease.order_id, lease.owner, lease.epoch)


def _check_daily_limit(
    db: sqlite3.Connection, order_id: str, pairing_id: str, amount: Money, limit: Money, at: datetime
) -> None:
    """Refuse a commitment that takes the pairing's spend on ``at``'s UTC day past ``limit``."""
    if (limit.currency, limit.decimals) != (amount.currency, amount.decimals):
        raise BudgetExceeded(
            f"the daily limit is in {limit.currency} ({limit.decimals} decimals), the order in "
            f"{amount.currency} ({amount.decimals} decimals)",
            rule="daily_limit",
        )
    day = at.astimezone(UTC).date().isoformat()
    total = _day_total(db, pairing_id, day, amount.currency, amount.decimals, but=order_id)
    spent = Money(total, amount.decimals, amount.currency)
    if spent + amount > limit:
        raise BudgetExceeded(
            f"the pairing's daily limit is {limit}: {spent} already committed or spent today, "
            f"this order needs {amount}",
            rule="daily_limit",
        )


# What a pairing holds on a day: its commitments and spends in one currency, but one order's.
_DAY_WHERE = (
    "FROM ledger WHERE pairing_id = ? AND day = ? AND currency = ? AND decimals = ? "
    "AND status IN ('committed', 'spent') AND order_id IS NOT ?"
)


def _day_total(
    db: sqlite3.Connection, pairing_id: str, day: str, currency: str, decimals: int, *, but: str | None = None
) -> int:
    """The sum of the day's amounts (base units, kept as text so no size is lost), summed by SQLite.

    Amounts of up to 18 digits are summed in SQL (one row back, where reading every row of the day
    into Python made each commitment cost more the more orders the pairing had made that day); a
    longer amount, or a sum past SQLite's 64-bit integers (it says "integer overflow", never wraps),
    is summed exactly in Python instead.
    """
    args = [pairing_id, day, currency, decimals, but]
    try:
        small, long = db.execute(
            "SELECT sum(CASE WHEN length(amount) <= 18 THEN CAST(amount AS INTEGER) END), "
            f"sum(length(amount) > 18) {_DAY_WHERE}",
            args,
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        long = 1
    if long:
        return sum(int(r[0]) for r in db.execute(f"SELECT amount {_DAY_WHERE}", args))
    return int(small or 0)


def _order(row: Any, parts: Iterable[tuple[str, str]] = ()) -> OrderRecord:
    context = loads(row[2]) or {}
    for name, value in parts:
        context[name] = loads(value)
    return OrderRecord(
        order_id=row[0],
        state=row[1],
        context=context,
        spec=loads(row[3]) or {},
        pairing_id=row[4],
        market_order_id=row[5],
        created_at=row[6],
        updated_at=row[7],
        lease_owner=row[8],
        lease_until=row[9],
        lease_epoch=int(row[10]),
    )


def lease_owner_id(tag: str) -> str:
    """A lease owner id for this process: ``host:pid:tag``."""
    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


def _owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
