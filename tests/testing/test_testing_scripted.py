"""buyer_agent.testing offline: an in-memory journal and a scripted market, as user tests use them."""

from __future__ import annotations

import asyncio

import pytest

from buyer_agent import Money, OrchestrationApiError, Secret
from buyer_agent.market import ItemResponse, MarketSearch
from buyer_agent.testing import ScriptedMarket, ScriptExhausted, memory_journal, quote, search
from buyer_agent.workflow import OrderSpec, OrderState, PairingSession, Runner

SPEC = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("2.50 USDC"))


def _runner(market: ScriptedMarket) -> Runner:
    pairing = PairingSession.with_token(machine_id="machine_1", pairing_id="pair_1", token=Secret("a.b.c"))
    return Runner(market=market, journal=memory_journal(), rails=[], pairing=pairing)


def test_a_journal_in_memory_is_a_whole_journal() -> None:
    journal = memory_journal()
    try:
        assert journal.path is None
        journal.create_order("ord_1", SPEC.to_json())
        assert [o.order_id for o in journal.orders()] == ["ord_1"]
        assert journal.verify("ord_1") == 1
        assert journal.acquire_lease("ord_1", "me", 60.0)
    finally:
        journal.close()


def test_the_search_step_reads_the_scripted_quotes_and_the_strategy_judges_them() -> None:
    market = ScriptedMarket(
        search_market=[search(quote("qt_cheap", price="0.50"), quote("qt_dear", price="3.00"))]
    )
    runner = _runner(market)

    async def go() -> None:
        order_id = await runner.submit(SPEC)
        await runner.step(order_id, "pair")
        assert (await runner.step(order_id, "search")).state is OrderState.SEARCHED
        preview = runner.preview(order_id)
        reasons = {c["quote_id"]: c["reasons"] for c in preview["candidates"]}
        assert "price 3.00 USDC over order budget 2.50 USDC" in reasons["qt_dear"]
        assert not any("budget" in r for r in reasons["qt_cheap"])

    asyncio.run(go())
    (call,) = market.called("search_market")
    assert call.params["budget"] == {"max": Money.parse("2.50 USDC").to_decimal(), "currency": "USDC"}
    assert call.options["idempotency_key"]
    assert "a.b.c" not in repr(market.calls)  # the pairing token is never recorded
    market.assert_done()


def test_answers_are_typed_models_errors_or_functions_of_the_call() -> None:
    refused = OrchestrationApiError("RATE_LIMITED", "rate limited", status_code=429)
    market = ScriptedMarket(search_market=[refused, lambda call: search(id=f"srch_{len(call.params)}")])

    async def go() -> None:
        with pytest.raises(OrchestrationApiError):
            await market.search_market({}, "token")
        answer = await market.search_market({"a": 1}, "token")
        assert isinstance(answer, ItemResponse) and isinstance(answer.item, MarketSearch)
        assert answer.item.id == "srch_1"
        with pytest.raises(ScriptExhausted, match="unscripted market call search_market"):
            await market.search_market({}, "token")

    asyncio.run(go())
    with pytest.raises(TypeError, match="no method 'search'"):
        market.then("search")


def test_an_unscripted_call_stops_the_order_with_a_clear_error() -> None:
    runner = _runner(ScriptedMarket())

    async def go() -> None:
        order_id = await runner.submit(SPEC)
        summary = await runner.drive(order_id)
        assert summary.state is OrderState.PAIRED
        assert summary.error is not None and summary.error["code"] == "ScriptExhausted"

    asyncio.run(go())


def test_execute_confirm_and_dispute_are_answered_unwrapped_as_the_client_answers_them() -> None:
    from buyer_agent.market import ExecuteMarketOrderResponse, ExecutionOutcome, ExecutionRun, NativeExecution

    answer = ExecuteMarketOrderResponse(
        order=None,  # type: ignore[arg-type]  # the scripted market passes its answers on as they are
        execution=NativeExecution(
            status_code=200, run=ExecutionRun("r", "done"), outcome=ExecutionOutcome("o", "completed")
        ),
    )
    market = ScriptedMarket(execute_market_order=[answer])
    got = asyncio.run(market.execute_market_order("mo_1", {"input": {}}, "token"))
    assert got is answer  # not an ItemResponse: the runner reads ``.execution`` as from the client
