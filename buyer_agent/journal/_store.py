"""OrderStore: exactly what the workflow needs from where orders live (SQLite today, PostgreSQL next).

The protocol is async so that a store on a database server (psycopg's async pool) never blocks the
event loop that drives many orders; the SQLite journal answers it without threads (its calls take
tens of microseconds). Every invariant is the store's to enforce, inside its own transaction, never
the Python around it:

- an event is accepted only at its order's head (the order in ``src``, the next ``seq``, the
  previous hash), and the order row (state, head, context patch, ledger change) moves with it;
- a write made under a :class:`Lease` is accepted only while that lease is the order's current one
  (same owner, same epoch, not expired by the store's clock), so a driver that lost its lease while
  paused cannot append;
- a ledger commitment with a ``daily_limit`` is checked against everything the pairing committed or
  spent that UTC day in the same transaction that records it (:class:`BudgetExceeded` otherwise);
- a nonce reservation is one atomic statement per (chain, address).

An ``intent:`` event is durable when ``record`` returns (its side effect runs after).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from buyer_agent._money import Money
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, OrderRecord

__all__ = ["Lease", "OrderStore", "SwappableMeta"]


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to drive one order until ``until`` (the store's clock), held by ``owner``.

    ``epoch`` rises every time the lease passes to a new owner (renewals by the same owner keep it),
    so a write conditional on ``(owner, epoch)`` fails once anyone else has taken the order over.
    """

    order_id: str
    owner: str
    epoch: int
    until: str


@runtime_checkable
class OrderStore(Protocol):
    """Orders, their hash-chained events, leases, the budget ledger, nonces and small metadata."""

    @property
    def label(self) -> str:
        """Where the orders live, for people (a file path, a database URL without its password)."""
        ...

    async def create_order(
        self,
        order_id: str,
        spec: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Event:
        """Insert a new order in ``created`` with its first event (``submit``)."""
        ...

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
        """Append one event at the order's head and move the order row with it, in one transaction.

        Raises:
            JournalError: no such order, or it is not in ``src`` / not at the head (``stale writer``).
            LeaseLost: ``lease`` is given and is no longer the order's current lease.
            BudgetExceeded: ``ledger`` commits past its ``daily_limit``.
        """
        ...

    async def order(self, order_id: str) -> OrderRecord:
        """The order's current row (JournalError when there is none)."""
        ...

    async def has_order(self, order_id: str) -> bool:
        """True when the store knows ``order_id``."""
        ...

    async def orders(self, states: Iterable[str] | None = None) -> list[OrderRecord]:
        """Every order (optionally only those in ``states``), oldest first."""
        ...

    async def events(self, order_id: str) -> list[Event]:
        """The order's events in sequence order."""
        ...

    async def acquire_lease(self, order_id: str, owner: str, ttl_s: float) -> Lease | None:
        """Take or renew the right to drive ``order_id`` for ``ttl_s`` seconds.

        Returns None when another live owner holds it.
        """
        ...

    async def claim(self, states: Iterable[str], owner: str, ttl_s: float, limit: int) -> list[Lease]:
        """Lease up to ``limit`` orders in ``states`` that nobody holds (or whose lease expired).

        Oldest first, skipping rows another claimer is taking at the same moment.
        """
        ...

    async def release_lease(self, order_id: str, owner: str) -> None:
        """Give the order's lease back (only if ``owner`` holds it)."""
        ...

    async def ledger_entry(self, order_id: str) -> LedgerEntry | None:
        """The order's ledger row, if it has one."""
        ...

    async def ledger_entries(self, pairing_id: str | None = None) -> list[LedgerEntry]:
        """Every ledger row (optionally of one pairing), by day then order."""
        ...

    async def spent_today(
        self, pairing_id: str, currency: str, decimals: int, *, day: datetime | None = None
    ) -> Money:
        """What ``pairing_id`` committed plus spent in ``currency`` on the UTC day of ``day``."""
        ...

    async def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """Reserve ``count`` consecutive nonces for ``address`` on ``chain``; return the first."""
        ...

    async def get_meta(self, key: str) -> str | None:
        """A stored value (e.g. the pairing id of a machine), or None."""
        ...

    async def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, delete) a value; names of secrets are refused."""
        ...

    async def aclose(self) -> None:
        """Release the store's connections."""
        ...


@runtime_checkable
class SwappableMeta(Protocol):
    """A store whose meta values can be compared and set in one step (both built-in stores can).

    Processes that share a store coordinate through it: a value written only if it is still what the
    writer last read (a lock taken only when free, a record replaced only by whoever saw it last).
    """

    async def swap_meta(self, key: str, expected: str | None, value: str | None) -> bool:
        """Set ``key`` to ``value`` (None: delete it) only if it holds ``expected`` (None: absent).

        Returns:
            True when the swap happened; False when the key held something else.

        Raises:
            JournalError: the key's name names a secret.
        """
        ...
