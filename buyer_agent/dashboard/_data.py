"""What the dashboard shows, read from an :class:`OrderStore` through the one fold (never raw payloads).

Every view is built from :func:`buyer_agent.workflow.fold` of an order's events (its
:class:`OrderFacts`) and the readers of :mod:`buyer_agent.history` (the dispute evidence); the
store's rows give only ids, states and times, and the ledger its amounts. Folded facts are kept per
order until its row changes, so a page polled every second folds only what moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from buyer_agent._money import Money
from buyer_agent.history import build_evidence
from buyer_agent.journal import Event, LedgerEntry, LedgerStatus, OrderRecord, OrderStore
from buyer_agent.networks import Networks, agent_networks
from buyer_agent.workflow import TERMINAL, OrderFacts, OrderState, fold

__all__ = ["STATES", "DashboardData", "OrderRow", "OrderView", "Payment", "SpendSeries", "TimelineStep"]

_TERMINAL = frozenset(s.value for s in TERMINAL)


def _day(at: str) -> str:
    return at[:10]


def _when(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC)


def _seconds(a: str, b: str) -> Decimal:
    delta = _when(b) - _when(a)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros).scaleb(-6).quantize(Decimal("0.001"))


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One line of the orders list."""

    order_id: str
    state: str
    running: bool
    created_at: str
    updated_at: str
    service_id: str | None
    price: str | None
    """``2.50 USDC``, exact from base units."""
    rail: str | None
    chain: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class TimelineStep:
    """One journal event as the timeline shows it."""

    seq: int
    at: str
    trigger: str
    src: str
    dst: str
    hash: str
    prev_hash: str
    step_s: Decimal
    """Seconds since the previous event (0 for the first)."""
    elapsed_s: Decimal
    """Seconds since the order began."""

    @property
    def moves(self) -> bool:
        """True when the event changed the order's state."""
        return self.src != self.dst


@dataclass(frozen=True, slots=True)
class Payment:
    """The order's payment: amount, rail, chain, payee, transactions and their explorer links."""

    amount: str | None
    rail: str
    chain: str
    chain_name: str | None
    payee: str
    status: str | None
    transactions: tuple[tuple[str, str, str | None], ...]
    """``(tx id, purpose, explorer URL or None)``."""


@dataclass(frozen=True, slots=True)
class OrderView:
    """Everything the order page shows."""

    row: OrderRow
    facts: OrderFacts
    timeline: tuple[TimelineStep, ...]
    payment: Payment | None
    evidence: Mapping[str, Any] | None
    """The dispute's evidence bundle (the one the workflow sent), when the order was disputed."""
    daily_limit: str | None


@dataclass(frozen=True, slots=True)
class SpendSeries:
    """Spend per UTC day of one pairing in one currency, against its daily limit (base units)."""

    pairing_id: str
    currency: str
    decimals: int
    limit: int | None
    days: tuple[tuple[str, int, int], ...]
    """``(day, spent, committed)`` in base units, oldest day first."""

    def text(self, units: int) -> str:
        """``units`` as ``2.50 USDC``."""
        return str(Money(units, self.decimals, self.currency))


@dataclass(slots=True)
class _Folded:
    updated_at: str
    seq_state: str
    facts: OrderFacts


