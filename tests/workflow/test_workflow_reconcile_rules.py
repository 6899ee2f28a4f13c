"""The reconciliation rules offline (a scripted market): what a read that finds nothing, or fails, leads to.

The sandbox tests (``test_workflow_reconcile.py``) lose answers the market committed; these script the
other answers a read can give: the write is not there (sent again while its quote is fresh, else a
new search), the read itself fails (nothing is sent again; the order keeps its state), and a crash
between journaling a write and its answer (the resumed order reads before it sends).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import tenacity

from buyer_agent import Money, OrchestrationApiError, OrchestrationOutcomeUnknown, Secret
from buyer_agent.journal import Journal
from buyer_agent.journal._canonical import format_at
from buyer_agent.market import (
    ListResponse,
    MarketOrder,
    MarketPayment,
    MarketPaymentRailRecommendation,
    PaymentProof,
    PaymentRailDetails,
)
from buyer_agent.rails import EvmRail
from buyer_agent.testing import ScriptedMarket, memory_journal, quote, search
from buyer_agent.testing._market import Call
from buyer_agent.workflow import OrderSpec, OrderState, PairingSession, Runner, crash_after
from buyer_agent.workflow._crashpoint import Crash
from buyer_agent.workflow._facts import EFFECT_KEYS
from buyer_agent.workflow._names import ABSENT, ADOPTED, NOTE_QUOTE_EXPIRED, NOTE_RECONCILED, PENDING
from buyer_agent.workflow._reconcile import WRITES, Reads, Repeat

S = OrderState
SPEC = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("2.50 USDC"))
CHAIN = "eip155:31337"
LOST = OrchestrationOutcomeUnknown("POST /market/orders: no answer from the market (ReadError)")


def _runner(market: ScriptedMarket, journal: Journal | None = None, **kw: Any) -> Runner:
    pairing = PairingSession.with_token(machine_id="machine_1", pairing_id="pair_1", token=Secret("a.b.c"))
    rails = [EvmRail("http://127.0.0.1:1", "0x" + "11" * 32, chain=CHAIN)]  # never connects here
    return Runner(
        market=market,
        journal=journal or memory_journal(),
        rails=rails,
        pairing=pairing,
        poll_interval=0.01,
        **kw,
    )


def _order(quote_id: str, order_id: str = "mo_1", pairing_id: str = "pair_1") -> MarketOrder:
    now = format_at(datetime.now(UTC))
    return MarketOrder(
        id=order_id,
        machine_id="machine_1",
        agent_pairing_id=pairing_id,
        service_id="svc_1",
        skill_key="s",
        provider_key="p",
        service_type="compute.marketplace",
        operation="sha256",
        execution_mode="native",
        integration_status="live",
        status="created",
        payment=MarketPaymentRailRecommendation(default_rail="wallet", chain=CHAIN),
        created_at=now,
        updated_at=now,
        quote_id=quote_id,
    )


def _page(*orders: MarketOrder, cursor: str | None = None) -> ListResponse[MarketOrder]:
    return ListResponse(items=tuple(orders), next_cursor=cursor)


async def _to_quoted(runner: Runner) -> str:
    order_id = await runner.submit(SPEC)
    for action in ("pair", "search", "choose"):
        await runner.step(order_id, action)
    return order_id


def _notes(runner: Runner, order_id: str, trigger: str = NOTE_RECONCILED) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in asyncio.run(runner.store.events(order_id)) if e.trigger == trigger]


def test_every_write_declares_how_a_lost_answer_is_reconciled() -> None:
    # A new write (an effect with an idempotency key) cannot be added without saying how it is read.
    assert set(WRITES) == set(EFFECT_KEYS)
    for effect, rule in WRITES.items():
        if rule.repeat is Repeat.READ:
            assert rule.read.startswith("GET "), effect
    # Only the writes the docs call idempotent, and the search (which buys nothing), are sent as they are.
    assert {e for e, r in WRITES.items() if r.repeat is not Repeat.READ} == {
        "search_market",
        "create_payment_intent",
    }


def test_a_lost_create_the_market_does_not_hold_is_created_again_with_the_same_key() -> None:
    market = ScriptedMarket(
        search_market=[search(quote("qt_1", price="0.80"))],
        create_market_order=[LOST, _order("qt_1")],
        # Two pages: the read follows the cursor to the end before it says "absent".
        list_market_orders=[_page(_order("qt_other", "mo_0"), cursor="c1"), _page()],
    )
    runner = _runner(market)

    async def go() -> str:
        order_id = await _to_quoted(runner)
        assert (await runner.step(order_id, "order")).state is S.ORDERED
        return order_id

    order_id = asyncio.run(go())
    first, again = market.called("create_market_order")
    assert first.options["idempotency_key"] == again.options["idempotency_key"]  # still sent, never relied on
    pages = market.called("list_market_orders")
    assert [c.params["cursor"] for c in pages] == [None, "c1"] and pages[0].params[
        "machine_id"
    ] == "machine_1"
    (note,) = _notes(runner, order_id)
    assert (note["effect"], note["outcome"], note["orders_read"]) == ("create_market_order", ABSENT, 1)
    market.assert_done()


def test_a_lost_create_the_market_holds_is_adopted_under_the_orders_pairing_only() -> None:
    market = ScriptedMarket(
        search_market=[search(quote("qt_1", price="0.80"))],
        create_market_order=[LOST],
        # The same quote id under another pairing is not this order's.
        list_market_orders=[
            _page(_order("qt_1", "mo_theirs", pairing_id="pair_2"), _order("qt_1", "mo_ours"))
        ],
    )
    runner = _runner(market)

    async def go() -> Any:
        order_id = await _to_quoted(runner)
        return await runner.step(order_id, "order")

    summary = asyncio.run(go())
    assert (summary.state, summary.market_order_id) == (S.ORDERED, "mo_ours")
    (note,) = _notes(runner, summary.order_id)
    assert (note["outcome"], note["market_order_id"]) == (ADOPTED, "mo_ours")
    ordered = next(e for e in asyncio.run(runner.store.events(summary.order_id)) if e.trigger == "order")
    assert ordered.payload["market_order_id"] == "mo_ours"  # as if the create had answered
    market.assert_done()


def test_a_lost_create_not_held_once_its_quote_expired_searches_again() -> None:
    def lost_slowly(call: Call) -> Exception:
        time.sleep(1.3)  # the answer is lost after the quote's last second
        return LOST

    market = ScriptedMarket(
        search_market=[
            search(quote("qt_1", price="0.80", expires_in=1.0)),
            search(quote("qt_2", price="0.80")),
        ],
        create_market_order=[lost_slowly],
        list_market_orders=[_page()],
    )
    runner = _runner(market)

    async def go() -> Any:
        order_id = await _to_quoted(runner)
        return await runner.step(order_id, "order")

    summary = asyncio.run(go())
    assert summary.state is S.SEARCHED  # a new search within the quote deadline, not a second create
    assert len(market.called("create_market_order")) == 1
    assert [n["outcome"] for n in _notes(runner, summary.order_id)] == [ABSENT]
    assert _notes(runner, summary.order_id, NOTE_QUOTE_EXPIRED) == [{"quote_id": "qt_1"}]
    market.assert_done()


def test_a_read_that_fails_for_good_sends_nothing_again_and_keeps_the_order() -> None:
    no_key = OrchestrationApiError("AUTH_REQUIRED", "x-api-key header required", status_code=401)
    market = ScriptedMarket(
        search_market=[search(quote("qt_1", price="0.80"))],
        create_market_order=[LOST],
        list_market_orders=[no_key] * 5,
    )
    runner = _runner(market)
    # The drive loop's rounds after a transient fault, without their waits.
    runner._loop._policy = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(5), wait=tenacity.wait_none()
    )

    async def go() -> Any:
        order_id = await _to_quoted(runner)
        return await runner.step(order_id, "order")

    summary = asyncio.run(go())
    # Not failed (a market order may exist) and never created twice: resumable once it can be read.
    assert summary.state is S.QUOTED
    assert (
        summary.error is not None and "read that tells whether it happened failed" in summary.error["message"]
    )
    assert len(market.called("create_market_order")) == 1
    assert len(market.called("list_market_orders")) == 5
    market.assert_done()


def test_a_crash_between_the_create_and_its_answer_reads_before_creating_on_resume() -> None:
    journal = memory_journal()
    market = ScriptedMarket(
        search_market=[search(quote("qt_1", price="0.80"))],
        list_market_orders=[_page(_order("qt_1", "mo_made"))],
    )
    crashing = _runner(market, journal, crash_hook=crash_after("intent:create_market_order"))

    async def first() -> str:
        order_id = await _to_quoted(crashing)
        with pytest.raises(Crash):
            await crashing.step(order_id, "order")
        return order_id

    order_id = asyncio.run(first())
    # The create may have gone out before the crash (it did not here): the resumed run reads first.
    resumed = _runner(market, journal)
    summary = asyncio.run(resumed.step(order_id, "order"))
    assert (summary.state, summary.market_order_id) == (S.ORDERED, "mo_made")
    assert market.called("create_market_order") == []
    assert [n["outcome"] for n in _notes(resumed, order_id)] == [ADOPTED]
    market.assert_done()


def test_an_undeclared_write_whose_answer_is_lost_is_never_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A write a new flow adds without a rule (its effect has a key, nobody said how to read it).
    monkeypatch.setitem(EFFECT_KEYS, "new_write", "new_write_key")  # type: ignore[arg-type]
    runner = _runner(ScriptedMarket())
    sent: list[str] = []

    async def send(token: Secret, key: str) -> str:
        sent.append(key)
        raise LOST

    async def go() -> None:
        order_id = await runner.submit(SPEC)
        async with runner._loop.holding(order_id) as run:
            fx = runner._fx
            with pytest.raises(TypeError, match="reconciled by reading"):
                await fx.write(run, "confirm_market_order", send, deadline=None)  # its read left out
            with pytest.raises(OrchestrationOutcomeUnknown):
                await fx.write(run, "new_write", send, deadline=datetime.max.replace(tzinfo=UTC))

    asyncio.run(go())
    assert len(sent) == 1  # raised, not repeated, though its deadline is far away


def _payment(status: str, **proof: Any) -> MarketPayment:
    now = format_at(datetime.now(UTC))
    return MarketPayment(
        id="pay_1",
        order_id="mo_1",
        machine_id="machine_1",
        status=status,
        rail=PaymentRailDetails(rail_type="wallet", chain=CHAIN),
        created_at=now,
        updated_at=now,
        proof=PaymentProof(**proof) if proof else None,
    )


def _read(read: Any, *answers: Any) -> list[Any]:
    """What ``read`` says for each scripted answer of the market."""
    return [asyncio.run(read(Secret("a.b.c"))) for _ in answers]


def test_each_read_says_adopted_only_for_what_its_write_would_have_left() -> None:
    tx = "0x" + "ab" * 32
    payments = [
        _payment("intent_created"),
        _payment("held", transaction_hash="0x" + "cd" * 32),  # another transaction's proof
        _payment("held", transaction_hash=tx.upper().replace("0X", "0x")),  # the same hash in any case
        _payment("released", transaction_hash=tx),
    ]
    market = ScriptedMarket(get_market_payment=payments)
    outcomes = [r.outcome for r in _read(Reads(market).proof("mo_1", tx), *payments)]
    assert outcomes == [ABSENT, ABSENT, ADOPTED, ADOPTED]
    # An x402 proof is named by its authorization's nonce (no transaction before the market settles).
    nonce = "0x" + "0f" * 32
    x402 = [
        _payment("held", metadata={"nonce": "0x" + "1f" * 32}),
        _payment("held", metadata={"nonce": nonce}),
    ]
    market = ScriptedMarket(get_market_payment=x402)
    assert [r.outcome for r in _read(Reads(market).authorization("mo_1", nonce), *x402)] == [ABSENT, ADOPTED]
    releases = [_payment("release_pending"), _payment("released")]
    market = ScriptedMarket(get_market_payment=releases)
    assert [r.outcome for r in _read(Reads(market).release("mo_1"), *releases)] == [ABSENT, ADOPTED]


def test_the_execution_read_waits_on_a_running_order_and_adopts_a_handoff() -> None:
    from dataclasses import replace

    from buyer_agent.market import ExternalHandoff, HandoffExecution

    orders = [
        replace(_order("qt_1"), status="ready"),
        replace(_order("qt_1"), status="executing"),
        replace(
            _order("qt_1"), status="handoff", handoff=ExternalHandoff("provider", "https://example.test")
        ),
    ]
    market = ScriptedMarket(get_market_order=orders)
    ready, running, handed = _read(Reads(market).execution("mo_1"), *orders)
    assert (ready.outcome, running.outcome, handed.outcome) == (ABSENT, PENDING, ADOPTED)
    assert isinstance(handed.answer.execution, HandoffExecution)
