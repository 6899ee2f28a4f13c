"""The SQLite journal as an :class:`OrderStore`: the embedded default, one machine, one file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent._money import Money
from buyer_agent.journal._canonical import dumps
from buyer_agent.journal._journal import Journal
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, OrderRecord
from buyer_agent.journal._store import Lease

__all__ = ["SqliteStore"]


class SqliteStore:
    """:class:`OrderStore` over a :class:`Journal`.

    The calls run on the event loop's thread: each is one short local transaction (tens of
    microseconds), cheaper than handing it to a worker thread. The one wait on the disk, the sync
    that makes intents durable, runs in a worker thread while the loop goes on when it covers the
    intents of several orders in flight. The database
    enforces the head and append-only rules (schema triggers); leases, the daily limit and nonces
    are checked inside the same transaction as the write they guard, and SQLite has one writer at a
    time.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # The waiters of the next sync (not started yet), and whether one is running now.
        self._sync: asyncio.Future[None] | None = None
        self._waiting = 0
        self._syncing = False

    async def _durable(self) -> None:
        """Wait until every commit so far is on disk; concurrent callers share one sync (group commit).

        The sync starts once the tasks already ready to run have had their turn, so the intents
        that many orders in flight commit meanwhile are covered by the same sync; one that runs
        already started before this commit, so this waits for the next, which starts when it ends
        and covers every intent committed meanwhile.
        """
        pending = self._sync
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._sync = loop.create_future()
            if not self._syncing:
                loop.call_soon(self._flush)
        self._waiting += 1
        await asyncio.shield(pending)

    def _flush(self) -> None:
        done, self._sync = self._sync, None
        if done is None:
            return
        alone, self._waiting = self._waiting == 1, 0
        if alone:
            # One intent waiting, so most likely no other order has work meanwhile: the handoff to
            # a worker thread and back would cost more (GIL switches, wake-ups) than it frees.
            try:
                self.journal.sync()
            except BaseException as exc:  # the waiter hears it and does not run its effect
                done.set_exception(exc)
            else:
                done.set_result(None)
            return
        self._syncing = True
        loop = asyncio.get_running_loop()
        syncing = loop.run_in_executor(None, self.journal.sync)

        def finished(result: asyncio.Future[None]) -> None:
            self._syncing = False
            if not done.done():
                exc = result.exception() if not result.cancelled() else asyncio.CancelledError()
                if exc is not None:  # every waiter hears it; none runs its effect
                    done.set_exception(exc)
                else:
                    done.set_result(None)
            if self._sync is not None:
                self._flush()

        syncing.add_done_callback(finished)

    def __repr__(self) -> str:
        return f"SqliteStore({self.label!r})"

    @property
    def label(self) -> str:
        """The database file, or ``:memory:``."""
        return str(self.journal.path) if self.journal.path is not None else ":memory:"

    async def create_order(
        self,
        order_id: str,
        spec: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Event:
        """See :meth:`OrderStore.create_order`."""
        return self.journal.create_order(order_id, spec, context=context, payload=payload)

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
        """See :meth:`OrderStore.record`.

        An intent is committed without its own sync and returned once a sync shared with the
        intents of other orders committed meanwhile has made it durable.
        """
        group = self.journal.needs_sync(trigger)
        event = self.journal.record(
            order_id,
            trigger,
            src,
            dst,
            payload,
            context_patch,
            ledger=ledger,
            pairing_id=pairing_id,
            market_order_id=market_order_id,
            lease=lease,
            durable=False if group else None,
        )
        if group:
            await self._durable()
        return event

    async def order(self, order_id: str) -> OrderRecord:
        """See :meth:`OrderStore.order`."""
        return self.journal.order(order_id)

    async def has_order(self, order_id: str) -> bool:
        """See :meth:`OrderStore.has_order`."""
        return self.journal.has_order(order_id)

    async def orders(self, states: Iterable[str] | None = None) -> list[OrderRecord]:
        """See :meth:`OrderStore.orders`."""
        return self.journal.orders(states)

    async def events(self, order_id: str) -> list[Event]:
        """See :meth:`OrderStore.events`."""
        return self.journal.events(order_id)

    async def acquire_lease(self, order_id: str, owner: str, ttl_s: float) -> Lease | None:
        """See :meth:`OrderStore.acquire_lease`."""
        return self.journal.acquire_lease(order_id, owner, ttl_s)

    async def claim(self, states: Iterable[str], owner: str, ttl_s: float, limit: int) -> list[Lease]:
        """See :meth:`OrderStore.claim`."""
        return self.journal.claim(states, owner, ttl_s, limit)

    async def release_lease(self, order_id: str, owner: str) -> None:
        """See :meth:`OrderStore.release_lease`."""
        self.journal.release_lease(order_id, owner)

    async def ledger_entry(self, order_id: str) -> LedgerEntry | None:
        """See :meth:`OrderStore.ledger_entry`."""
        return self.journal.ledger_entry(order_id)

    async def ledger_entries(self, pairing_id: str | None = None) -> list[LedgerEntry]:
        """See :meth:`OrderStore.ledger_entries`."""
        return self.journal.ledger_entries(pairing_id)

    async def spent_today(
        self, pairing_id: str, currency: str, decimals: int, *, day: datetime | None = None
    ) -> Money:
        """See :meth:`OrderStore.spent_today`."""
        return self.journal.spent_today(pairing_id, currency, decimals, day=day)

    async def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """See :meth:`OrderStore.reserve`."""
        return self.journal.reserve(chain, address, chain_next, count)

    async def get_meta(self, key: str) -> str | None:
        """See :meth:`OrderStore.get_meta`."""
        return self.journal.get_meta(key)

    async def set_meta(self, key: str, value: str | None) -> None:
        """See :meth:`OrderStore.set_meta`."""
        self.journal.set_meta(key, value)

    async def swap_meta(self, key: str, expected: str | None, value: str | None) -> bool:
        """See :meth:`SwappableMeta.swap_meta`."""
        return self.journal.swap_meta(key, expected, value)

    async def aclose(self) -> None:
        """Close the journal's connection."""
        self.journal.close()

    # --- moving a store (``store copy``): see :mod:`buyer_agent.journal._copy` --------------------

    async def meta_items(self) -> list[tuple[str, str]]:
        """Every stored meta key and value, by key."""
        rows = self.journal.db.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
        return [(str(k), str(v)) for k, v in rows]

    async def nonce_counters(self) -> list[tuple[str, str, int]]:
        """Every (chain, address, next unreserved nonce)."""
        rows = self.journal.db.execute("SELECT chain, address, next FROM nonces ORDER BY chain, address")
        return [(str(c), str(a), int(n)) for c, a, n in rows.fetchall()]

    async def import_nonce(self, chain: str, address: str, next_nonce: int) -> None:
        """Raise the counter of (chain, address) to ``next_nonce`` (never lower it)."""
        with self.journal._atomic() as db:
            db.execute(
                "INSERT INTO nonces (chain, address, next) VALUES (?, ?, ?) "
                "ON CONFLICT(chain, address) DO UPDATE SET next = max(next, excluded.next)",
                [chain, address.lower(), next_nonce],
            )

    async def import_order(
        self, order: OrderRecord, events: Sequence[Event], ledger: LedgerEntry | None
    ) -> bool:
        """Insert an order as another store holds it: its row, its events (same hashes), its ledger row.

        The schema's head triggers accept each event only at the head the previous one made; the
        caller verifies the hashes first. No lease comes along.

        Returns:
            True when inserted; False when this store already holds the identical journal.

        Raises:
            JournalError: This store holds a different journal under the same order id.
        """
        if self.journal.has_order(order.order_id):
            if [e.to_json() for e in self.journal.events(order.order_id)] == [e.to_json() for e in events]:
                return False
            raise JournalError(
                f"order {order.order_id} already exists in {self.label} with a different journal; "
                "refusing to overwrite it"
            )
        if not events:
            raise JournalError(f"order {order.order_id} has no events to copy")
        with self.journal._atomic() as db:
            db.execute(
                "INSERT INTO orders (order_id, state, context, spec, pairing_id, market_order_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [order.order_id, events[0].src, dumps(order.context), dumps(order.spec), order.pairing_id,
                 order.market_order_id, order.created_at, events[0].at],
            )  # fmt: skip
            db.executemany(
                "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[e.order_id, e.seq, e.at, e.trigger, e.src, e.dst, dumps(e.payload), e.prev_hash, e.hash]
                 for e in events],
            )  # fmt: skip
            if ledger is not None:
                db.execute(
                    "INSERT INTO ledger (order_id, pairing_id, day, amount, currency, decimals, status, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [ledger.order_id, ledger.pairing_id, ledger.day, str(ledger.amount.amount),
                     ledger.amount.currency, ledger.amount.decimals, ledger.status.value, events[-1].at],
                )  # fmt: skip
        return True
