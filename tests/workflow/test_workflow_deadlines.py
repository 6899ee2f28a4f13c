"""Deadlines and their defined exits on a real sandbox: an expired quote, an execution that never ends.

The sandbox here issues quotes that live 3 s (``MarketSettings.quote_ttl_s``) so a chosen quote can
expire before it is ordered; a service that never answers is the sandbox's ``timeout`` fault, switched
on the moment the order is paid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_workflow_e2e import Stack, buyer, run, spec, transfers_from

from buyer_agent.journal import Event, Journal, LedgerStatus
from buyer_agent.workflow import Deadlines, OrderState
from buyer_agent.workflow._quotes import parse_time

pytestmark = pytest.mark.chains

QUOTE_TTL_S = 3.0


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox
    from buyer_agent.sandbox.market import MarketSettings

    sandbox = Sandbox(
        state_dir=tmp_path_factory.mktemp("deadline-sandbox"),
        settings=MarketSettings(quote_ttl_s=QUOTE_TTL_S),
    )
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _info(box: Any) -> dict[str, Any]:
    info: dict[str, Any] = box.info.to_json()
    return info


_POLICY = {"per_transaction_limit": "5", "daily_spend_limit": "100", "currency": "USDC"}


def _stack(info: dict[str, Any], db: Path) -> Stack:
    return Stack(info, db, _POLICY)


def _drive(info: dict[str, Any], db: Path, order_id: str) -> Any:
    """Drive the order on a fresh stack over the same journal (a new process would do the same)."""

    async def go() -> Any:
        stack = _stack(info, db)
        try:
            return await stack.runner.drive(order_id)
        finally:
            await stack.aclose()

    return run(go())


def _wait_until_expired(expires_at: str) -> None:
    """Block until the market's quote has expired (the sandbox and the test share this clock)."""
    when = parse_time(expires_at)
    while datetime.now(UTC) <= when:
        time.sleep(0.05)


def _chosen_then_expired(info: dict[str, Any], db: Path, deadlines: Deadlines) -> tuple[str, str]:
    """An order stepped to ``quoted``, then left until its quote expired; (order id, first quote id)."""

    async def go() -> tuple[str, str]:
        stack = _stack(info, db)
        try:
            order_id = await stack.runner.submit(spec(deadlines=deadlines))
            for action in ("pair", "search", "choose"):
                await stack.runner.step(order_id, action)
            rec = stack.journal.order(order_id)
            assert rec.state == OrderState.QUOTED.value
            choice = rec.context["choice"]
            _wait_until_expired(choice["expires_at"])
            return order_id, str(choice["quote_id"])
        finally:
            await stack.aclose()

    result: tuple[str, str] = run(go())
    return result


def test_an_expired_quote_is_searched_again_and_the_order_completes_paying_once(
    box: Any, tmp_path: Path
) -> None:
    info = _info(box)
    db = tmp_path / "expired.db"
    before = transfers_from(info, buyer(info))
    order_id, first_quote = _chosen_then_expired(info, db, Deadlines(quote=120))

    summary = _drive(info, db, order_id)
    assert summary.state is OrderState.CONFIRMED, summary.error
    events = Journal(db).events(order_id)
    triggers = [e.trigger for e in events]
    expired = triggers.index("note:quote_expired")
    assert events[expired].payload["quote_id"] == first_quote
    # The expired quote was never ordered: a new search, a new choice, then the order.
    assert triggers[expired + 1 :].count("search") == 1
    assert "choose" in triggers[expired + 1 :]
    assert triggers.index("intent:create_market_order") > expired
    ordered = next(e for e in events if e.trigger == "intent:create_market_order")
    assert ordered.payload["quote_id"] != first_quote
    assert summary.quote is not None and summary.quote["quote_id"] != first_quote
    assert transfers_from(info, buyer(info)) == before + 1
    assert Journal(db).verify(order_id) == len(events)


def test_an_expired_quote_past_the_quote_deadline_fails_before_money_moves(box: Any, tmp_path: Path) -> None:
    info = _info(box)
    db = tmp_path / "late.db"
    before = transfers_from(info, buyer(info))
    # The quote deadline (1 s) is over before the 3 s quote expires: searching again is not allowed.
    order_id, _ = _chosen_then_expired(info, db, Deadlines(quote=1))

    summary = _drive(info, db, order_id)
    assert summary.state is OrderState.FAILED
    assert summary.error is not None and summary.error["code"] == "QUOTE_DEADLINE"
    journal = Journal(db)
    triggers = [e.trigger for e in journal.events(order_id)]
    assert "note:quote_expired" in triggers
    assert "intent:create_market_order" not in triggers
    assert transfers_from(info, buyer(info)) == before
    assert journal.ledger_entry(order_id) is None
    journal.verify(order_id)


def test_an_execution_that_never_completes_is_disputed_and_refunded_after_one_payment(
    box: Any, tmp_path: Path
) -> None:
    from buyer_agent.sandbox.market import FaultConfig

    info = _info(box)
    db = tmp_path / "slow.db"
    before = transfers_from(info, buyer(info))
    hung: list[str] = []

    def market_faults(ev: Event) -> None:
        # Once paid, every market call hangs unanswered (the service never completes); the
        # dispute, once decided, reaches a working market again.
        if ev.trigger == "paid":
            box.market.faults.configure(FaultConfig(rate_timeout=1.0, timeout_s=30.0))
            hung.append(ev.trigger)
        elif ev.trigger == "intent:dispute_market_order":
            box.market.faults.configure(FaultConfig())

    async def go() -> Any:
        stack = _stack(info, db)
        stack.runner._crash_hook = market_faults
        try:
            return await stack.runner.buy(spec(deadlines=Deadlines(execution=2)))
        finally:
            box.market.faults.configure(FaultConfig())
            await stack.aclose()

    summary = asyncio.run(go())
    assert hung == ["paid"]
    assert summary.state is OrderState.REFUNDED, summary.error
    journal = Journal(db)
    events = journal.events(summary.order_id)
    triggers = [e.trigger for e in events]
    assert "execute" not in triggers and "confirm" not in triggers
    dispute = next(e for e in events if e.trigger == "dispute")
    assert dispute.src == OrderState.PAID.value
    assert "execution did not complete within 2 s" in dispute.payload["reason"]
    assert [e.trigger for e in events if e.trigger == "pay"] == ["pay"]
    assert transfers_from(info, buyer(info)) == before + 1  # paid once, never again
    entry = journal.ledger_entry(summary.order_id)
    assert entry is not None and entry.status is LedgerStatus.SPENT
    assert journal.verify(summary.order_id) == len(events)
