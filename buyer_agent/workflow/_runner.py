"""The runner: the public face of the drive loop and the step families, exactly once per effect."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from buyer_agent._errors import JournalError, LeaseLost, StateError
from buyer_agent.journal import Event, Journal, OrderStore, utc_now
from buyer_agent.journal._sqlite_store import SqliteStore
from buyer_agent.networks import Networks, builtin_networks
from buyer_agent.rails._base import Rail
from buyer_agent.workflow._adopting import Adopting
from buyer_agent.workflow._crashpoint import crash_hook_from_env
from buyer_agent.workflow._delivering import Delivering
from buyer_agent.workflow._drive import DriveLoop, StepFn
from buyer_agent.workflow._effects import Effects, Env, OrderRun, Stop
from buyer_agent.workflow._fold import fold
from buyer_agent.workflow._observer import DriveObserver, NullObserver
from buyer_agent.workflow._pairing import PairingSession
from buyer_agent.workflow._paying import Paying
from buyer_agent.workflow._ports import MarketPort
from buyer_agent.workflow._quoting import Quoting, why_not
from buyer_agent.workflow._read import summary_of
from buyer_agent.workflow._spec import OrderSpec
from buyer_agent.workflow._states import TERMINAL, OrderState
from buyer_agent.workflow._summary import OrderSummary, ProgressEvent
from buyer_agent.workflow._table import ACTIONS, actions_of, allowed_actions
from buyer_agent.workflow._x402_steps import X402Steps

__all__ = ["MarketPort", "Runner", "new_id"]

log = logging.getLogger(__name__)
S = OrderState
T = TypeVar("T")

# Kept for callers that imported it from here.
_why_not = why_not


def new_id(prefix: str) -> str:
    """A fresh random id: ``<prefix>_<32 hex>``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def _at_once(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (an :class:`OrderStore` over SQLite answers so).

    The readers (``summary``, ``preview``, ``allowed_actions``) stay synchronous for the SQLite
    journal; a store that must wait (a database server) is read with the async methods instead.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("this store answers asynchronously: use the runner's async readers")


class Runner:
    """Drives orders through the state machine against a market client and payment rails.

    One trigger at a time per order (an asyncio lock per order, plus a lease in the store so two
    processes never drive one order); many orders run concurrently in one event loop. Every side
    effect is journaled as an intent (with its idempotency key) before it runs and as a result
    after; a signed transaction is journaled before it is broadcast, so a resumed order asks the
    market or the chain what already happened and never signs a second payment.

    The parts: the drive loop (``_drive``: leases, the step table, transient rounds, errors) and
    the step families (``_quoting``, ``_paying``, ``_delivering``), which journal and call the
    market through one effects object (``_effects``).

    Args:
        market: The market client (``AsyncMarketClient``).
        journal: Where orders live: a SQLite :class:`Journal` or any :class:`OrderStore`.
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
        observer: Told when orders and steps start and finish and of every event (traces,
            metrics); one that raises is logged and ignored.
        lease_ttl: Seconds an order's lease lasts, renewed by a heartbeat while it is driven (a fleet
            worker's short lease, so a dead worker's orders are free again soon); None: the order's
            longest deadline and a minute, renewed between steps.
    """

    def __init__(
        self,
        *,
        market: MarketPort,
        journal: Journal | OrderStore,
        rails: Sequence[Rail],
        pairing: PairingSession,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[str], str] = new_id,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        approver: Callable[[OrderSummary], Awaitable[bool]] | None = None,
        crash_hook: Callable[[Event], None] | None = None,
        poll_interval: float = 0.1,
        networks: Networks | None = None,
        observer: DriveObserver | None = None,
        lease_ttl: float | None = None,
    ) -> None:
        if isinstance(journal, Journal):
            self._journal: Journal | None = journal
            store: OrderStore = SqliteStore(journal)
        else:
            store = journal
            self._journal = journal.journal if isinstance(journal, SqliteStore) else None
        self.store = store
        self._env = Env(
            store=store,
            market=market,
            rails=list(rails),
            pairing=pairing,
            clock=clock,
            ids=ids,
            networks=networks if networks is not None else builtin_networks(),
            observer=observer if observer is not None else NullObserver(),
            poll=poll_interval,
            on_progress=on_progress,
            approver=approver,
            crash_hook=crash_hook if crash_hook is not None else crash_hook_from_env(),
        )
        fx = Effects(self._env)
        self._quoting = Quoting(fx, self._summary_of_run)
        self._paying = Paying(fx)
        self._delivering = Delivering(fx, self._paying)
        self._x402 = X402Steps(fx, self._paying, self._delivering)
        self._adopting = Adopting(fx, self._paying)
        self._fx = fx
        q, p, d, x = self._quoting, self._paying, self._delivering, self._x402
        steps: dict[str, StepFn] = {
            "pair": q.pair,
            "search": q.search,
            "choose": q.choose,
            "order": q.order,
            "approval": q.approval,
            "pay": p.pay,
            "settle": p.settle,
            "execute": d.execute,
            "execute_free": d.execute_free,
            "confirm": d.confirm,
            "refund": d.refund,
            "pay_x402": x.pay,
            "prove_x402": x.prove,
            "execute_x402": x.execute,
            "confirm_x402": x.confirm,
        }
        self._loop = DriveLoop(self._env, fx, steps, lease_ttl=lease_ttl)
        self._owner = self._loop.owner

    # --- what tests and the composition reach for ---------------------------------------------

    @property
    def journal(self) -> Journal:
        """The SQLite journal orders are kept in (``TypeError`` for a store of another kind)."""
        if self._journal is None:
            raise TypeError(f"{self.store.label} is not a SQLite journal")
        return self._journal

    @property
    def _crash_hook(self) -> Callable[[Event], None] | None:
        return self._env.crash_hook

    @_crash_hook.setter
    def _crash_hook(self, hook: Callable[[Event], None] | None) -> None:
        self._env.crash_hook = hook

    @property
    def _networks(self) -> Networks:
        return self._env.networks

    @property
    def owner(self) -> str:
        """Who this runner's leases name (``host:pid:tag``): what a worker claims orders as."""
        return self._owner

    def lease_ttl(self, spec: OrderSpec | None = None) -> float:
        """How long this runner's lease of an order (of ``spec``) lasts, in seconds."""
        return self._loop.ttl(spec)

    def stop(self) -> None:
        """Ask every drive in progress to return at its next safe point (between steps).

        The orders keep their journaled state and their leases are given back, so another driver
        (or this one, later) goes on from there. Drives started afterwards return at once.
        """
        self._loop.stop()

    def add_step(self, name: str, step: StepFn) -> None:
        """Register the step a new row of the table names (a flow of its own)."""
        self._loop.steps[name] = step

    # --- public API -----------------------------------------------------------------------------

    async def submit(self, spec: OrderSpec) -> str:
        """Journal a new order in ``created``; return its id."""
        order_id = self._env.ids("ord")
        machine_id = spec.machine_id or self._env.pairing.machine_id
        ev = await self.store.create_order(
            order_id, spec.to_json(), context={"machine_id": machine_id}, payload={"spec": spec.to_json()}
        )
        self._fx.emitted(ev, 0.0)
        return order_id

    async def buy(self, spec: OrderSpec) -> OrderSummary:
        """Submit and drive one order to a terminal state (or ``awaiting_approval``)."""
        return await self.drive(await self.submit(spec))

    async def drive(self, order_id: str) -> OrderSummary:
        """Drive an order until it is terminal, waits for approval, or must stop (error recorded).

        Raises:
            StateError: another process holds the order's lease.
        """
        async with self._loop.holding(order_id) as run:
            try:
                await self._loop.drive(run)
            except LeaseLost as exc:
                log.warning("stopped driving %s: %s; its new driver goes on from the journal", order_id, exc)
            return self._summary_of_run(run)

    async def step(self, order_id: str, action: str, **kwargs: Any) -> OrderSummary:
        """Run one step and return the order's summary.

        Actions: ``pair``, ``search``, ``choose``, ``order``, ``approve``, ``pay``, ``adopt``,
        ``execute``, ``confirm``, ``dispute``, ``refund``, ``cancel``. ``choose`` takes ``quote_id=`` to
        pick that eligible quote instead of the strategy's; ``dispute`` takes ``reason=``; ``adopt``
        takes ``tx=``, a payment already made for the order (read from the chain, nothing signed).

        Raises:
            StateError: the step is not allowed in the order's state (``allowed`` lists those that are).
        """
        async with self._loop.holding(order_id) as run:
            state = run.state
            # The order's own row decides (a free order in ``ordered`` executes, it never pays).
            if action not in ACTIONS or action not in actions_of(state, run.facts):
                raise StateError(
                    f"cannot {action} an order in state {state.value}",
                    state=state.value,
                    allowed=allowed_actions(state, run.facts),
                )
            try:
                await self._action(run, action, kwargs)
            except Stop:
                pass
            except LeaseLost as exc:
                log.warning("stopped driving %s: %s; its new driver goes on from the journal", order_id, exc)
            return self._summary_of_run(run)

    async def _action(self, run: OrderRun, action: str, kwargs: Mapping[str, Any]) -> None:
        loop, fx = self._loop, self._fx
        one: StepFn | None = None
        if action == "choose":
            quote_id = kwargs.get("quote_id")

            async def one(r: OrderRun) -> None:
                await self._quoting.choose(r, quote_id)
        elif action == "approve":

            async def one(r: OrderRun) -> None:
                await self._quoting.approve(r, "caller")
        elif action in ("cancel", "withdraw"):
            reason = kwargs.get("reason", "cancelled by caller")

            async def one(r: OrderRun) -> None:
                await fx.fire(r, "cancel", payload={"reason": reason}, ledger=await fx.release_held(r))
        elif action == "abandon":
            why = str(kwargs.get("reason") or "its market died with its process")

            async def one(r: OrderRun) -> None:
                await fx.fail(r, "ORDER_ABANDONED", why, payload={"abandoned": True})
        elif action == "dispute":
            because = str(kwargs.get("reason") or "disputed by caller")

            async def one(r: OrderRun) -> None:
                await self._delivering.dispute(r, because)
        elif action == "search":
            one = self._quoting.search
        elif action == "adopt":
            tx = str(kwargs.get("tx") or "")

            async def one(r: OrderRun) -> None:
                await self._adopting.adopt(r, tx)

            await loop.step_once(run, one, action)
            # Adopted: the proof (or the escrow lock's payment) follows as for any payment.
            while run.state is S.PAYING:
                if not await loop.advance(run):
                    break
            return
        if one is not None:
            await loop.step_once(run, one, action)
            return
        # Steps that take several journaled moves run while the order is still in a state the
        # action covers (pay: ordered and paying; execute: paid and escrow_locked).
        covers = ACTIONS[action]
        if action == "order" and self._env.approver is not None:
            # A price held for approval asks the approver, then goes on ordering.
            covers = covers | {S.AWAITING_APPROVAL}
        while run.state in covers and run.state not in TERMINAL:
            if not await loop.advance(run):
                break

    def allowed_actions(self, order_id: str) -> list[str]:
        """The step actions the order's current state allows."""
        return _at_once(self.aallowed_actions(order_id))

    async def aallowed_actions(self, order_id: str) -> list[str]:
        """:meth:`allowed_actions` for any store."""
        state = S((await self.store.order(order_id)).state)
        events = await self.store.events(order_id)
        return allowed_actions(state, lambda: fold(events))

    def preview(self, order_id: str, quote_id: str | None = None) -> dict[str, Any]:
        """What ``choose`` would decide now, without journaling: every quote with its eligibility.

        Returns ``{"candidates": [...], "ranking": [quote ids], "recommended": quote id or None,
        "reason": str}``; candidates as in :class:`OrderSummary`.

        Raises:
            PolicyError: ``quote_id`` names no eligible quote.
        """
        return _at_once(self.apreview(order_id, quote_id))

    async def apreview(self, order_id: str, quote_id: str | None = None) -> dict[str, Any]:
        """:meth:`preview` for any store."""
        run = await self._reading(order_id)
        sel, _, _ = await self._quoting.select(run, quote_id)
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
        ids = [o.order_id for o in await self.store.orders(open_states)]
        return list(await asyncio.gather(*(self._drive_or_skip(i) for i in ids)))

    async def _drive_or_skip(self, order_id: str) -> OrderSummary:
        try:
            return await self.drive(order_id)
        except StateError:
            # Another live process drives it; report where it stands.
            return await self.asummary(order_id)

    def summary(self, order_id: str) -> OrderSummary:
        """The order's summary from its journaled facts."""
        return _at_once(self.asummary(order_id))

    async def asummary(self, order_id: str) -> OrderSummary:
        """:meth:`summary` for any store.

        Raises:
            JournalError: no such order.
        """
        events = await self.store.events(order_id)
        if not events:
            raise JournalError(f"no order {order_id} in the journal")
        return summary_of(fold(events), self.store.label)

    # --- helpers --------------------------------------------------------------------------------

    def _summary_of_run(self, run: OrderRun) -> OrderSummary:
        return summary_of(run.facts(), self.store.label)

    async def _reading(self, order_id: str) -> OrderRun:
        """The order's facts for a read (no lease, nothing journaled)."""
        from buyer_agent.workflow._fold import FactsFolder
        from buyer_agent.workflow._model import OrderModel

        rec = await self.store.order(order_id)
        folder = FactsFolder()
        for ev in await self.store.events(order_id):
            folder.apply(ev)
        # A reading fires nothing: the model is never added to the loop's machine.
        return OrderRun(
            order_id=order_id,
            folder=folder,
            spec=OrderSpec.from_json(rec.spec),
            model=OrderModel(None, order_id),
            machine=self._loop.machine,
        )
