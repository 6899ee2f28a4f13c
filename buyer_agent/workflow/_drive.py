"""The drive loop: take an order up under its lease, run the step the table names, until it must stop.

One order is driven by one task at a time (an asyncio lock per order) and by one process (a lease in
the store, renewed halfway through its time to live, passed with every write). Taking an order up
reads its row once and folds its events once; after that each appended event is folded in memory
and nothing re-reads the order while the lease is held. A step that fails transiently (5xx, 429, a
lost answer) beyond the client's own retries is repeated under a tenacity policy; any other error is
recorded (an order that moved no money fails; one that did keeps its state for a resume). A lease
lost meanwhile stops driving that order at once: whoever holds it now goes on from the journal.

A fleet worker gives the loop a short lease (``lease_ttl``): a heartbeat then renews it every third
of its time while the order is held, so a step may outlast the lease and a dead worker's orders are
free again soon. A store that fails mid-step (its server restarting) is waited for, and the order's
facts are then read again from the store: a write whose commit failed may or may not have happened,
so the order's head is re-read, never guessed. :meth:`DriveLoop.stop` asks every drive to stop at
its next safe point (between steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta

import tenacity

from buyer_agent._errors import BuyerAgentError, JournalError, LeaseLost, StateError
from buyer_agent._waits import EVERY_S, report_wait
from buyer_agent.journal import lease_owner_id
from buyer_agent.workflow._effects import Effects, Env, OrderRun, Stop
from buyer_agent.workflow._fold import FactsFolder
from buyer_agent.workflow._machine import build_machine
from buyer_agent.workflow._model import OrderModel
from buyer_agent.workflow._spec import OrderSpec
from buyer_agent.workflow._states import TERMINAL, OrderState
from buyer_agent.workflow._table import row_for

__all__ = ["DriveLoop", "StepFn"]

log = logging.getLogger("buyer_agent.workflow")
S = OrderState

StepFn = Callable[[OrderRun], Awaitable[None]]

#: Rounds a step is repeated after transient faults (5xx, 429, lost answers) beyond the client's retries.
TRANSIENT_ROUNDS = 4
#: How long a drive waits for a failed store to come back before it gives the order up (the lease
#: then runs out and the order is driven on from its journal, by this process or another).
STORE_WAIT_S = 300.0
_BEFORE_MONEY = frozenset({S.CREATED, S.PAIRED, S.SEARCHED, S.QUOTED, S.AWAITING_APPROVAL, S.ORDERED})


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, BuyerAgentError) and exc.retryable and not isinstance(exc, LeaseLost)


#: Seconds a let-go order's heartbeat may take to finish a renewal in flight before it is cancelled.
_HEARTBEAT_GRACE_S = 2.0


def _store_fault(exc: BaseException) -> bool:
    """The store could not be reached (a connection cut, a server restarting): worth waiting for."""
    return isinstance(exc, JournalError) and exc.retryable and not isinstance(exc, LeaseLost)


class DriveLoop:
    """Leases, the table's dispatch, the transient policy, error recording and the observer's hooks.

    Args:
        env: What the steps share (store, market, rails, pairing, clock, observer, …).
        fx: The effects the steps journal and call through.
        steps: The step of each name the table uses (``pair``, ``search``, … ``refund``).
        lease_ttl: Seconds a lease lasts, renewed by a heartbeat while the order is held (a fleet
            worker's); None: the order's longest deadline and a minute, renewed between steps.
    """

    def __init__(
        self, env: Env, fx: Effects, steps: Mapping[str, StepFn], *, lease_ttl: float | None = None
    ) -> None:
        self.env = env
        self.fx = fx
        self.steps = dict(steps)
        self.lease_ttl = lease_ttl
        #: Set by :meth:`stop`: every drive returns at its next safe point (between steps).
        self.stopping = False
        self.owner = lease_owner_id(uuid.uuid4().hex[:12])
        self._locks: dict[str, asyncio.Lock] = {}
        self._wanting: dict[str, int] = {}  # per order: tasks holding or waiting for its lock
        # One machine for every order this loop drives (each order's model is added while it is
        # held): building the table's machine costs more than a whole event.
        self.machine = build_machine(OrderModel(None, ""), S.CREATED)
        # Waits of 0.5, 1, 2, 4 s between rounds, then the error is recorded.
        self._policy = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(TRANSIENT_ROUNDS + 1),
            wait=tenacity.wait_exponential(multiplier=0.5, max=4.0),
        )

    # --- taking an order up -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def holding(self, order_id: str) -> AsyncIterator[OrderRun]:
        """Hold ``order_id`` (lock, lease, facts) for the block; let go after, whatever happens.

        Raises:
            StateError: another process holds the order's lease.
        """
        lock = self._locks.setdefault(order_id, asyncio.Lock())
        self._wanting[order_id] = self._wanting.get(order_id, 0) + 1
        try:
            async with lock, self._leased(order_id) as run:
                yield run
        finally:
            self._wanting[order_id] -= 1
            if not self._wanting[order_id]:  # nobody holds or waits: forget the order's lock
                del self._wanting[order_id]
                self._locks.pop(order_id, None)

    @contextlib.asynccontextmanager
    async def _leased(self, order_id: str) -> AsyncIterator[OrderRun]:
        store = self.env.store
        rec = await store.order(order_id)
        spec = OrderSpec.from_json(rec.spec)
        lease = await store.acquire_lease(order_id, self.owner, self.ttl(spec))
        if lease is None:
            raise StateError(
                f"order {order_id} is being driven by another process ({rec.lease_owner})",
                state=rec.state,
                allowed=[],
            )
        model: OrderModel | None = None
        heartbeat: asyncio.Task[None] | None = None
        let_go = asyncio.Event()  # the order is let go: the heartbeat ends, however it was woken
        folder = FactsFolder()
        try:
            for ev in await store.events(order_id):
                folder.apply(ev)
            model = OrderModel(None, order_id)
            self.machine.add_model(model, initial=folder.state)
            run = OrderRun(
                order_id=order_id,
                folder=folder,
                spec=spec,
                model=model,
                machine=self.machine,
                lease=lease,
                renew_at=self.env.clock() + timedelta(seconds=self.ttl(spec) / 2),
                resumed=folder.seq > 1,
            )
            if hasattr(self.env.observer, "order_folder"):  # the optional hook: the one fold, lent
                self.env.observe("order_folder", order_id, folder)
            if self.lease_ttl is not None:
                heartbeat = asyncio.create_task(self._heartbeat(run, let_go), name=f"lease {order_id}")
            self.env.observe("order_started", order_id, folder.state, resumed=run.resumed)
            yield run
        finally:
            let_go.set()
            if heartbeat is not None:
                # A renewal in flight is let finish rather than cancelled mid-query: psycopg cancels
                # the statement on the server, and that cancel can land on the connection's next
                # query (another order's write). Only a renewal stuck past the grace is cancelled.
                await asyncio.wait([heartbeat], timeout=_HEARTBEAT_GRACE_S)
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if model is not None:
                self.machine.remove_model(model)
                self.env.observe("order_finished", order_id, folder.state)
            with contextlib.suppress(Exception):  # a lost lease is already someone else's
                await store.release_lease(order_id, self.owner)

    def ttl(self, spec: OrderSpec | None) -> float:
        """How long a lease of this loop lasts for an order of ``spec``."""
        return self.lease_ttl if self.lease_ttl is not None else _ttl(spec)

    def stop(self) -> None:
        """Ask every drive to return at its next safe point (between steps); their leases go back."""
        self.stopping = True

    async def renew(self, run: OrderRun, *, now_anyway: bool = False) -> None:
        """Renew the lease once half its time to live has passed (or now, with ``now_anyway``).

        Raises:
            LeaseLost: someone else took the order over meanwhile.
        """
        now = self.env.clock()
        if not now_anyway and run.renew_at is not None and now < run.renew_at:
            return
        ttl = self.ttl(run.spec)
        lease = await self.env.store.acquire_lease(run.order_id, self.owner, ttl)
        if lease is None or (run.lease is not None and lease.epoch != run.lease.epoch):
            held = run.lease
            raise LeaseLost(run.order_id, self.owner, held.epoch if held is not None else 0)
        run.lease = lease
        run.renew_at = now + timedelta(seconds=ttl / 2)

    async def _heartbeat(self, run: OrderRun, let_go: asyncio.Event) -> None:
        """Renew the lease every third of its time while the order is held: a step may outlast it.

        Ends when ``let_go`` is set, not only when cancelled: a cancellation that lands inside a
        query can come out of the database driver as an error (the query cancelled on the server)
        or not at all, and a heartbeat that lived on would keep the let-go order leased forever and
        the drive that awaits it from ever returning (seen as a worker hanging on SIGTERM).
        """
        pause = self.ttl(run.spec) / 3
        while not let_go.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(let_go.wait(), pause)
            if let_go.is_set():
                return
            try:
                await self.renew(run, now_anyway=True)
            except LeaseLost:
                # Its writes are refused from now on (the store checks the lease): the step stops
                # at its next write, and whoever holds the order goes on from the journal.
                log.warning("order %s: lease lost to another driver", run.order_id)
                return
            except Exception as exc:  # the store is down: the writes stay fenced; try again
                task = asyncio.current_task()
                if let_go.is_set() or (task is not None and task.cancelling()):
                    return
                report_wait(
                    f"the store to renew the lease of order {run.order_id}",
                    because=str(exc),
                    next_in_s=pause,
                    every_s=EVERY_S,
                )

    # --- driving ------------------------------------------------------------------------------

    async def drive(self, run: OrderRun) -> None:
        """Advance until the order is terminal, waits for approval, or must stop."""
        while True:
            state = run.state
            if state in TERMINAL or self.stopping:
                return
            if state is S.AWAITING_APPROVAL and self.env.approver is None:
                return
            if not await self.advance(run):
                return

    async def advance(self, run: OrderRun) -> bool:
        """One step from the order's state; False when driving must stop for now."""
        try:
            await self.step_once(run)
            run.transient = 0
            return True
        except Stop:
            return False
        except LeaseLost:
            raise
        except Exception as exc:
            if _store_fault(exc):
                return await self._after_store_fault(run, exc)
            wait = self._transient_wait(run, exc)
            if wait is None:
                return await self.on_error(run, exc)
            # A transient market fault outlived the client's own retries: wait, then try the step
            # of the order's state again (every step is safe to repeat) instead of stopping it.
            report_wait(
                f"order {run.order_id} to leave {run.state.value}",
                attempt=run.transient + 1,
                of=TRANSIENT_ROUNDS + 1,
                next_in_s=wait,
                because=str(exc),
            )
            await asyncio.sleep(wait)
            return True

    async def _after_store_fault(self, run: OrderRun, exc: Exception) -> bool:
        """Wait for the store to answer again, then read the order's facts again from it.

        A write whose commit failed may or may not have happened (an ``intent:`` committed just
        before the connection broke): the journal is the truth, so the order is folded again from
        its events, never continued from the facts in memory nor written again blindly.

        Raises:
            LeaseLost: the order passed to another driver meanwhile.
            JournalError: the store did not come back within :data:`STORE_WAIT_S`.
        """
        give_up = time.monotonic() + STORE_WAIT_S
        because, attempt = str(exc), 0
        while True:
            attempt += 1
            pause = min(0.25 * 2 ** (attempt - 1), 2.0)
            report_wait(
                f"the store, to go on with order {run.order_id}",
                attempt=attempt,
                next_in_s=pause,
                because=because,
                every_s=EVERY_S,
            )
            await asyncio.sleep(pause)
            if self.stopping:
                return False
            try:
                await self.refold(run)
                await self.renew(run, now_anyway=True)
                return True
            except LeaseLost:
                raise
            except JournalError as again:
                if not again.retryable or time.monotonic() >= give_up:
                    raise
                because = str(again)

    async def refold(self, run: OrderRun) -> None:
        """Fold the order's facts again from the store's events (its head as the store has it)."""
        folder = FactsFolder()
        for ev in await self.env.store.events(run.order_id):
            folder.apply(ev)
        run.folder = folder
        self.machine.set_state(folder.state, model=run.model)

    def _transient_wait(self, run: OrderRun, exc: Exception) -> float | None:
        """Seconds before repeating a step that failed transiently; None once the policy stops."""
        if not _transient(exc):
            return None
        state = tenacity.RetryCallState(retry_object=self._policy, fn=None, args=(), kwargs={})
        state.attempt_number = run.transient + 1
        if self._policy.stop(state):
            return None
        run.transient += 1
        return float(self._policy.wait(state))

    async def step_once(self, run: OrderRun, step: StepFn | None = None, name: str | None = None) -> None:
        """Run the table's step for the order's state (or ``step``) between the observer's hooks."""
        await self.renew(run)
        if step is None:
            row = row_for(run.state, run.facts)
            if row.step is None:
                # Nothing to do from here but wait (terminal, or a free order's dispute): stop driving.
                raise Stop
            name, step = row.step, self.steps[row.step]
        env = self.env
        env.observe("step_started", run.order_id, name or "step", run.folder.state)
        error: BaseException | None = None
        try:
            await step(run)
        except BaseException as exc:
            error = None if isinstance(exc, Stop) else exc
            raise
        finally:
            env.observe("step_finished", run.order_id, name or "step", run.folder.state, error=error)

    async def on_error(self, run: OrderRun, exc: Exception) -> bool:
        """Record an error: fail orders that never moved money; otherwise stop and keep the state."""
        state = run.state
        code = getattr(exc, "code", None) or type(exc).__name__
        final = isinstance(exc, BuyerAgentError) and not exc.retryable
        if isinstance(exc, BuyerAgentError) and state in _BEFORE_MONEY and final:
            await self.fx.fail(run, str(code), str(exc))
            return True
        if not isinstance(exc, BuyerAgentError):
            log.exception("unexpected error driving order %s", run.order_id)
        await self.fx.note(
            run,
            "note:error",
            {"code": code, "message": str(exc)},
            {"error": {"code": str(code), "message": str(exc)}},
        )
        return False


def _ttl(spec: OrderSpec | None) -> float:
    """How long a lease lasts: the order's longest deadline and a minute."""
    d = spec.deadlines if spec is not None else None
    longest = max(d.quote, d.order, d.payment, d.execution, d.refund) if d else 120.0
    return longest + 60.0
