"""Moving journals between stores (SQLite ↔ PostgreSQL), every hash chain verified on arrival."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from buyer_agent._errors import JournalError, JournalIntegrityError
from buyer_agent.journal._canonical import GENESIS_HASH, event_hash
from buyer_agent.journal._records import Event, LedgerEntry, OrderRecord
from buyer_agent.journal._store import OrderStore

__all__ = ["CopyReport", "CopyableStore", "Refusal", "copy_store", "verify_chain"]


@runtime_checkable
class CopyableStore(OrderStore, Protocol):
    """A store that can hand over and take in whole journals (both built-in stores can)."""

    async def meta_items(self) -> list[tuple[str, str]]:
        """Every stored meta key and value."""
        ...

    async def nonce_counters(self) -> list[tuple[str, str, int]]:
        """Every (chain, address, next unreserved nonce)."""
        ...

    async def import_nonce(self, chain: str, address: str, next_nonce: int) -> None:
        """Raise a nonce counter to ``next_nonce`` (never lower it)."""
        ...

    async def import_order(
        self, order: OrderRecord, events: Sequence[Event], ledger: LedgerEntry | None
    ) -> bool:
        """Insert an order exactly (False: already there, identical; JournalError: a different one)."""
        ...


def verify_chain(order_id: str, events: Sequence[Event]) -> int:
    """Check an order's events: sequence from 1, each linked to the previous hash, each hash its content's.

    Returns:
        The number of events.

    Raises:
        JournalIntegrityError: At the first event that fails.
    """
    prev = GENESIS_HASH
    for expected, ev in enumerate(events, start=1):
        if ev.order_id != order_id:
            raise JournalIntegrityError(ev.seq, f"belongs to order {ev.order_id}")
        if ev.seq != expected:
            raise JournalIntegrityError(ev.seq, f"expected sequence {expected}")
        if ev.prev_hash != prev:
            raise JournalIntegrityError(ev.seq, "prev_hash does not link to the previous event")
        digest = event_hash(
            prev, order_id=order_id, seq=ev.seq, at=ev.at, trigger=ev.trigger, src=ev.src, dst=ev.dst,
            payload=ev.payload,
        )  # fmt: skip
        if digest != ev.hash:
            raise JournalIntegrityError(ev.seq, "hash does not match the event's content")
        prev = ev.hash
    return len(events)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An order that was not copied, and why (``seq``: the event that broke its chain, if one did)."""

    order_id: str
    reason: str
    seq: int | None = None

    def __str__(self) -> str:
        where = f"event {self.seq}: " if self.seq is not None else ""
        return f"order {self.order_id}: {where}{self.reason}"


@dataclass(slots=True)
class CopyReport:
    """What a copy did: orders copied, already there, refused; events, meta keys and nonce counters moved."""

    source: str
    destination: str
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    events: int = 0
    meta: int = 0
    meta_kept: list[str] = field(default_factory=list)
    nonces: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` summary of ``store copy``."""
        return {
            "from": self.source,
            "to": self.destination,
            "orders": {
                "copied": len(self.copied),
                "present": len(self.present),
                "refused": len(self.refused),
            },
            "events": self.events,
            "meta": self.meta,
            "meta_kept": self.meta_kept,
            "nonces": self.nonces,
            "copied": self.copied,
            "refused": [
                {"order_id": r.order_id, "seq": r.seq, "reason": r.reason, "error": str(r)}
                for r in self.refused
            ],
        }


async def copy_store(
    source: CopyableStore, destination: CopyableStore, *, order_ids: Iterable[str] | None = None
) -> CopyReport:
    """Copy orders (row, events, ledger row), meta values and nonce counters from one store to another.

    Each order's chain is verified as it is read from ``source``; a broken one is refused, naming the
    order and the event, and the copy goes on with the others. Each order is inserted in one
    transaction, then read back from ``destination`` and checked to hold the same hashes. An order
    already there with the identical journal is left as it is; a different one under the same id is
    refused, never overwritten. Meta keys already set differently at the destination are kept there
    (listed in :attr:`CopyReport.meta_kept`); nonce counters only ever rise. Leases stay behind.
    Running the copy again finishes an interrupted one.
    """
    report = CopyReport(source.label, destination.label)
    wanted = set(order_ids) if order_ids is not None else None
    for order in await source.orders():
        if wanted is not None and order.order_id not in wanted:
            continue
        events = await source.events(order.order_id)
        try:
            count = verify_chain(order.order_id, events)
            if not count:
                raise JournalError("has no events")
            copied = await destination.import_order(order, events, await source.ledger_entry(order.order_id))
            arrived = await destination.events(order.order_id)
            verify_chain(order.order_id, arrived)
            if [e.hash for e in arrived] != [e.hash for e in events]:
                raise JournalError(f"arrived in {destination.label} with other hashes than it left")
        except JournalIntegrityError as exc:
            report.refused.append(Refusal(order.order_id, str(exc).split(": ", 1)[-1], exc.seq))
            continue
        except JournalError as exc:
            report.refused.append(Refusal(order.order_id, str(exc)))
            continue
        (report.copied if copied else report.present).append(order.order_id)
        report.events += count if copied else 0
    if wanted is None:
        for key, value in await source.meta_items():
            there = await destination.get_meta(key)
            if there is None:
                await destination.set_meta(key, value)
                report.meta += 1
            elif there != value:
                report.meta_kept.append(key)
        for chain, address, next_nonce in await source.nonce_counters():
            await destination.import_nonce(chain, address, next_nonce)
            report.nonces += 1
    return report
