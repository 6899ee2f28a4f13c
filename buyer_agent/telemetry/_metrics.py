"""MetricsObserver: orders by final state, spend, open commitments, retries and step latency, as OTel metrics.

A :class:`~buyer_agent.workflow.DriveObserver`: counts what the drive loop reports, and reads the
order store's ledger (:meth:`MetricsObserver.refresh`) for what is committed against each pairing's
daily limit. Money is counted in base units (integers) with ``currency`` and ``decimals`` as
attributes, never as a float; only latency is a float (seconds).

Instruments (Prometheus names after the exporter's translation in brackets):

- ``buyer_agent.orders`` counter {state} — orders that reached a terminal state
  (``buyer_agent_orders_total``);
- ``buyer_agent.spend`` counter {currency, decimals, pairing} — base units paid (``…_spend_total``);
- ``buyer_agent.ledger.committed`` / ``buyer_agent.ledger.spent`` / ``buyer_agent.ledger.daily_limit``
  gauges {currency, decimals, pairing} — today's (UTC) open commitments, spend, and the delegation
  policy's daily limit;
- ``buyer_agent.retries`` counter {step, cause} — a step run again after an error;
- ``buyer_agent.step.duration`` histogram {step, outcome} in seconds.

OpenTelemetry is imported when an observer is made, never when this module is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from buyer_agent.journal import Event, LedgerStatus, OrderStore
from buyer_agent.telemetry._attributes import error_code
from buyer_agent.telemetry._otel import require_otel
from buyer_agent.workflow import TERMINAL, FactsFolder

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

__all__ = ["METER_NAME", "MetricsObserver"]

#: The instrumentation scope of every instrument this package makes.
METER_NAME = "buyer_agent"

log = logging.getLogger(__name__)

_TERMINAL = frozenset(s.value for s in TERMINAL)
# Triggers after which the ledger may have changed (a commitment made, spent, or given back).
_LEDGER_TRIGGERS = frozenset({"order", "paid", "fail", "cancel", "refund"})
# Key of one ledger gauge series: (pairing, currency, decimals).
_Series = tuple[str, str, int]


class MetricsObserver:
    """OpenTelemetry metrics of the orders a drive loop runs (see the module docstring).

    Args:
        meter_provider: Where the instruments live (an SDK ``MeterProvider`` with a reader, e.g. the
            Prometheus one :func:`~buyer_agent.telemetry.serve_metrics` makes); default the global one.
        store: The order store whose ledger the commitment gauges read (:meth:`refresh`).

    Raises:
        ImportError: OpenTelemetry is not installed (the message says ``pip install 'buyer-agent[otel]'``).
    """

    def __init__(
        self, meter_provider: MeterProvider | None = None, *, store: OrderStore | None = None
    ) -> None:
        require_otel()
        from opentelemetry import metrics

        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.store = store
        self._orders = meter.create_counter(
            "buyer_agent.orders", unit="{order}", description="Orders that reached a final state"
        )
        self._spend = meter.create_counter(
            "buyer_agent.spend", unit="{base_unit}", description="Money paid, in the token's base units"
        )
        self._retries = meter.create_counter(
            "buyer_agent.retries", unit="{retry}", description="Steps run again after an error, by cause"
        )
        self._latency = meter.create_histogram(
            "buyer_agent.step.duration", unit="s", description="How long each step of an order took"
        )
        self._ledger: dict[str, dict[_Series, int]] = {"committed": {}, "spent": {}, "daily_limit": {}}
        for name, what in (
            ("committed", "Open commitments against the daily limit today (UTC), in base units"),
            ("spent", "Spent today (UTC) against the daily limit, in base units"),
            ("daily_limit", "The delegation policy's daily spend limit, in base units"),
        ):
            meter.create_observable_gauge(
                f"buyer_agent.ledger.{name}",
                callbacks=[self._observe(name)],
                unit="{base_unit}",
                description=what,
            )
        self._folders: dict[str, FactsFolder] = {}
        self._lent: set[str] = set()
        self._started: dict[tuple[str, str], float] = {}
        self._failed: dict[tuple[str, str], str] = {}
        self._limits: dict[tuple[str, str], tuple[int, int]] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False

    def _observe(self, name: str) -> Any:
        from opentelemetry.metrics import Observation

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(value, {"pairing": p, "currency": c, "decimals": d})
                for (p, c, d), value in self._ledger[name].items()
            ]

        return callback

    # --- DriveObserver ---------------------------------------------------------------------------

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """Start folding the order's events."""
        self._folders.setdefault(order_id, FactsFolder())

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """Time the step; a step that failed before and runs again is a retry (cause: the error's code)."""
        key = (order_id, step)
        cause = self._failed.pop(key, None)
        if cause is not None:
            self._retries.add(1, {"step": step, "cause": cause})
        self._started[key] = time.perf_counter()

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """Record the step's latency; remember its error as the cause of a retry to come."""
        started = self._started.pop((order_id, step), None)
        if started is not None:
            outcome = "ok" if error is None else "error"
            self._latency.record(time.perf_counter() - started, {"step": step, "outcome": outcome})
        if error is not None:
            self._failed[(order_id, step)] = error_code(error)

    def order_folder(self, order_id: str, folder: FactsFolder) -> None:
        """Read the order's facts (pairing, policy, payment) from the drive loop's own fold."""
        self._folders[order_id] = folder
        self._lent.add(order_id)
        self._note_limit(folder)

    def event(self, event: Event) -> None:
        """Fold the event; a confirmed payment adds to the spend, a pairing's policy gives the limit."""
        folder = self._folders.setdefault(event.order_id, FactsFolder())
        if event.order_id not in self._lent:  # the loop's fold has taken it already
            folder.apply(event)
        if event.trigger == "pair":
            self._note_limit(folder)
        if event.trigger == "paid" and folder.request is not None:
            money = folder.request.amount
            attrs: dict[str, str | int] = {
                "currency": money.currency,
                "decimals": money.decimals,
                "pairing": folder.pairing_id or "",
            }
            self._spend.add(money.amount, attrs)
        if event.trigger in _LEDGER_TRIGGERS:
            self._schedule_refresh()

    def order_finished(self, order_id: str, state: str) -> None:
        """Count the order by its final state (an order let go while waiting is not counted)."""
        if state in _TERMINAL:
            self._orders.add(1, {"state": state})
            self._folders.pop(order_id, None)
        if order_id in self._lent:  # not ours past this point (a next take-up lends anew)
            self._lent.discard(order_id)
            self._folders.pop(order_id, None)
        for key in [k for k in self._started if k[0] == order_id]:
            del self._started[key]
        self._schedule_refresh()

    # --- the ledger ------------------------------------------------------------------------------

    def _note_limit(self, folder: FactsFolder) -> None:
        """The daily limit of the delegation policy the order paired under, for the limit gauge."""
        if folder.policy is None or not folder.pairing_id:
            return
        limit = folder.policy.daily_spend_limit
        if limit is not None:
            self._limits[(folder.pairing_id, limit.currency)] = (limit.amount, limit.decimals)
            self._ledger["daily_limit"][(folder.pairing_id, limit.currency, limit.decimals)] = limit.amount

    def watch_store(self, store: OrderStore) -> None:
        """Read the ledger gauges from ``store`` (an agent calls this with its own store when it starts)."""
        self.store = store
        self._schedule_refresh()

    def forget_store(self, store: OrderStore) -> None:
        """Stop reading ``store`` (its agent is closing it)."""
        if self.store is store:
            self.store = None

    def _schedule_refresh(self) -> None:
        if self.store is None:
            return
        if self._refreshing is not None and not self._refreshing.done():
            # A read is under way and may have missed this change: read once more after it.
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        again = True
        while again and self.store is not None:
            self._again = False
            store = self.store
            try:
                await self.refresh()
            except Exception:  # a metric must never stop an order
                if self.store is store:  # not a store closed meanwhile by the agent that lent it
                    log.warning("could not read the ledger for the commitment metrics", exc_info=True)
                return
            again = self._again

    async def refresh(self, *, day: datetime | None = None) -> None:
        """Read today's (UTC) commitments and spend of every pairing from the store's ledger."""
        if self.store is None:
            return
        today = (day or datetime.now(UTC)).strftime("%Y-%m-%d")
        committed: dict[_Series, int] = {}
        spent: dict[_Series, int] = {}
        for entry in await self.store.ledger_entries():
            if entry.day != today:
                continue
            key = (entry.pairing_id, entry.amount.currency, entry.amount.decimals)
            if entry.status is LedgerStatus.COMMITTED:
                committed[key] = committed.get(key, 0) + entry.amount.amount
            elif entry.status is LedgerStatus.SPENT:
                spent[key] = spent.get(key, 0) + entry.amount.amount
        for (pairing, currency), (_amount, decimals) in self._limits.items():
            committed.setdefault((pairing, currency, decimals), 0)
            spent.setdefault((pairing, currency, decimals), 0)
        self._ledger["committed"] = committed
        self._ledger["spent"] = spent