@dataclass(slots=True)
class DashboardData:
    """The dashboard's reads over one store (async, as :class:`OrderStore` is).

    Args:
        store: Where the orders live.
        networks: Chain profiles for explorer links (default: the built-ins and ``$BUYER_AGENT_NETWORKS``).
    """

    store: OrderStore
    networks: Networks = field(default_factory=agent_networks)
    _folded: dict[str, _Folded] = field(default_factory=dict)

    async def signature(self) -> tuple[tuple[str, str, str], ...]:
        """What changes when any order changes: ``(order_id, state, updated_at)`` of every row."""
        return tuple((r.order_id, r.state, r.updated_at) for r in await self.store.orders())

    async def _facts(self, record: OrderRecord) -> OrderFacts:
        cached = self._folded.get(record.order_id)
        if cached is not None and (cached.updated_at, cached.seq_state) == (record.updated_at, record.state):
            return cached.facts
        facts = fold(await self.store.events(record.order_id))
        self._folded[record.order_id] = _Folded(record.updated_at, record.state, facts)
        return facts

    @staticmethod
    def _row(record: OrderRecord, facts: OrderFacts) -> OrderRow:
        quote = facts.choice or (facts.pick.quote if facts.pick is not None else None)
        price = None
        if facts.request is not None:
            price = str(facts.request.amount)
        elif quote is not None and quote.price is not None:
            price = str(quote.price)
        error = facts.error or (facts.errors[-1] if facts.errors and record.state == "failed" else None)
        return OrderRow(
            order_id=record.order_id,
            state=record.state,
            running=record.state not in _TERMINAL,
            created_at=record.created_at,
            updated_at=record.updated_at,
            service_id=quote.service_id if quote is not None else None,
            price=price,
            rail=(facts.request.rail_type if facts.request is not None else quote.rail if quote else None)
            or None,
            chain=facts.request.chain if facts.request is not None else quote.chain if quote else None,
            error=f"{error.code}: {error.message}" if error is not None else None,
        )

    async def orders(self, *, state: str | None = None, day: str | None = None) -> list[OrderRow]:
        """Orders newest first, optionally only those in ``state`` and created on UTC ``day`` (YYYY-MM-DD)."""
        records = await self.store.orders([state] if state else None)
        rows = []
        for record in records:
            if day and _day(record.created_at) != day:
                continue
            rows.append(self._row(record, await self._facts(record)))
        rows.sort(key=lambda r: (r.created_at, r.order_id), reverse=True)
        return rows

    async def days(self) -> list[str]:
        """Every UTC day an order was created on, newest first."""
        return sorted({_day(r.created_at) for r in await self.store.orders()}, reverse=True)

    async def order(self, order_id: str) -> OrderView | None:
        """The order page's view, or None for an unknown order."""
        if not await self.store.has_order(order_id):
            return None
        record = await self.store.order(order_id)
        events = await self.store.events(order_id)
        facts = fold(events)
        self._folded[order_id] = _Folded(record.updated_at, record.state, facts)
        evidence = build_evidence(events) if facts.dispute is not None else None
        limit = facts.policy.daily_spend_limit if facts.policy is not None else None
        return OrderView(
            row=self._row(record, facts),
            facts=facts,
            timeline=_timeline(events),
            payment=self._payment(facts),
            evidence=evidence,
            daily_limit=str(limit) if limit is not None else None,
        )

    def _payment(self, facts: OrderFacts) -> Payment | None:
        req = facts.request
        if req is None:
            return None
        profile = self.networks.get(req.chain)
        txs = tuple(
            (t.tx_id, t.purpose, _safe_link(profile.tx_link(t.tx_id)) if profile is not None else None)
            for t in facts.transactions
        )
        return Payment(
            amount=str(req.amount),
            rail=req.rail_type,
            chain=req.chain,
            chain_name=(profile.display or profile.name) if profile is not None else None,
            payee=req.payee,
            status=facts.payment_status,
            transactions=txs,
        )

    async def spend(self) -> list[SpendSeries]:
        """Spend per day of every pairing and currency in the ledger, with the policy's daily limit."""
        limits: dict[tuple[str, str], Money] = {}
        for record in await self.store.orders():
            facts = await self._facts(record)
            if facts.pairing_id and facts.policy is not None and facts.policy.daily_spend_limit is not None:
                limit = facts.policy.daily_spend_limit
                limits[(facts.pairing_id, limit.currency)] = limit
        series: dict[tuple[str, str, int], dict[str, list[int]]] = {}
        for entry in await self.store.ledger_entries():
            _add(series, entry)
        for (pairing, currency), limit in limits.items():
            series.setdefault((pairing, currency, limit.decimals), {})
        out = []
        for (pairing, currency, decimals), days in sorted(series.items()):
            cap = limits.get((pairing, currency))
            out.append(
                SpendSeries(
                    pairing_id=pairing,
                    currency=currency,
                    decimals=decimals,
                    limit=cap.amount if cap is not None and cap.decimals == decimals else None,
                    days=tuple((d, v[0], v[1]) for d, v in sorted(days.items())),
                )
            )
        return out


def _add(series: dict[tuple[str, str, int], dict[str, list[int]]], entry: LedgerEntry) -> None:
    if entry.status is LedgerStatus.RELEASED:
        return
    key = (entry.pairing_id, entry.amount.currency, entry.amount.decimals)
    day = series.setdefault(key, {}).setdefault(entry.day, [0, 0])
    day[0 if entry.status is LedgerStatus.SPENT else 1] += entry.amount.amount


def _timeline(events: list[Event]) -> tuple[TimelineStep, ...]:
    if not events:
        return ()
    start = prev = events[0].at
    out = []
    for ev in events:
        out.append(
            TimelineStep(
                seq=ev.seq,
                at=ev.at,
                trigger=ev.trigger,
                src=ev.src,
                dst=ev.dst,
                hash=ev.hash,
                prev_hash=ev.prev_hash,
                step_s=_seconds(prev, ev.at),
                elapsed_s=_seconds(start, ev.at),
            )
        )
        prev = ev.at
    return tuple(out)


def _safe_link(url: str | None) -> str | None:
    """An explorer URL only when it is http(s): a profile from a file never makes a ``javascript:`` link."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


#: The states the list can be filtered by, in lifecycle order.
STATES: tuple[str, ...] = tuple(s.value for s in OrderState)
