"""The step families' effects: events under the order's lease, intents with their keys, market writes.

A step never writes to the store or calls the market by itself: it asks :class:`Effects`, which
appends at the order's head under its :class:`~buyer_agent.journal.Lease`, folds the event into the
order's facts in memory (so nothing re-reads the order row between steps), tells the progress
callback, the observer and the crash hook, and runs market writes with their idempotency key, the
pairing token and its refresh rule.

No market write relies on its key: a write whose answer was lost (``OrchestrationOutcomeUnknown``: a
timeout after sending, a dropped connection, a 5xx) is reconciled by the read its rule names
(``_reconcile.WRITES``) before anything else, and that read is journaled (``note:reconciled``). The
same read comes first when a step repeats a write that an earlier round or run may have sent (its
intent journaled, no answer kept). Only a read that finds nothing lets the write go out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from transitions import Machine

from buyer_agent._errors import (
    OrchestrationApiError,
    OrchestrationError,
    OrchestrationOutcomeUnknown,
    PolicyError,
)
from buyer_agent._redact import Secret
from buyer_agent._time import parse_time
from buyer_agent._waits import EVERY_S, report_wait
from buyer_agent.journal import Event, Lease, LedgerChange, LedgerStatus, OrderStore
from buyer_agent.journal._canonical import format_at
from buyer_agent.networks import Networks
from buyer_agent.rails._base import Rail
from buyer_agent.rails._registry import rail_for
from buyer_agent.workflow._facts import EFFECT_KEYS, OrderFacts
from buyer_agent.workflow._fold import FactsFolder
from buyer_agent.workflow._model import OrderModel
from buyer_agent.workflow._names import NOTE_RECONCILED
from buyer_agent.workflow._observer import DriveObserver
from buyer_agent.workflow._pairing import AUTH_REJECTED, PairingSession
from buyer_agent.workflow._ports import MarketPort
from buyer_agent.workflow._reconcile import Read, Reading, Reads, Repeat, rule_for
from buyer_agent.workflow._spec import OrderSpec
from buyer_agent.workflow._states import OrderState
from buyer_agent.workflow._summary import OrderSummary, ProgressEvent

__all__ = ["Effects", "Env", "OrderRun", "Stop"]

log = logging.getLogger("buyer_agent.workflow")
T = TypeVar("T")

# Machine triggers that keep an error recorded by an earlier, stopped attempt.
_KEEP_ERROR = frozenset({"fail", "dispute", "refund", "cancel"})


class Stop(Exception):
    """Stop driving for now (waiting, or an error recorded); the order keeps its state."""


@dataclass(slots=True)
class OrderRun:
    """One order while it is taken up: its facts, folded once and advanced by every event appended.

    ``folder`` has the fields of :class:`OrderFacts` (read them there: no copy per read);
    :meth:`facts` freezes them for a guard or a summary.
    """

    order_id: str
    folder: FactsFolder
    spec: OrderSpec
    model: OrderModel
    machine: Machine
    lease: Lease | None = None
    renew_at: datetime | None = None
    started: float = field(default_factory=time.monotonic)
    resumed: bool = False
    #: Transient rounds the current step has been repeated (the drive loop's policy).
    transient: int = 0
    #: Transactions this run signed and has not broadcast (no look at the chain needed before).
    unsent: set[str] = field(default_factory=set)
    #: Market writes (effect names) whose journaled key provably never reached the market: journaled
    #: by this run and not sent since, answered with an error, or read as absent since the last send.
    #: Any other write with a journaled key is read (reconciled) before it is sent again.
    unsent_writes: set[str] = field(default_factory=set)

    @property
    def state(self) -> OrderState:
        """Where the order stands now."""
        return OrderState(self.folder.state)

    def facts(self) -> OrderFacts:
        """The order's facts, frozen."""
        return self.folder.facts()

    def deadline(self, anchor: str | None, seconds: float, now: datetime) -> datetime:
        """``seconds`` after the journaled time ``anchor`` (now when it is not recorded yet)."""
        return (parse_time(anchor) if anchor else now) + timedelta(seconds=seconds)


