"""The drive loop under a fleet worker's short lease: a heartbeat, a stop at a safe point, a store that fails.

Each order is driven over a real SQLite journal to ``awaiting_approval`` (the price is above the
order's approval threshold and no approver is set), so the scripted market answers only a search.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import JournalError, Money, Secret
from buyer_agent.journal import Event, Journal, Lease, SqliteStore
from buyer_agent.rails import EvmRail
from buyer_agent.testing import ScriptedMarket, quote, search
from buyer_agent.workflow import OrderSpec, OrderState, PairingSession, Runner

S = OrderState
SPEC = OrderSpec(
    service_type="compute.marketplace",
    operation="sha256",
    budget=Money.parse("2.50 USDC"),
    approval_threshold=Money.parse("0.10 USDC"),  # every quote waits for a person: the drive ends there
)


class SlowSearch(ScriptedMarket):
    """A market whose search answers after ``delay`` seconds (the event loop runs meanwhile)."""

    def __init__(self, delay: float) -> None:
        super().__init__(search_market=[search(quote("qt_1"))])
        self.delay = delay

    async def search_market(self, params: Any, pairing_token: Any, **kw: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await super().search_market(params, pairing_token, **kw)


def _runner(market: ScriptedMarket, store: Any, **kw: Any) -> Runner:
    pairing = PairingSession.with_token(machine_id="machine_1", pairing_id="pair_1", token=Secret("a.b.c"))
    rails = [EvmRail("http://127.0.0.1:1", "0x" + "11" * 32, chain="eip155:31337")]  # never connects here
    return Runner(market=market, journal=store, rails=rails, pairing=pairing, **kw)


def test_a_heartbeat_keeps_a_short_lease_through_a_step_that_outlasts_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "beat.db")
    runner = _runner(SlowSearch(delay=2.5), journal, lease_ttl=1.0)
    taken: list[Lease | None] = []

    async def go() -> Any:
        order_id = await runner.submit(SPEC)
        driving = asyncio.create_task(runner.drive(order_id))
        for _ in range(4):  # well past the lease's second while the search is still out
            await asyncio.sleep(0.5)
            taken.append(journal.acquire_lease(order_id, "otherhost:1:x", 60.0))
        return await driving

    try:
        summary = asyncio.run(go())
        # Nobody could take the order while its step ran, and the step's writes were accepted after.
        assert taken == [None] * 4
        assert summary.state is S.AWAITING_APPROVAL
        assert [e.trigger for e in journal.events(summary.order_id)][-3:] == ["search", "choose", "hold"]
        assert journal.order(summary.order_id).lease_owner is None  # given back
    finally:
        journal.close()


def test_stop_lets_the_step_in_progress_finish_then_gives_the_order_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "stop.db")
    runner = _runner(SlowSearch(delay=1.0), journal, lease_ttl=5.0)

    async def go() -> Any:
        order_id = await runner.submit(SPEC)
        driving = asyncio.create_task(runner.drive(order_id))
        await asyncio.sleep(0.3)  # the search is out
        runner.stop()
        return await driving

    try:
        summary = asyncio.run(go())
        # The search finished and was journaled; nothing after it ran; the lease went back.
        assert summary.state is S.SEARCHED
        assert [e.trigger for e in journal.events(summary.order_id)][-1] == "search"
        assert journal.order(summary.order_id).lease_owner is None
        assert journal.verify(summary.order_id) == len(journal.events(summary.order_id))
    finally:
        journal.close()


class CommitThenFail(SqliteStore):
    """A store whose connection breaks right after it committed one write: the caller sees a failure."""

    def __init__(self, journal: Journal, trigger: str) -> None:
        super().__init__(journal)
        self.trigger = trigger
        self.failed = 0

    async def record(self, order_id: str, trigger: str, *args: Any, **kwargs: Any) -> Event:
        event = await super().record(order_id, trigger, *args, **kwargs)
        if trigger == self.trigger and not self.failed:
            self.failed += 1
            raise JournalError("the store at db failed: server closed the connection", retryable=True)
        return event


def test_a_write_whose_commit_looked_failed_is_read_back_not_written_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "fault.db")
    store = CommitThenFail(journal, "intent:search_market")
    market = SlowSearch(delay=0.0)
    runner = _runner(market, store, lease_ttl=5.0)

    async def go() -> Any:
        return await runner.drive(await runner.submit(SPEC))

    try:
        summary = asyncio.run(go())
        assert store.failed == 1 and summary.state is S.AWAITING_APPROVAL
        events = journal.events(summary.order_id)
        intents = [e for e in events if e.trigger == "intent:search_market"]
        # The intent committed once; the drive read it back and sent the search under its key.
        assert len(intents) == 1
        [sent] = market.called("search_market")
        key = intents[0].payload["idempotency_key"]
        assert sent.options is not None and sent.options["idempotency_key"] == key
        assert journal.verify(summary.order_id) == len(events)
    finally:
        journal.close()


def test_without_a_lease_ttl_the_runner_keeps_the_long_lease_and_no_heartbeat(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "long.db")
    runner = _runner(SlowSearch(delay=0.0), journal)
    try:
        assert runner.lease_ttl(SPEC) == max(60, 60, 120, 120, 60) + 60.0  # longest deadline + a minute
        assert asyncio.run(runner.drive(asyncio.run(runner.submit(SPEC)))).state is S.AWAITING_APPROVAL
    finally:
        journal.close()


class CancelBecomesError(SqliteStore):
    """A store whose heartbeat renewals hang until cancelled, and turn the cancellation into an error.

    As psycopg can: a task cancelled inside a query cancels it on the server, and what comes out may
    be the server's "canceling statement due to user request" instead of the cancellation.
    """

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self.swallowed = 0

    async def acquire_lease(self, order_id: str, owner: str, ttl_s: float) -> Lease | None:
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("lease "):  # the heartbeat's renewals
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.swallowed += 1
                raise JournalError("store error at db: canceling statement due to user request") from None
        return await super().acquire_lease(order_id, owner, ttl_s)


# Without the fix the drive never returns, and nothing short of the test's time limit ends it.
@pytest.mark.timeout(60)
def test_a_heartbeat_ends_with_its_drive_even_when_its_cancellation_comes_out_as_an_error(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "cancel.db")
    store = CancelBecomesError(journal)
    # The heartbeat's first renewal starts at 1 s and hangs; the search answers at 1.2 s; the order
    # then waits for approval well inside its 3 s lease, and the drive lets it go mid-renewal.
    runner = _runner(SlowSearch(delay=1.2), store, lease_ttl=3.0)

    async def go() -> Any:
        order_id = await runner.submit(SPEC)
        # A heartbeat living on would keep the drive from returning (a worker hanging on SIGTERM).
        return await runner.drive(order_id)

    try:
        summary = asyncio.run(go())
        assert store.swallowed == 1
        assert summary.state is S.AWAITING_APPROVAL
        assert journal.order(summary.order_id).lease_owner is None  # given back
    finally:
        journal.close()
