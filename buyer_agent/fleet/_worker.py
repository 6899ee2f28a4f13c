"""A fleet worker: claim orders from the shared store under short leases, drive them, hand back cleanly.

One worker is one process (any number of them, on any number of hosts, share one store). Each round
it claims as many claimable orders as it has free slots (``claim``: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so workers never wait on one another) and drives each in a task of its own through the
runner's drive loop, whose heartbeat renews the lease while the order is held. Claimable means
non-terminal (submitted, or interrupted: a dead worker's order once its lease ran out), not waiting
for a person's approval, and nobody's live lease.

- An order that stops without ending (an error recorded, the market unreachable) is parked: its lease
  is taken again for a back-off that doubles each time, so no worker of the fleet retries it sooner.
- The store failing (its server restarting) is waited for with ``wait:`` lines; orders that were
  being driven are taken up again from their journal once it answers.
- :meth:`Worker.stop` (SIGTERM) stops claiming and asks every drive to stop at its next safe point
  (between steps); their leases, and the parked ones, are given back before :meth:`Worker.run`
  returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from buyer_agent._errors import JournalError, StateError
from buyer_agent._urls import same_market
from buyer_agent._waits import EVERY_S, report_wait
from buyer_agent.journal import OrderStore
from buyer_agent.workflow import TERMINAL, OrderState, OrderSummary, Runner

__all__ = ["CLAIMABLE", "MARKET_META", "Worker", "WorkerReport"]

#: The states a worker claims orders in: every open one but those waiting for a person.
CLAIMABLE: tuple[str, ...] = tuple(
    s.value for s in OrderState if s not in TERMINAL and s is not OrderState.AWAITING_APPROVAL
)
#: The meta key (+ order id) naming the market an order was placed on (as ``BuyerAgent`` records it).
MARKET_META = "order_market:"

_PARK_FIRST_S = 5.0
_PARK_MAX_S = 300.0


@dataclass(slots=True)
class WorkerReport:
    """What a worker did: orders it took up, how each drive ended, what it gave back."""

    claimed: int = 0
    #: Final states of the orders it drove to an end, counted.
    ended: Counter[str] = field(default_factory=Counter)
    #: Drives that stopped short (an error recorded, the order parked, or a stop asked for).
    stopped: int = 0


class Worker:
    """Claims orders from a shared store and drives them, ``concurrency`` at a time.

    Args:
        runner: The runner (its drive loop holds the leases; give it a short ``lease_ttl``).
        store: The store the fleet shares (the runner's).
        market: The market this worker drives orders on; orders placed on another are left alone.
        concurrency: Orders driven at once.
        once: Drain what is claimable now, then return (instead of waiting for more).
        poll_s: Seconds between claims while there is nothing to claim.
        say: Where progress lines go (stderr on the command line).
    """

    def __init__(
        self,
        runner: Runner,
        store: OrderStore,
        *,
        market: str,
        concurrency: int = 4,
        once: bool = False,
        poll_s: float = 0.5,
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker drives at least one order at a time")
        self.runner = runner
        self.store = store
        self.market = market
        self.concurrency = concurrency
        self.once = once
        self.poll_s = poll_s
        self.say = say
        self.report = WorkerReport()
        self._stopping = asyncio.Event()
        self._driving: dict[str, asyncio.Task[None]] = {}
        self._parked: dict[str, float] = {}  # order id → monotonic time its parking lease ends
        self._backoff: dict[str, float] = {}
        self._again: dict[str, float] = {}  # orders to take up again once the store answers
        self._foreign: set[str] = set()

    @property
    def owner(self) -> str:
        """The lease owner this worker claims as (``host:pid:tag``)."""
        return self.runner.owner

    def stop(self) -> None:
        """Stop claiming; every drive stops at its next safe point and its lease is given back."""
        if not self._stopping.is_set():
            self._stopping.set()
            self.runner.stop()

    async def run(self) -> WorkerReport:
        """Claim and drive until :meth:`stop` (or, with ``once``, until nothing is left to claim)."""
        failures = 0
        try:
            while not self._stopping.is_set():
                claimed = 0
                try:
                    claimed = await self._fill()
                    failures = 0
                except JournalError as exc:
                    if not exc.retryable:
                        raise
                    failures += 1
                    pause = min(0.25 * 2 ** (failures - 1), 5.0)
                    report_wait(
                        f"the store {self.store.label} to claim orders",
                        attempt=failures,
                        next_in_s=pause,
                        because=str(exc),
                        every_s=EVERY_S,
                    )
                    await self._pause(pause)
                    continue
                if self.once and not claimed and not self._driving and not self._again:
                    break
                await self._pause(self.poll_s if len(self._driving) < self.concurrency else None)
        finally:
            await self._hand_back()
        return self.report

    # --- claiming --------------------------------------------------------------------------------

    async def _fill(self) -> int:
        """Start drives for free slots: orders to take up again first, then fresh claims."""
        now = time.monotonic()
        for order_id, due in list(self._again.items()):
            if len(self._driving) >= self.concurrency:
                return 0
            if due <= now and order_id not in self._driving:
                del self._again[order_id]
                self._start(order_id)
        free = self.concurrency - len(self._driving)
        if free <= 0:
            return 0
        self._unpark(now)
        # Orders this worker leaves alone come back from the claim too (oldest first): ask for
        # enough to fill the free slots past them.
        skip = len(self._foreign)
        leases = await self.store.claim(CLAIMABLE, self.owner, self.runner.lease_ttl(), free + skip)
        started = 0
        for lease in leases:
            order_id = lease.order_id
            if order_id in self._foreign or not await self._ours(order_id) or started >= free:
                await self.store.release_lease(order_id, self.owner)
                continue
            self.report.claimed += 1
            started += 1
            self._start(order_id)
        return started

    async def _ours(self, order_id: str) -> bool:
        """Whether the order was placed on this worker's market (unrecorded: taken as ours)."""
        placed = await self.store.get_meta(MARKET_META + order_id)
        if placed is None or same_market(placed, self.market):
            return True
        self._foreign.add(order_id)
        self.say(f"{order_id}  left alone: placed on {placed}, this worker drives {self.market}")
        return False

    def _start(self, order_id: str) -> None:
        self._driving[order_id] = asyncio.create_task(self._drive(order_id), name=f"drive {order_id}")

    async def _pause(self, seconds: float | None) -> None:
        """Wait for a drive to end, a stop, or ``seconds`` (None: until a drive ends or a stop)."""
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                [stop, *self._driving.values()], timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()

    # --- driving ---------------------------------------------------------------------------------

    async def _drive(self, order_id: str) -> None:
        started = time.monotonic()
        try:
            summary = await self.runner.drive(order_id)
        except StateError:
            self.say(f"{order_id}  taken by another driver before this worker could start it")
            return
        except JournalError as exc:
            if not exc.retryable:
                self.say(f"{order_id}  stopped: {exc}")
                self.report.stopped += 1
                return
            # The store went away mid-drive: take the order up again from its journal once it is back
            # (this worker's lease is still on it, or has run out for another worker to take).
            self._again[order_id] = time.monotonic() + 1.0
            report_wait(f"the store, to take order {order_id} up again", because=str(exc), every_s=EVERY_S)
            return
        except Exception as exc:  # never lost silently in a task nobody awaits; the order keeps its state
            self.say(f"{order_id}  stopped: {type(exc).__name__}: {exc}")
            self.report.stopped += 1
            return
        finally:
            self._driving.pop(order_id, None)
        took = time.monotonic() - started
        if summary.state in TERMINAL:
            self._backoff.pop(order_id, None)
            self.report.ended[summary.state.value] += 1
            error = f": {summary.error.get('code')}" if summary.error else ""
            self.say(f"{order_id}  {summary.state.value}{error} in {took:.2f} s")
            return
        self.report.stopped += 1
        if self._stopping.is_set() or summary.state is OrderState.AWAITING_APPROVAL:
            self.say(f"{order_id}  left in {summary.state.value}")
            return
        await self._park(order_id, summary)

    async def _park(self, order_id: str, summary: OrderSummary) -> None:
        """Keep a stopped order from every worker for a back-off (its lease taken for that long)."""
        wait = min(self._backoff.get(order_id, _PARK_FIRST_S / 2) * 2, _PARK_MAX_S)
        self._backoff[order_id] = wait
        why = f": {summary.error.get('code')}: {summary.error.get('message')}" if summary.error else ""
        try:
            parked = await self.store.acquire_lease(order_id, self.owner, wait)
        except JournalError:
            parked = None  # the store is down: the order stays claimable, nothing is lost
        if parked is None:  # held by another driver now (it took the order over)
            return
        if self.once:
            await self.store.release_lease(order_id, self.owner)
            self.say(f"{order_id}  stopped in {summary.state.value}{why}")
            return
        self._parked[order_id] = time.monotonic() + wait
        self.say(f"{order_id}  stopped in {summary.state.value}{why}; parked for {wait:.0f} s")

    def _unpark(self, now: float) -> None:
        for order_id, until in list(self._parked.items()):
            if until <= now:
                del self._parked[order_id]

    # --- handing back ----------------------------------------------------------------------------

    async def _hand_back(self) -> None:
        """Let every drive reach its safe point, then give back the parked orders' leases."""
        if self._driving:
            self.runner.stop()
            await asyncio.gather(*self._driving.values(), return_exceptions=True)
        for order_id in list(self._parked):
            with contextlib.suppress(JournalError):
                await self.store.release_lease(order_id, self.owner)
        self._parked.clear()