@dataclass(slots=True)
class Env:
    """What every step family shares: the store, the market, the rails, the pairing, time and ids."""

    store: OrderStore
    market: MarketPort
    rails: list[Rail]
    pairing: PairingSession
    clock: Callable[[], datetime]
    ids: Callable[[str], str]
    networks: Networks
    observer: DriveObserver
    poll: float
    on_progress: Callable[[ProgressEvent], None] | None = None
    approver: Callable[[OrderSummary], Awaitable[bool]] | None = None
    crash_hook: Callable[[Event], None] | None = None

    def rail(self, rail_type: str, chain: str) -> Rail:
        """The first rail that pays ``rail_type`` on ``chain`` (``UnsupportedRailError`` otherwise)."""
        return rail_for(rail_type, chain, self.rails)

    def observe(self, hook: str, *args: Any, **kwargs: Any) -> None:
        """Call an observer hook; an observer that raises is logged and ignored."""
        try:
            getattr(self.observer, hook)(*args, **kwargs)
        except Exception:
            log.warning("the drive observer failed in %s; ignored", hook, exc_info=True)


class Effects:
    """Journal, market and observer effects for the step families (one per runner)."""

    def __init__(self, env: Env) -> None:
        self.env = env

    @property
    def reads(self) -> Reads:
        """The reconciling reads the steps pass to :meth:`write` (``reconcile=``), over the env's market."""
        return Reads(self.env.market)

    # --- journaling ----------------------------------------------------------------------------

    async def append(
        self,
        run: OrderRun,
        trigger: str,
        dst: str,
        payload: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        *,
        ledger: LedgerChange | None = None,
        pairing_id: str | None = None,
        market_order_id: str | None = None,
    ) -> Event:
        """Append one event at the order's head under its lease; fold it in; tell the watchers."""
        ev = await self.env.store.record(
            run.order_id,
            trigger,
            run.folder.state,
            dst,
            payload,
            context,
            ledger=ledger,
            pairing_id=pairing_id,
            market_order_id=market_order_id,
            lease=run.lease,
        )
        run.folder.apply(ev)
        self.emitted(ev, run.started)
        return ev

    def emitted(self, ev: Event, started: float) -> None:
        """Progress (on a state change), the observer's ``event``, then the crash hook."""
        env = self.env
        if ev.src != ev.dst and env.on_progress is not None:
            env.on_progress(
                ProgressEvent(
                    order_id=ev.order_id,
                    state=OrderState(ev.dst),
                    previous=OrderState(ev.src),
                    elapsed_s=time.monotonic() - started,
                    detail=ev.trigger,
                )
            )
        env.observe("event", ev)
        if env.crash_hook is not None:
            env.crash_hook(ev)

    async def note(
        self,
        run: OrderRun,
        trigger: str,
        payload: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> Event:
        """Journal an effect record (``intent:``, ``result:``, ``note:``; the state stays)."""
        return await self.append(run, trigger, run.folder.state, payload, context)

    async def fire(
        self,
        run: OrderRun,
        trigger: str,
        *,
        payload: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        ledger: LedgerChange | None = None,
        pairing_id: str | None = None,
        market_order_id: str | None = None,
        **data: Any,
    ) -> Event:
        """Fire a machine trigger: the table's guards judge the facts and ``data``, then it is journaled.

        Raises:
            PolicyError: a guard refused (nothing was journaled).
        """
        if trigger not in _KEEP_ERROR:
            # A step that succeeds clears an error recorded by an earlier, stopped attempt.
            context = {"error": None, **(context or {})}
        model, machine = run.model, run.machine
        src = run.folder.state
        if model.state != src:
            machine.set_state(src, model=model)
        model.pending = None
        if not model.trigger(trigger, facts=run.facts(), **data):
            raise PolicyError(f"the guard refused {trigger} from {src}", rule=f"guard:{trigger}")
        assert model.pending is not None
        _, _, dst = model.pending
        try:
            return await self.append(
                run,
                trigger,
                dst,
                payload,
                context,
                ledger=ledger,
                pairing_id=pairing_id,
                market_order_id=market_order_id,
            )
        except BaseException:
            machine.set_state(src, model=model)
            raise

    async def fail(
        self,
        run: OrderRun,
        code: str,
        message: str,
        *,
        payload: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Fail the order with ``code``; a budget still held for it is released in the same write."""
        ledger = await self.release_held(run)
        body = {"code": code, "message": message, **(payload or {})}
        patch = {**(context or {}), "error": {"code": code, "message": message}}
        await self.fire(run, "fail", payload=body, context=patch, ledger=ledger)

    async def release_held(self, run: OrderRun) -> LedgerChange | None:
        """The ledger change that frees the order's committed budget, if it holds one."""
        if run.folder.market_order_id is None:
            return None  # nothing is committed before the market order exists
        entry = await self.env.store.ledger_entry(run.order_id)
        if entry is not None and entry.status is LedgerStatus.COMMITTED:
            return LedgerChange(LedgerStatus.RELEASED)
        return None

    async def stop_with(self, run: OrderRun, code: str, message: str, **payload: Any) -> None:
        """Record an error the order stands on, keep its state, and stop driving it for now."""
        await self.note(
            run,
            "note:error",
            {"code": code, "message": message, **payload},
            {"error": {"code": code, "message": message}},
        )
        raise Stop

    async def key(self, run: OrderRun, effect: str, extra: Mapping[str, Any] | None = None) -> str:
        """The idempotency key of ``effect``: made once, journaled durably with its intent, reused after."""
        known = run.folder.keys.get(effect)
        if known is not None and known.key:
            return known.key
        key = self.env.ids("idem")
        name = EFFECT_KEYS[effect]
        await self.note(
            run,
            f"intent:{effect}",
            {"idempotency_key": key, **(extra or {})},
            {name: key, f"{name}_at": format_at(self.env.clock())},
        )
        run.unsent_writes.add(effect)
        return key

    # --- the market ---------------------------------------------------------------------------

    async def write(
        self,
        run: OrderRun,
        effect: str,
        send: Callable[[Secret, str], Awaitable[T]],
        *,
        deadline: datetime | None,
        extra: Mapping[str, Any] | None = None,
        reconcile: Read[T] | None = None,
        timeout: float | None = None,
    ) -> T:
        """A market write: its intent journaled with a key, then sent with that key and the token.

        When an earlier round or run may have sent it (its key journaled, no answer kept), the
        reconciling read comes first and what the market holds is adopted. A lost answer is
        reconciled the same way; only a read that finds nothing lets the write go out again, until
        ``deadline``.

        Args:
            run: The order.
            effect: The write's name (``create_market_order``, …; a key of ``EFFECT_KEYS`` and of
                ``_reconcile.WRITES``, which says how it is reconciled).
            send: Sends the write given the pairing token and the idempotency key.
            deadline: Until when a write whose answer was lost is sent again (after its read).
            extra: More facts for the intent's payload.
            reconcile: The read its rule names (``_reconcile.Reads``): what the market holds of it.
            timeout: Seconds the sending (reads included) may take in all (``TimeoutError`` after);
                the intent is journaled before the clock starts.

        Raises:
            TimeoutError: ``timeout`` passed before an answer.
            OrchestrationOutcomeUnknown: the answer was lost and ``deadline`` passed, or the write
                has no read and may not be sent again blindly.
        """
        rule = rule_for(effect)
        if rule is not None and rule.repeat is Repeat.READ and reconcile is None:
            raise TypeError(f"the market write {effect} is reconciled by reading: pass its read")
        earlier = run.folder.key(effect) is not None and effect not in run.unsent_writes
        key = await self.key(run, effect, extra)
        sending = self._write(run, effect, lambda token: send(token, key), deadline, reconcile, earlier)
        if timeout is None:
            return await sending
        return await asyncio.wait_for(sending, timeout=max(timeout, 0.0))

    async def _write(
        self,
        run: OrderRun,
        effect: str,
        send: Callable[[Secret], Awaitable[T]],
        deadline: datetime | None,
        reconcile: Read[T] | None,
        earlier: bool,
    ) -> T:
        if earlier and reconcile is not None:
            held = await self.reconcile(run, effect, reconcile, deadline)
            if held is not None:
                return held
        rule = rule_for(effect)
        while True:
            run.unsent_writes.discard(effect)
            try:
                return await self.call(send)
            except OrchestrationOutcomeUnknown as exc:
                if reconcile is not None:
                    held = await self.reconcile(run, effect, reconcile, deadline)
                    if held is not None:
                        return held
                elif rule is None:
                    raise  # a write nobody declared a read for: never sent again blindly
                if deadline is None or self.env.clock() >= deadline:
                    raise
                report_wait(
                    "an answer the market may have lost",
                    because=f"{exc}; nothing of it is held, sending it again until {format_at(deadline)}",
                    every_s=EVERY_S,
                )
                await asyncio.sleep(self.env.poll)
            except OrchestrationError:
                # An answer (a refusal, a 429) or no connection at all: the market did not apply it.
                run.unsent_writes.add(effect)
                raise

    async def reconcile(
        self, run: OrderRun, effect: str, read: Read[T], deadline: datetime | None = None
    ) -> T | None:
        """Ask the market whether ``effect`` happened; journal what it showed; its answer, or None.

        A write the market shows under way (``pending``) is read again until ``deadline``, never
        sent again. None means the market holds nothing of it: the write may go out again.

        Raises:
            OrchestrationOutcomeUnknown: the read itself failed for good (the write is never sent
                blindly; the order keeps its state and a resume reads again), or the write is still
                under way at ``deadline``.
        """
        rule = rule_for(effect)
        said_pending = False
        while True:
            try:
                reading: Reading[T] = await self.call(read)
            except OrchestrationApiError as exc:
                if exc.retryable:
                    raise
                raise OrchestrationOutcomeUnknown(
                    f"{effect}: the answer was lost and the read that tells whether it happened failed: "
                    f"{exc}; nothing is sent again until it can be read"
                ) from exc
            if not (reading.pending and said_pending):  # a wait is journaled once, not every poll
                await self.note(
                    run,
                    NOTE_RECONCILED,
                    {
                        "effect": effect,
                        "read": rule.read if rule is not None else None,
                        "outcome": reading.outcome,
                        **reading.seen,
                    },
                )
            if not reading.pending:
                if reading.answer is None:
                    run.unsent_writes.add(effect)
                return reading.answer
            said_pending = True
            if deadline is not None and self.env.clock() >= deadline:
                raise OrchestrationOutcomeUnknown(
                    f"{effect}: the market still shows it under way at {format_at(deadline)}"
                )
            report_wait(
                f"the market to finish {effect}",
                because=f"its answer was lost; the market shows it under way ({dict(reading.seen)})",
                every_s=EVERY_S,
            )
            await asyncio.sleep(self.env.poll)

    async def call(self, fn: Callable[[Secret], Awaitable[T]]) -> T:
        """A market call with the pairing token; a rejected token is refreshed and the call made once more."""
        pairing, refreshed = self.env.pairing, False
        while True:
            token = await pairing.token()
            try:
                return await fn(token)
            except OrchestrationApiError as exc:
                if exc.code in AUTH_REJECTED and not refreshed:
                    refreshed = True
                    await pairing.refresh(exc.code, token)
                    continue
                raise

    # --- the observer -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def sub_step(self, run: OrderRun, step: str) -> AsyncIterator[None]:
        """``step_started`` / ``step_finished`` around a part of a step (``broadcast``, ``prove``, …)."""
        env = self.env
        env.observe("step_started", run.order_id, step, run.folder.state)
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = None if isinstance(exc, Stop) else exc  # a stop is recorded, not an error here
            raise
        finally:
            env.observe("step_finished", run.order_id, step, run.folder.state, error=error)


def tx_json(txs: Sequence[Any]) -> list[dict[str, Any]]:
    """Signed transactions as the journal keeps them."""
    return [t.to_json() for t in txs]
