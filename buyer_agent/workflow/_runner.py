"""The runner: drives orders through the machine against the market and the rails, exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from transitions import Machine

from buyer_agent._errors import (
    BuyerAgentError,
    OrchestrationApiError,
    OrchestrationOutcomeUnknown,
    PaymentMismatchError,
    PolicyError,
    StateError,
)
from buyer_agent._money import Money
from buyer_agent._redact import Secret
from buyer_agent._waits import EVERY_S, report_wait
from buyer_agent.journal import (
    Event,
    Journal,
    LedgerChange,
    LedgerStatus,
    OrderRecord,
    lease_owner_id,
    utc_now,
)
from buyer_agent.journal._canonical import format_at
from buyer_agent.networks import Networks, builtin_networks, check_token
from buyer_agent.rails._base import PaymentRequest, Rail, SignedTx, TxStatus
from buyer_agent.rails._preflight import check_rails_can_pay
from buyer_agent.rails._registry import rail_for
from buyer_agent.workflow._acceptance import check_acceptance
from buyer_agent.workflow._crashpoint import crash_hook_from_env
from buyer_agent.workflow._evidence import dispute_evidence
from buyer_agent.workflow._machine import build_machine
from buyer_agent.workflow._model import OrderModel
from buyer_agent.workflow._pairing import AUTH_REJECTED, DelegationPolicyLimits, PairingSession
from buyer_agent.workflow._payment_facts import (
    check_intent,
    intent_facts,
    intent_rail_type,
    limits_json,
    policy_from_json,
    request_from_json,
    request_json,
)
from buyer_agent.workflow._quotes import facts_price, field_of, money_text, parse_time, quote_facts
from buyer_agent.workflow._selection import make_limits, select_quote, single_candidate
from buyer_agent.workflow._spec import OrderSpec
from buyer_agent.workflow._states import TERMINAL, OrderState
from buyer_agent.workflow._summary import OrderSummary, ProgressEvent

__all__ = ["Runner", "new_id"]

log = logging.getLogger(__name__)
S = OrderState

_ESCROW_RAILS = frozenset({"onchain-escrow", "escrow"})
# Rounds a step is repeated after transient faults (5xx, 429, lost answers) beyond the client's retries.
_TRANSIENT_ROUNDS = 4
_BEFORE_MONEY = frozenset({S.CREATED, S.PAIRED, S.SEARCHED, S.QUOTED, S.AWAITING_APPROVAL, S.ORDERED})
# Which step action runs from which states (for callers that drive orders themselves).
_ACTIONS: dict[str, frozenset[OrderState]] = {
    "pair": frozenset({S.CREATED}),
    "search": frozenset({S.PAIRED, S.QUOTED}),
    "choose": frozenset({S.SEARCHED}),
    "order": frozenset({S.QUOTED}),
    "approve": frozenset({S.AWAITING_APPROVAL}),
    "pay": frozenset({S.ORDERED, S.PAYING}),
    "execute": frozenset({S.PAID, S.ESCROW_LOCKED}),
    "confirm": frozenset({S.EXECUTED}),
    "dispute": frozenset({S.EXECUTED, S.PAID, S.ESCROW_LOCKED}),
    "refund": frozenset({S.DISPUTED}),
    "cancel": frozenset({S.CREATED, S.PAIRED, S.SEARCHED, S.QUOTED, S.AWAITING_APPROVAL}),
    # A person's decisions, never offered among the next steps (``cancel ORDER_ID [--abandon]``):
    # cancel an order placed but not paid; close as failed one whose market died with its process.
    "withdraw": frozenset({S.ORDERED}),
    "abandon": frozenset({S.ORDERED, S.PAYING, S.PAID, S.ESCROW_LOCKED, S.EXECUTED}),
}
_HIDDEN_ACTIONS = frozenset({"withdraw", "abandon"})


def new_id(prefix: str) -> str:
    """A fresh random id: ``<prefix>_<32 hex>``."""
    return f"{prefix}_{uuid.uuid4().hex}"


class MarketPort(Protocol):
    """The market calls the runner makes (``AsyncMarketClient`` has them, SDK names and order)."""

    async def search_market(self, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST /market/search."""
        ...

    async def create_market_order(self, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST /market/orders."""
        ...

    async def get_market_order(self, order_id: str, **kw: Any) -> Any:
        """GET /market/orders/:id."""
        ...

    async def create_payment_intent(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment-intent."""
        ...

    async def get_market_payment(self, order_id: str, **kw: Any) -> Any:
        """GET …/payment."""
        ...

    async def submit_payment_proof(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment-proof."""
        ...

    async def lock_escrow_payment(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment/escrow-lock."""
        ...

    async def release_payment(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment/release."""
        ...

    async def execute_market_order(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/execute."""
        ...

    async def confirm_market_order(self, order_id: str, pairing_token: Any, **kw: Any) -> Any:
        """POST …/confirm."""
        ...

    async def dispute_market_order(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/dispute."""
        ...


class _Stop(Exception):
    """Stop driving for now (waiting, or an error recorded); the order keeps its state."""


def _item(resp: Any) -> Any:
    return getattr(resp, "item", resp)


class Runner:
    """Drives orders through the state machine against a market client and payment rails.

    One trigger at a time per order (an asyncio lock per order, plus a lease in the journal so two
    processes never drive one order); many orders run concurrently in one event loop. Every side
    effect is journaled as an intent (with its idempotency key) before it runs and as a result
    after; a signed transaction is journaled before it is broadcast, so a resumed order asks the
    market or the chain what already happened and never signs a second payment.

    Args:
        market: The market client (``AsyncMarketClient``).
        journal: Where orders live.
        rails: The payment rails the buyer can pay with.
        pairing: The agent's pairing session.
        clock: The time source (deadlines, quote freshness, journal times).
        ids: Makes ids (``ids("ord")``) and idempotency keys.
        on_progress: Called on every state change.
        approver: Asked when a price is above the order's approval threshold; without one the order
            waits in ``awaiting_approval`` for :meth:`step` ``"approve"``.
        crash_hook: Called right after every journaled event (tests stop the runner there);
            defaults to ``$BUYER_AGENT_CRASH_AFTER``.
        poll_interval: Seconds between polls while waiting for a refund.
        networks: The network profiles whose tokens a payment must be in (``check_token``, before
            signing); defaults to the built-in ones.
    """

    def __init__(
        self,
        *,
        market: MarketPort,
        journal: Journal,
        rails: Sequence[Rail],
        pairing: PairingSession,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[str], str] = new_id,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        approver: Callable[[OrderSummary], Awaitable[bool]] | None = None,
        crash_hook: Callable[[Event], None] | None = None,
        poll_interval: float = 0.1,
        networks: Networks | None = None,
    ) -> None:
        self._market = market
        self._networks = networks if networks is not None else builtin_networks()
        self._journal = journal
        self._rails = list(rails)
        self._pairing = pairing
        self._clock = clock
        self._ids = ids
        self._on_progress = on_progress
        self._approver = approver
        self._crash_hook = crash_hook if crash_hook is not None else crash_hook_from_env()
        self._poll = poll_interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._owner = lease_owner_id(uuid.uuid4().hex[:12])
        self._started: dict[str, float] = {}
        self._transient: dict[str, int] = {}
        # While an order is driven: its machine (built once, not per trigger) and when its lease is
        # due for renewal (halfway through its time to live, by the journal's clock).
        self._machines: dict[str, tuple[OrderModel, Machine]] = {}
        self._renew_at: dict[str, datetime] = {}

    @property
    def journal(self) -> Journal:
        """The journal orders are kept in."""
        return self._journal

    # --- public API -----------------------------------------------------------------------------

    async def submit(self, spec: OrderSpec) -> str:
        """Journal a new order in ``created``; return its id."""
        order_id = self._ids("ord")
        machine_id = spec.machine_id or self._pairing.machine_id
        ev = self._journal.create_order(
            order_id, spec.to_json(), context={"machine_id": machine_id}, payload={"spec": spec.to_json()}
        )
        self._emitted(ev)
        return order_id

    async def buy(self, spec: OrderSpec) -> OrderSummary:
        """Submit and drive one order to a terminal state (or ``awaiting_approval``)."""
        return await self.drive(await self.submit(spec))

    async def drive(self, order_id: str) -> OrderSummary:
        """Drive an order until it is terminal, waits for approval, or must stop (error recorded).

        Raises:
            StateError: another process holds the order's lease.
        """
        async with self._lease(order_id):
            while True:
                rec = self._journal.order(order_id)
                state = S(rec.state)
                if state in TERMINAL:
                    break
                if state is S.AWAITING_APPROVAL and self._approver is None:
                    break
                if not await self._advance(rec):
                    break
        return self.summary(order_id)

    async def step(self, order_id: str, action: str, **kwargs: Any) -> OrderSummary:
        """Run one step and return the order's summary.

        Actions: ``pair``, ``search``, ``choose``, ``order``, ``approve``, ``pay``, ``execute``,
        ``confirm``, ``dispute``, ``refund``, ``cancel``. ``choose`` takes ``quote_id=`` to pick that
        eligible quote instead of the strategy's; ``dispute`` takes ``reason=``.

        Raises:
            StateError: the step is not allowed in the order's state (``allowed`` lists those that are).
        """
        async with self._lease(order_id):
            rec = self._journal.order(order_id)
            state = S(rec.state)
            if action not in _ACTIONS or state not in _ACTIONS[action]:
                raise StateError(
                    f"cannot {action} an order in state {state.value}",
                    state=state.value,
                    allowed=self._allowed(state),
                )
            await self._run_step(rec, action, kwargs)
        return self.summary(order_id)

    def allowed_actions(self, order_id: str) -> list[str]:
        """The step actions the order's current state allows."""
        return self._allowed(S(self._journal.order(order_id).state))

    def preview(self, order_id: str, quote_id: str | None = None) -> dict[str, Any]:
        """What ``choose`` would decide now, without journaling: every quote with its eligibility.

        Returns ``{"candidates": [...], "ranking": [quote ids], "recommended": quote id or None,
        "reason": str}``; candidates as in :class:`OrderSummary`.

        Raises:
            PolicyError: ``quote_id`` names no eligible quote.
        """
        rec = self._journal.order(order_id)
        spec = self._spec(rec)
        limits, _ = self._limits_for(rec)
        sel = select_quote(
            rec.context.get("quotes") or [],
            spec,
            limits,
            now=self._clock(),
            can_pay=self._can_pay(spec),
            quote_id=quote_id,
        )
        return {
            "candidates": sel.candidates,
            "ranking": sel.ranking,
            "recommended": sel.choice["quote_id"] if sel.choice else None,
            "reason": sel.reason,
        }

    async def resume(self, order_id: str | None = None) -> list[OrderSummary]:
        """Drive on every non-terminal order (or just ``order_id``), concurrently."""
        if order_id is not None:
            return [await self.drive(order_id)]
        open_states = [s.value for s in OrderState if s not in TERMINAL]
        ids = [o.order_id for o in self._journal.orders(open_states)]
        return list(await asyncio.gather(*(self._drive_or_skip(i) for i in ids)))

    async def _drive_or_skip(self, order_id: str) -> OrderSummary:
        try:
            return await self.drive(order_id)
        except StateError:
            # Another live process drives it; report where it stands.
            return self.summary(order_id)

    def summary(self, order_id: str) -> OrderSummary:
        """The order's summary from the journal."""
        rec = self._journal.order(order_id)
        ctx = rec.context
        choice = ctx.get("choice")
        quote = None
        if choice:
            price = facts_price(choice)
            quote = {
                "service_id": choice.get("service_id"),
                "quote_id": choice.get("quote_id"),
                "price": {"amount": money_text(price), "currency": price.currency} if price else None,
            }
        payment = None
        request = ctx.get("request")
        if request:
            amount = Money.from_json(dict(request["amount"]))
            payment = {
                "rail": request.get("rail_type"),
                "chain": request.get("chain"),
                "amount": money_text(amount),
                "currency": amount.currency,
                "tx": ctx.get("paid_tx") or _last_tx_id(ctx.get("txs")),
                # What the market made of it: its payment status after our last call, and how it
                # checked the proof (``rpc``: against the chain).
                "status": ctx.get("payment_status"),
                "verification": _verification(ctx.get("proof")),
            }
        return OrderSummary(
            order_id=rec.order_id,
            state=S(rec.state),
            market_order_id=rec.market_order_id,
            quote=quote,
            candidates=tuple(ctx.get("candidates") or ()),
            payment=payment,
            outcome=ctx.get("outcome"),
            error=ctx.get("error"),
            journal=str(self._journal.path) if self._journal.path else ":memory:",
            updated_at=rec.updated_at,
        )

    # --- driving ---------------------------------------------------------------------------------

    def _allowed(self, state: OrderState) -> list[str]:
        return [a for a, states in _ACTIONS.items() if state in states and a not in _HIDDEN_ACTIONS]

    class _LeaseCtx:
        def __init__(self, runner: Runner, order_id: str) -> None:
            self.runner, self.order_id = runner, order_id
            self.lock = runner._locks.setdefault(order_id, asyncio.Lock())

        async def __aenter__(self) -> None:
            await self.lock.acquire()
            try:
                rec = self.runner._journal.order(self.order_id)
                if not self.runner._renew_lease(rec):
                    raise StateError(
                        f"order {self.order_id} is being driven by another process ({rec.lease_owner})",
                        state=rec.state,
                        allowed=[],
                    )
                self.runner._started.setdefault(self.order_id, time.monotonic())
            except BaseException:
                self.lock.release()
                raise

        async def __aexit__(self, *exc: object) -> None:
            try:
                self.runner._renew_at.pop(self.order_id, None)
                self.runner._machines.pop(self.order_id, None)
                self.runner._journal.release_lease(self.order_id, self.runner._owner)
            finally:
                self.lock.release()

    def _lease(self, order_id: str) -> Runner._LeaseCtx:
        return Runner._LeaseCtx(self, order_id)

    def _renew_lease(self, rec: OrderRecord) -> bool:
        """Take or renew the order's lease; True when this runner holds it."""
        ttl = self._ttl(rec)
        if not self._journal.acquire_lease(rec.order_id, self._owner, ttl):
            return False
        self._renew_at[rec.order_id] = self._clock() + timedelta(seconds=ttl / 2)
        return True

    def _ttl(self, rec: OrderRecord) -> float:
        d = OrderSpec.from_json(rec.spec).deadlines if rec.spec else None
        longest = max(d.quote, d.order, d.payment, d.execution, d.refund) if d else 120.0
        return longest + 60.0

    async def _advance(self, rec: OrderRecord) -> bool:
        """One step from the order's state; False when driving must stop for now."""
        state = S(rec.state)
        renew_at = self._renew_at.get(rec.order_id)
        if renew_at is None or self._clock() >= renew_at:
            self._renew_lease(rec)
        try:
            if state is S.CREATED:
                await self._pair(rec)
            elif state is S.PAIRED:
                await self._search(rec)
            elif state is S.SEARCHED:
                await self._choose(rec, None)
            elif state is S.QUOTED:
                await self._order(rec)
            elif state is S.AWAITING_APPROVAL:
                await self._ask_approval(rec)
            elif state is S.ORDERED:
                await self._pay(rec)
            elif state is S.PAYING:
                await self._settle(rec)
            elif state in (S.PAID, S.ESCROW_LOCKED):
                await self._after_payment(rec)
            elif state is S.EXECUTED:
                await self._accept(rec)
            elif state is S.DISPUTED:
                await self._await_refund(rec)
            self._transient.pop(rec.order_id, None)
            return True
        except _Stop:
            return False
        except Exception as exc:
            wait = self._transient_wait(rec.order_id, exc)
            if wait is not None:
                # A transient market fault outlived the client's own retries: wait, then try the
                # step again (every step is safe to repeat) instead of stopping the order.
                report_wait(
                    f"order {rec.order_id} to leave {state.value}",
                    attempt=self._transient[rec.order_id] + 1,
                    of=_TRANSIENT_ROUNDS + 1,
                    next_in_s=wait,
                    because=str(exc),
                )
                await asyncio.sleep(wait)
                return True
            return self._on_error(self._journal.order(rec.order_id), exc)

    def _transient_wait(self, order_id: str, exc: Exception) -> float | None:
        """Seconds to wait before repeating a step that failed transiently; None once out of rounds."""
        if not (isinstance(exc, BuyerAgentError) and exc.retryable):
            return None
        rounds = self._transient.get(order_id, 0)
        if rounds >= _TRANSIENT_ROUNDS:
            return None
        self._transient[order_id] = rounds + 1
        return float(min(4.0, 0.5 * 2**rounds))

    async def _run_step(self, rec: OrderRecord, action: str, kwargs: Mapping[str, Any]) -> None:
        try:
            if action == "choose":
                await self._choose(rec, kwargs.get("quote_id"))
            elif action == "approve":
                self._fire(rec, "approve", payload={"by": "caller"}, context={"approved": True})
            elif action in ("cancel", "withdraw"):
                entry = self._journal.ledger_entry(rec.order_id)
                held = entry is not None and entry.status is LedgerStatus.COMMITTED
                self._fire(
                    rec,
                    "cancel",
                    payload={"reason": kwargs.get("reason", "cancelled by caller")},
                    ledger=LedgerChange(LedgerStatus.RELEASED) if held else None,
                )
            elif action == "abandon":
                reason = str(kwargs.get("reason") or "its market died with its process")
                self._fail(rec, "ORDER_ABANDONED", reason, payload={"abandoned": True})
            elif action == "dispute":
                await self._dispute(rec, str(kwargs.get("reason") or "disputed by caller"))
            elif action == "search":
                await self._search(rec)
            else:
                # Steps that take several journaled moves run while the order is still in a state
                # the action covers (pay: ordered and paying; execute: paid and escrow_locked).
                covers = _ACTIONS[action]
                if action == "order" and self._approver is not None:
                    # A price held for approval asks the approver, then goes on ordering.
                    covers = covers | {S.AWAITING_APPROVAL}
                while True:
                    rec = self._journal.order(rec.order_id)
                    state = S(rec.state)
                    if state not in covers or state in TERMINAL:
                        break
                    if not await self._advance(rec):
                        break
        except _Stop:
            pass

    def _on_error(self, rec: OrderRecord, exc: Exception) -> bool:
        """Record an error: fail orders that never moved money; otherwise stop and keep the state."""
        state = S(rec.state)
        code = getattr(exc, "code", None) or type(exc).__name__
        final = isinstance(exc, BuyerAgentError) and not exc.retryable
        if isinstance(exc, BuyerAgentError) and state in _BEFORE_MONEY and final:
            self._fail(rec, str(code), str(exc))
            return True
        if not isinstance(exc, BuyerAgentError):
            log.exception("unexpected error driving order %s", rec.order_id)
        self._note(rec, "note:error", {"code": code, "message": str(exc)}, {"error": _error(code, exc)})
        return False

    # --- journaling helpers ---------------------------------------------------------------------

    def _emitted(self, ev: Event) -> None:
        if ev.src != ev.dst and self._on_progress is not None:
            started = self._started.get(ev.order_id, time.monotonic())
            self._on_progress(
                ProgressEvent(
                    order_id=ev.order_id,
                    state=S(ev.dst),
                    previous=S(ev.src),
                    elapsed_s=time.monotonic() - started,
                    detail=ev.trigger,
                )
            )
        if self._crash_hook is not None:
            self._crash_hook(ev)

    def _note(
        self,
        rec: OrderRecord,
        trigger: str,
        payload: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> OrderRecord:
        """Journal an effect record (``src == dst``) and return the refreshed order row."""
        ev = self._journal.record(rec.order_id, trigger, rec.state, rec.state, payload, context)
        self._emitted(ev)
        return self._journal.order(rec.order_id)

    def _fire(self, rec: OrderRecord, trigger: str, **kwargs: Any) -> bool:
        """Fire a machine trigger (guards read ``kwargs``); the model journals it."""
        if trigger not in ("fail", "dispute", "refund", "cancel"):
            # A step that succeeds clears an error recorded by an earlier, stopped attempt.
            kwargs["context"] = {"error": None, **(kwargs.get("context") or {})}
        entry = self._machines.get(rec.order_id)
        if entry is None:
            model = OrderModel(self._journal, rec.order_id)
            entry = (model, build_machine(model, rec.state))
            if rec.order_id in self._renew_at:  # kept only while the order is driven under its lease
                self._machines[rec.order_id] = entry
        model, machine = entry
        if model.state != rec.state:
            machine.set_state(rec.state)
        model.last_event = None
        if not model.trigger(trigger, **kwargs):
            raise PolicyError(f"the guard refused {trigger} from {rec.state}", rule=f"guard:{trigger}")
        if model.last_event is not None:
            self._emitted(model.last_event)
        return True

    def _fail(
        self,
        rec: OrderRecord,
        code: str,
        message: str,
        *,
        payload: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        entry = self._journal.ledger_entry(rec.order_id)
        ledger = None
        if entry is not None and entry.status is LedgerStatus.COMMITTED:
            ledger = LedgerChange(LedgerStatus.RELEASED)
        body = {"code": code, "message": message, **(payload or {})}
        patch = {**(context or {}), "error": {"code": code, "message": message}}
        self._fire(rec, "fail", payload=body, context=patch, ledger=ledger)

    def _key(
        self, rec: OrderRecord, name: str, effect: str, extra: Mapping[str, Any] | None = None
    ) -> tuple[OrderRecord, str]:
        """The idempotency key of an effect: made once, journaled with its intent, reused after."""
        key = rec.context.get(name)
        if key:
            return rec, str(key)
        key = self._ids("idem")
        rec = self._note(
            rec,
            f"intent:{effect}",
            {"idempotency_key": key, **(extra or {})},
            {name: key, f"{name}_at": format_at(self._clock())},
        )
        return rec, key

    async def _call(self, fn: Callable[[Secret], Awaitable[Any]], *, deadline: datetime | None = None) -> Any:
        """A market call with the pairing token.

        A rejected token is refreshed and the call retried once; a write whose outcome is unknown is
        repeated (same idempotency key) until ``deadline``.
        """
        refreshed = False
        while True:
            token = await self._pairing.token()
            try:
                return await fn(token)
            except OrchestrationApiError as exc:
                if exc.code in AUTH_REJECTED and not refreshed:
                    refreshed = True
                    await self._pairing.refresh(exc.code, token)
                    continue
                raise
            except OrchestrationOutcomeUnknown as exc:
                if deadline is None or self._clock() >= deadline:
                    raise
                report_wait(
                    "an answer the market may have lost",
                    because=f"{exc}; repeating until {format_at(deadline)}",
                    every_s=EVERY_S,
                )
                await asyncio.sleep(self._poll)

    def _spec(self, rec: OrderRecord) -> OrderSpec:
        return OrderSpec.from_json(rec.spec)

    def _deadline(self, rec: OrderRecord, anchor: str, seconds: float) -> datetime:
        start = rec.context.get(anchor)
        return (parse_time(start) if start else self._clock()) + timedelta(seconds=seconds)

    # --- steps ------------------------------------------------------------------------------------

    async def _pair(self, rec: OrderRecord) -> None:
        # Before the market hears of the order: a chain or rail type no rail here pays is refused now.
        spec = self._spec(rec)
        await check_rails_can_pay(self._rails, spec.rail, spec.chain)
        await self._pairing.token()
        policy = self._pairing.policy()
        pairing_id = self._pairing.pairing_id
        self._fire(
            rec,
            "pair",
            payload={"pairing_id": pairing_id, "policy": policy.to_json() if policy else None},
            context={"pairing_id": pairing_id, "policy": policy.to_json() if policy else None},
            pairing_id=pairing_id,
        )

    async def _search(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        ctx = rec.context
        now = self._clock()
        window = ctx.get("quote_window_start")
        if window and now > parse_time(window) + timedelta(seconds=spec.deadlines.quote):
            self._fail(rec, "QUOTE_DEADLINE", "no quote could be ordered within the quote deadline")
            return
        rec, key = self._key(rec, "search_key", "search_market")
        params: dict[str, Any] = {
            "machine_id": ctx.get("machine_id"),
            "agent_pairing_id": ctx.get("pairing_id") or self._pairing.pairing_id,
            "service_type": spec.service_type,
            "operation": spec.operation,
            "region": spec.region,
            "required_capabilities": list(spec.capabilities) or None,
            "allow_external_handoff": spec.allow_handoff,
            "budget": {"max": spec.budget.to_decimal(), "currency": spec.budget.currency},
        }
        params = {k: v for k, v in params.items() if v is not None}
        resp = await self._call(
            lambda t: self._market.search_market(params, t, options={"idempotency_key": key}),
            deadline=now + timedelta(seconds=spec.deadlines.quote),
        )
        search = _item(resp)
        quotes = [quote_facts(q) for q in (field_of(search, "quotes") or ())]
        search_id = str(field_of(search, "id"))
        self._fire(
            rec,
            "search",
            payload={"search_id": search_id, "status": field_of(search, "status"), "quotes": quotes},
            context={
                "search_id": search_id,
                "quotes": quotes,
                "search_key": None,
                "quote_window_start": window or format_at(now),
                "tried": [],
                "choice": None,
                "ranking": None,
                "order_key": None,
            },
        )

    def _limits_for(self, rec: OrderRecord) -> tuple[Any, DelegationPolicyLimits | None]:
        spec = self._spec(rec)
        policy = self._pairing.policy()
        if policy is None and rec.context.get("policy"):
            policy = policy_from_json(rec.context["policy"])
        pairing_id = rec.pairing_id or rec.context.get("pairing_id") or ""
        budget = spec.budget
        spent = self._journal.spent_today(pairing_id, budget.currency, budget.decimals)
        own = self._journal.ledger_entry(rec.order_id)
        today = self._clock().date().isoformat()
        if (
            own is not None
            and own.status is not LedgerStatus.RELEASED
            and own.day == today
            and (own.amount.currency, own.amount.decimals) == (budget.currency, budget.decimals)
        ):
            spent = spent - own.amount
        limits = make_limits(
            order_budget=budget,
            per_transaction_limit=policy.per_transaction_limit if policy else None,
            daily_limit=policy.daily_spend_limit if policy else None,
            spent_today=spent,
            allowed_service_ids=policy.allowed_service_ids if policy else frozenset(),
            denied_service_ids=policy.denied_service_ids if policy else frozenset(),
            allowed_skill_keys=policy.allowed_skill_keys if policy else frozenset(),
            denied_skill_keys=policy.denied_skill_keys if policy else frozenset(),
        )
        return limits, policy

    def _can_pay(self, spec: OrderSpec) -> Callable[[str, str | None], bool]:
        def can_pay(rail_type: str, chain: str | None) -> bool:
            if chain is None or not rail_type:
                return False
            if spec.rail is not None and rail_type != spec.rail:
                return False
            if spec.chain is not None and not _chain_matches(spec.chain, chain):
                return False
            return any(r.supports(rail_type, chain) for r in self._rails)

        return can_pay

    async def _choose(self, rec: OrderRecord, quote_id: str | None) -> None:
        spec = self._spec(rec)
        limits, _ = self._limits_for(rec)
        now = self._clock()
        sel = select_quote(
            rec.context.get("quotes") or [],
            spec,
            limits,
            now=now,
            can_pay=self._can_pay(spec),
            quote_id=quote_id,
        )
        limits_doc = limits_json(limits)
        if sel.choice is None:
            reasons = _why_not(sel.candidates)
            self._fail(
                rec,
                "NO_ELIGIBLE_QUOTE",
                f"{sel.reason}" + (f" ({reasons})" if reasons else ""),
                payload={"candidates": sel.candidates, "limits": limits_doc},
                context={"candidates": sel.candidates, "limits": limits_doc},
            )
            return
        choice = sel.choice
        self._fire(
            rec,
            "choose",
            choice=choice,
            expires_at=parse_time(choice["expires_at"]),
            now=now,
            eligible=True,
            payload={
                "quotes": rec.context.get("quotes") or [],
                "candidates": sel.candidates,
                "decision": {"quote_id": choice["quote_id"], "reason": sel.reason, "ranking": sel.ranking},
                "limits": limits_doc,
                "strategy": spec.strategy,
                "now": format_at(now),
            },
            context={
                "choice": choice,
                "candidates": sel.candidates,
                "ranking": sel.ranking,
                "decision_reason": sel.reason,
                "limits": limits_doc,
            },
        )

    async def _ask_approval(self, rec: OrderRecord) -> None:
        assert self._approver is not None
        approved = await self._approver(self.summary(rec.order_id))
        if approved:
            self._fire(rec, "approve", payload={"by": "approver"}, context={"approved": True})
        else:
            self._fire(rec, "cancel", payload={"reason": "the approver declined"})

    def _next_fallback(self, rec: OrderRecord, tried: list[str]) -> dict[str, Any] | None:
        quotes = {q["quote_id"]: q for q in rec.context.get("quotes") or []}
        spec = self._spec(rec)
        limits, _ = self._limits_for(rec)
        now = self._clock()
        for qid in rec.context.get("ranking") or []:
            if qid in tried or qid not in quotes:
                continue
            if single_candidate(quotes[qid], spec, limits, now=now, can_pay=self._can_pay(spec))[0]:
                return dict(quotes[qid])
        return None

    async def _order(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        ctx = rec.context
        choice = ctx["choice"]
        price = facts_price(choice)
        assert price is not None
        threshold = spec.approval_threshold
        if threshold is not None and price > threshold and not ctx.get("approved"):
            self._fire(
                rec,
                "hold",
                over_threshold=True,
                payload={"price": price, "threshold": threshold},
            )
            return
        now = self._clock()
        expires_at = parse_time(choice["expires_at"])
        if expires_at <= now and not ctx.get("order_key"):
            rec = self._note(rec, "note:quote_expired", {"quote_id": choice["quote_id"]})
            await self._search(rec)
            return
        limits, _ = self._limits_for(rec)
        eligible, reasons = single_candidate(choice, spec, limits, now=now, can_pay=self._can_pay(spec))
        if not eligible and not ctx.get("order_key"):
            await self._fallback(rec, choice["quote_id"], "; ".join(reasons))
            return
        rec, key = self._key(rec, "order_key", "create_market_order", {"quote_id": choice["quote_id"]})
        params = {
            "machine_id": ctx.get("machine_id"),
            "agent_pairing_id": ctx.get("pairing_id") or self._pairing.pairing_id,
            "service_id": choice["service_id"],
            "search_id": ctx.get("search_id"),
            "quote_id": choice["quote_id"],
            "operation": spec.operation,
            "input_payload": dict(spec.input),
            "budget": {"max": spec.budget.to_decimal(), "currency": spec.budget.currency},
        }
        params = {k: v for k, v in params.items() if v is not None}
        try:
            resp = await self._call(
                lambda t: self._market.create_market_order(params, t, options={"idempotency_key": key}),
                deadline=now + timedelta(seconds=spec.deadlines.order),
            )
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            rec = self._note(
                rec,
                "result:create_market_order",
                {"idempotency_key": key, "error": {"code": exc.code, "message": exc.message}},
                {"order_key": None},
            )
            if exc.code == "QUOTE_EXPIRED":
                await self._search(rec)
            else:
                await self._fallback(rec, choice["quote_id"], f"{exc.code}: {exc.message}")
            return
        order = _item(resp)
        market_order_id = str(field_of(order, "id"))
        # Freshness is judged when the order was asked for (a resumed run may come back later).
        asked_at = rec.context.get("order_key_at")
        asked = parse_time(asked_at) if asked_at else now
        pairing_id = rec.pairing_id or ctx.get("pairing_id") or ""
        self._fire(
            rec,
            "order",
            expires_at=expires_at,
            now=asked,
            eligible=True,
            approved=True,
            payload={
                "market_order_id": market_order_id,
                "status": field_of(order, "status"),
                "idempotency_key": key,
            },
            context={"market_order_id": market_order_id, "market_order_status": field_of(order, "status")},
            market_order_id=market_order_id,
            ledger=LedgerChange(LedgerStatus.COMMITTED, pairing_id, price),
        )

    async def _fallback(self, rec: OrderRecord, failed_quote: str, why: str) -> None:
        tried = [*(rec.context.get("tried") or []), failed_quote]
        nxt = self._next_fallback(rec, tried)
        if nxt is None:
            self._fail(rec, "ORDER_REJECTED", f"no quote could be ordered; last: {failed_quote}: {why}")
            return
        self._note(
            rec,
            "note:fallback",
            {"rejected": failed_quote, "reason": why, "next": nxt["quote_id"]},
            {"tried": tried, "choice": nxt, "order_key": None},
        )

    # --- payment ------------------------------------------------------------------------------

    def _rail(self, rail_type: str, chain: str) -> Rail:
        return rail_for(rail_type, chain, self._rails)

    async def _pay(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        ctx = rec.context
        choice = ctx["choice"]
        price = facts_price(choice)
        assert price is not None
        rail_type, chain = str(choice["rail"]), str(choice["chain"])
        rail = self._rail(rail_type, chain)
        market_order_id = str(ctx["market_order_id"])
        payer = getattr(rail, "address", None)
        if not ctx.get("intent"):
            rec, key = self._key(rec, "intent_key", "create_payment_intent")
            rail_opts = {"type": intent_rail_type(rail_type, choice.get("supported_rails")), "chain": chain}
            if payer:
                rail_opts["payer_address"] = str(payer)
            resp = await self._call(
                lambda t: self._market.create_payment_intent(
                    market_order_id, {"rail": rail_opts}, t, options={"idempotency_key": key}
                ),
                deadline=self._clock() + timedelta(seconds=spec.deadlines.order),
            )
            intent = intent_facts(_item(resp))
            rec = self._note(rec, "result:create_payment_intent", {"intent": intent}, {"intent": intent})
        intent = rec.context["intent"]
        refusal = check_token(intent, choice, price, spec.tokens, self._networks)
        if refusal is not None:
            self._fail(rec, refusal.code, refusal.message, payload=refusal.payload)
            return
        mismatch = check_intent(intent, choice, price)
        if mismatch is not None:
            self._fail(
                rec,
                "PAYMENT_MISMATCH",
                str(mismatch),
                payload={
                    "field": mismatch.field,
                    "expected": str(mismatch.expected),
                    "actual": str(mismatch.actual),
                },
            )
            return
        irail = intent.get("rail") or {}
        request = PaymentRequest(
            order_id=market_order_id,
            rail_type=rail_type,
            chain=chain,
            token=str(
                irail.get("token_address")
                or irail.get("token_mint")
                or choice.get("token_address")
                or choice.get("token_mint")
            ),
            payer=str(payer or irail.get("payer_address")),
            payee=str(irail.get("payee_address") or irail.get("wallet_address") or choice.get("payee")),
            amount=price,
            escrow_address=irail.get("escrow_address") if rail_type in _ESCROW_RAILS else None,
            fee_cap_wei=spec.fee_cap_wei,
        )
        # The balances first: a payment the wallet cannot cover fails here, before any signature.
        check_funds = getattr(rail, "check_funds", None)
        if check_funds is not None:
            await check_funds(request)
        txs = await rail.prepare(request)
        req_json = request_json(request)
        self._fire(
            rec,
            "pay",
            rail_available=True,
            intent_checked=True,
            mismatch=None,
            payload={"request": req_json, "txs": [tx.to_json() for tx in txs], "rail": rail.name},
            context={
                "request": req_json,
                "txs": [tx.to_json() for tx in txs],
                "payment_started_at": format_at(self._clock()),
            },
        )

    async def _confirm_txs(
        self, rec: OrderRecord, rail: Rail, key: str, deadline: datetime, what: str
    ) -> OrderRecord | None:
        """Bring the journaled transactions under ``key`` to CONFIRMED.

        Never signs anew unless a transaction is provably DROPPED. Returns the refreshed order row
        once all are confirmed, or None after recording a failure; raises _Stop while the outcome is
        still unknown after the deadline.
        """
        while True:
            txs = [SignedTx.from_json(t) for t in rec.context.get(key) or []]
            redo = False
            for tx in txs:
                status = await rail.status(tx)
                if status is TxStatus.CONFIRMED:
                    continue
                if status is TxStatus.REVERTED:
                    self._reverted(rec, tx, what, await _revert_reason(rail, tx))
                    return None
                if status is TxStatus.DROPPED:
                    rec = await self._reprepare(rec, rail, key, tx, what)
                    redo = True
                    break
                rec = self._note(rec, f"intent:broadcast_{what}", {"tx_id": tx.tx_id, "purpose": tx.purpose})
                await rail.broadcast(tx)
                remaining = (deadline - self._clock()).total_seconds()
                status = await rail.wait(tx, max(remaining, 0.5))
                rec = self._note(rec, f"result:broadcast_{what}", {"tx_id": tx.tx_id, "status": status.value})
                if status is TxStatus.CONFIRMED:
                    continue
                if status is TxStatus.REVERTED:
                    self._reverted(rec, tx, what, await _revert_reason(rail, tx))
                    return None
                if status is TxStatus.PENDING and self._clock() >= deadline:
                    message = (
                        f"the {what} transaction {tx.tx_id} is still pending after the deadline; "
                        "it was not re-signed. Resume later to reconcile it"
                    )
                    self._note(
                        rec,
                        "note:error",
                        {"code": "PAYMENT_OUTCOME_UNKNOWN", "message": message, "tx_id": tx.tx_id},
                        {"error": {"code": "PAYMENT_OUTCOME_UNKNOWN", "message": message}},
                    )
                    raise _Stop
                redo = True
                break
            if not redo:
                return rec

    def _reverted(self, rec: OrderRecord, tx: SignedTx, what: str, reason: str | None = None) -> None:
        """The transaction was mined and reverted: no transfer happened; fail with its id and reason."""
        self._fail(
            rec,
            "TRANSACTION_REVERTED",
            f"the {what} transaction {tx.tx_id} reverted" + (f": {reason}" if reason else ""),
            payload={"tx_id": tx.tx_id, **({"reason": reason} if reason else {})},
        )
        return None

    async def _reprepare(
        self, rec: OrderRecord, rail: Rail, key: str, dropped: SignedTx, what: str
    ) -> OrderRecord:
        request = request_from_json(rec.context["request"])
        if what == "release":
            txs = await rail.prepare_release(request)
        else:
            txs = await rail.prepare(request)
        return self._note(
            rec,
            f"note:{what}_dropped",
            {"dropped": dropped.tx_id, "txs": [t.to_json() for t in txs]},
            {key: [t.to_json() for t in txs]},
        )

    async def _settle(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        request = request_from_json(rec.context["request"])
        rail = self._rail(request.rail_type, request.chain)
        deadline = self._deadline(rec, "payment_started_at", spec.deadlines.payment)
        got = await self._confirm_txs(rec, rail, "txs", deadline, "payment")
        if got is None:
            return
        rec = got
        txs = [SignedTx.from_json(t) for t in rec.context["txs"]]
        market_order_id = str(rec.context["market_order_id"])
        escrow = request.rail_type in _ESCROW_RAILS
        try:
            await rail.verify(request, txs)
        except PaymentMismatchError as exc:
            self._fire(
                rec,
                "fail",
                payload={"code": "PAYMENT_MISMATCH", "message": str(exc)},
                context={"error": {"code": "PAYMENT_MISMATCH", "message": str(exc)}},
                ledger=LedgerChange(LedgerStatus.SPENT),
            )
            return
        paid_tx = txs[-1].tx_id
        if escrow:
            self._fire(
                rec,
                "paid",
                confirmed=True,
                payload={"tx": paid_tx, "txs": [t.tx_id for t in txs]},
                context={"paid_tx": paid_tx, "paid_at": format_at(self._clock())},
                ledger=LedgerChange(LedgerStatus.SPENT),
            )
            return
        proof = rail.proof(request, txs)
        rec, key = self._key(rec, "proof_key", "submit_payment_proof", {"tx": paid_tx})
        try:
            resp = await self._call(
                lambda t: self._market.submit_payment_proof(
                    market_order_id, proof, t, options={"idempotency_key": key}
                ),
                deadline=deadline,
            )
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            self._fire(
                rec,
                "fail",
                payload={"code": exc.code, "message": exc.message, "tx": paid_tx},
                context={
                    "error": {
                        "code": exc.code,
                        "message": f"the market refused the payment proof: {exc.message}",
                    },
                    "paid_tx": paid_tx,
                },
                ledger=LedgerChange(LedgerStatus.SPENT),
            )
            return
        payment = _item(resp)
        self._fire(
            rec,
            "paid",
            confirmed=True,
            payload={"tx": paid_tx, "proof": proof, "payment_status": field_of(payment, "status")},
            context={
                "paid_tx": paid_tx,
                "proof": proof,
                "paid_at": format_at(self._clock()),
                "payment_status": field_of(payment, "status"),
            },
            ledger=LedgerChange(LedgerStatus.SPENT),
        )

    # --- execution, acceptance, confirm / dispute, refund ----------------------------------------

    async def _after_payment(self, rec: OrderRecord) -> None:
        request = request_from_json(rec.context["request"])
        escrow = request.rail_type in _ESCROW_RAILS
        if S(rec.state) is S.PAID and escrow:
            await self._lock_escrow(rec, request)
            return
        await self._execute(rec, escrow)

    async def _lock_escrow(self, rec: OrderRecord, request: PaymentRequest) -> None:
        rail = self._rail(request.rail_type, request.chain)
        txs = [SignedTx.from_json(t) for t in rec.context["txs"]]
        proof = rail.escrow_proof(request, txs)
        body = {
            "transaction_hash": proof.transaction_hash,
            "chain": proof.chain,
            "escrow_address": proof.escrow_address,
        }
        market_order_id = str(rec.context["market_order_id"])
        rec, key = self._key(rec, "escrow_key", "lock_escrow_payment", body)
        spec = self._spec(rec)
        resp = await self._call(
            lambda t: self._market.lock_escrow_payment(
                market_order_id, body, t, options={"idempotency_key": key}
            ),
            deadline=self._clock() + timedelta(seconds=spec.deadlines.payment),
        )
        self._fire(
            rec,
            "lock_escrow",
            escrow=True,
            payload={**body, "payment_status": field_of(_item(resp), "status")},
            context={"proof": body, "payment_status": field_of(_item(resp), "status")},
        )

    async def _execute(self, rec: OrderRecord, escrow: bool) -> None:
        spec = self._spec(rec)
        deadline = self._deadline(rec, "paid_at", spec.deadlines.execution)
        if self._clock() >= deadline:
            await self._dispute(rec, f"execution did not complete within {spec.deadlines.execution:g} s")
            return
        market_order_id = str(rec.context["market_order_id"])
        rec, key = self._key(rec, "execute_key", "execute_market_order")
        try:
            # A service that has not answered by the execution deadline is disputed, not waited for.
            resp = await asyncio.wait_for(
                self._call(
                    lambda t: self._market.execute_market_order(
                        market_order_id, {"input": dict(spec.input)}, t, options={"idempotency_key": key}
                    ),
                    deadline=deadline,
                ),
                timeout=max((deadline - self._clock()).total_seconds(), 0.0),
            )
        except TimeoutError:
            await self._dispute(rec, f"execution did not complete within {spec.deadlines.execution:g} s")
            return
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            await self._dispute(rec, f"execution failed: {exc.code}: {exc.message}")
            return
        execution = field_of(resp, "execution")
        status_code = int(field_of(execution, "status_code") or 200)
        if status_code == 202:
            handoff = field_of(execution, "handoff")
            handoff_json = {
                "label": field_of(handoff, "label"),
                "url": field_of(handoff, "url"),
                "notes": field_of(handoff, "notes"),
            }
            self._fire(
                rec,
                "hand_off",
                escrow=escrow,
                payload={"handoff": handoff_json},
                context={"handoff": handoff_json},
            )
            return
        outcome_obj = field_of(execution, "outcome")
        outcome = {
            "status": field_of(outcome_obj, "status"),
            "result": field_of(outcome_obj, "result"),
            "error_message": field_of(outcome_obj, "error_message"),
            "id": field_of(outcome_obj, "id"),
        }
        self._fire(rec, "execute", escrow=escrow, payload={"outcome": outcome}, context={"outcome": outcome})

    async def _accept(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        reason = rec.context.get("acceptance_failure")
        if reason is None and not rec.context.get("accepted"):
            reason = check_acceptance(spec.acceptance, rec.context.get("outcome") or {})
            if reason is not None:
                rec = self._note(
                    rec,
                    "result:acceptance",
                    {"accepted": False, "reason": reason},
                    {"acceptance_failure": reason},
                )
            else:
                rec = self._note(rec, "result:acceptance", {"accepted": True}, {"accepted": True})
        if reason is not None:
            await self._dispute(rec, f"delivery failed acceptance: {reason}")
            return
        await self._confirm(rec)

    async def _confirm(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        market_order_id = str(rec.context["market_order_id"])
        request = request_from_json(rec.context["request"])
        escrow = request.rail_type in _ESCROW_RAILS
        if not rec.context.get("market_confirmed"):
            rec, key = self._key(rec, "confirm_key", "confirm_market_order")
            resp = await self._call(
                lambda t: self._market.confirm_market_order(
                    market_order_id, t, options={"idempotency_key": key}
                ),
                deadline=self._clock() + timedelta(seconds=spec.deadlines.order),
            )
            status = field_of(field_of(resp, "payment"), "status")
            rec = self._note(
                rec,
                "result:confirm_market_order",
                {"payment_status": status},
                {"market_confirmed": True, "payment_status": status},
            )
        if not escrow:
            status = rec.context.get("payment_status")
            if status == "release_pending":
                # As documented: confirm leaves a held payment release_pending and the buyer's
                # payment/release closes it; a direct transfer has nothing to move on chain.
                rec, key = self._key(rec, "release_key", "release_payment")
                resp = await self._call(
                    lambda t: self._market.release_payment(
                        market_order_id, None, t, options={"idempotency_key": key}
                    ),
                    deadline=self._clock() + timedelta(seconds=spec.deadlines.order),
                )
                status = field_of(_item(resp), "status")
            # A market that settles at confirm (older behaviour) answered released: nothing to release.
            payload = {"payment": "released", **({"payment_status": status} if status else {})}
            self._fire(
                rec, "confirm", payload=payload, context={"payment_status": status} if status else None
            )
            return
        rail = self._rail(request.rail_type, request.chain)
        if not rec.context.get("release_txs"):
            txs = await rail.prepare_release(request)
            rec = self._note(
                rec,
                "note:release_signed",
                {"txs": [t.to_json() for t in txs]},
                {"release_txs": [t.to_json() for t in txs], "release_started_at": format_at(self._clock())},
            )
        deadline = self._deadline(rec, "release_started_at", spec.deadlines.payment)
        got = await self._confirm_txs(rec, rail, "release_txs", deadline, "release")
        if got is None:
            return
        rec = got
        release_tx = SignedTx.from_json(rec.context["release_txs"][-1]).tx_id
        rec, key = self._key(rec, "release_key", "release_payment", {"tx": release_tx})
        resp = await self._call(
            lambda t: self._market.release_payment(
                market_order_id, {"transaction_hash": release_tx}, t, options={"idempotency_key": key}
            ),
            deadline=deadline,
        )
        self._fire(
            rec,
            "confirm",
            payload={"release_tx": release_tx, "payment_status": field_of(_item(resp), "status")},
            context={"release_tx": release_tx, "payment_status": field_of(_item(resp), "status")},
        )

    async def _dispute(self, rec: OrderRecord, reason: str) -> None:
        spec = self._spec(rec)
        market_order_id = str(rec.context["market_order_id"])
        request = request_from_json(rec.context["request"])
        escrow = request.rail_type in _ESCROW_RAILS
        ctx = {**rec.context, "market_order_id": market_order_id}
        evidence = dispute_evidence(self._journal.events(rec.order_id), ctx, reason)
        rec, key = self._key(rec, "dispute_key", "dispute_market_order", {"reason": reason})
        resp = await self._call(
            lambda t: self._market.dispute_market_order(
                market_order_id, {"reason": reason, "evidence": evidence}, t, options={"idempotency_key": key}
            ),
            deadline=self._clock() + timedelta(seconds=spec.deadlines.order),
        )
        dispute = field_of(resp, "dispute")
        self._fire(
            rec,
            "dispute",
            escrow=escrow,
            payload={"reason": reason, "evidence": evidence, "dispute_id": field_of(dispute, "id")},
            context={
                "dispute": {"reason": reason, "id": field_of(dispute, "id")},
                "disputed_at": format_at(self._clock()),
                "error": {"code": "DISPUTED", "message": reason},
            },
        )

    async def _await_refund(self, rec: OrderRecord) -> None:
        spec = self._spec(rec)
        market_order_id = str(rec.context["market_order_id"])
        deadline = self._deadline(rec, "disputed_at", spec.deadlines.refund)
        while True:
            payment = _item(await self._market.get_market_payment(market_order_id))
            status = field_of(payment, "status")
            if status == "refunded":
                self._fire(
                    rec, "refund", payload={"payment_status": status}, context={"payment_status": status}
                )
                return
            if self._clock() >= deadline:
                message = f"no refund within {spec.deadlines.refund:g} s (payment is {status}); resume later"
                self._note(
                    rec,
                    "note:error",
                    {"code": "REFUND_TIMEOUT", "message": message},
                    {"error": {"code": "REFUND_TIMEOUT", "message": message}},
                )
                raise _Stop
            await asyncio.sleep(self._poll)


# --- small pure helpers ---------------------------------------------------------------------------


def _error(code: Any, exc: Exception) -> dict[str, Any]:
    return {"code": str(code), "message": str(exc)}


def _verification(proof: Any) -> str | None:
    """How the market checked the payment: ``rpc`` / ``recorded`` proofs, or the escrow deposit."""
    if not isinstance(proof, Mapping):
        return None
    if proof.get("verification_mode"):
        return str(proof["verification_mode"])
    return "escrow-lock" if proof.get("escrow_address") else None


def _last_tx_id(txs: Any) -> str | None:
    if not txs:
        return None
    return str(txs[-1].get("tx_id"))


#: Refused quotes named in a NO_ELIGIBLE_QUOTE message; every one, with all its reasons, is in the
#: order's candidates (``run --json``, ``show``).
_WHY_NOT_SHOWN = 5


def _why_not(candidates: Sequence[Mapping[str, Any]]) -> str:
    """One line on why no quote was eligible: the first reason of the first few refused quotes."""
    refused = [c for c in candidates if not c["eligible"]]
    parts = []
    for c in refused[:_WHY_NOT_SHOWN]:
        first, *rest = list(c["reasons"]) or ["refused"]
        parts.append(f"{c['service_id']}: {first}" + (f" (+{len(rest)} more)" if rest else ""))
    if len(refused) > _WHY_NOT_SHOWN:
        parts.append(f"and {len(refused) - _WHY_NOT_SHOWN} more quotes; every reason is in the candidates")
    return "; ".join(parts)


async def _revert_reason(rail: Rail, tx: SignedTx) -> str | None:
    """Why ``tx`` reverted, from rails that can tell (``revert_reason``); never raises."""
    read = getattr(rail, "revert_reason", None)
    if read is None:
        return None
    try:
        reason = await read(tx)
    except Exception as exc:  # the failure is reported either way; the reason is a courtesy
        log.info("could not read why %s reverted: %s", tx.tx_id, exc)
        return None
    return str(reason) if reason else None


def _chain_matches(wanted: str, chain: str) -> bool:
    if wanted == "evm":
        return chain.startswith("eip155:")
    if wanted == "solana":
        return chain.startswith("solana:")
    return wanted == chain
