"""The no-payment flow on the real sandbox: order → execute → accept → confirm, nothing signed or paid.

A free quote (``defaultRail`` ``not-required``, ``required`` false) goes ``ordered → executed`` through
the table's own row; the readers (summary, timeline, evidence, replay, what-if, the dashboard) and the
tools know the path. A market order that asks for a payment after a free quote (rewritten by a proxy)
is refused before anything runs: ``PRICE_CHANGED`` naming the field, journaled, nothing paid.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback_proxy import LoopbackProxy

from buyer_agent import BuyerAgent, Money, load_task
from buyer_agent.history import build_evidence, build_timeline, render_timeline, replay_order, what_if
from buyer_agent.workflow import Acceptance, OrderSpec, OrderState, fold

pytestmark = pytest.mark.chains

ROOT = Path(__file__).resolve().parents[2]
S = OrderState
SCHEMA = {"type": "object", "required": ["sha256"], "properties": {"sha256": {"type": "string"}}}
FREE_PATH = [
    "submit",
    "pair",
    "intent:search_market",
    "search",
    "choose",
    "intent:create_market_order",
    "order",
    "intent:execute_market_order",
    "execute_free",
    "result:acceptance",
    "intent:confirm_market_order",
    "result:confirm_market_order",
    "confirm",
]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("free"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256-free",
        "input": {"data": "free"},
        "budget": Money.parse("1.00 USDC"),
        "acceptance": Acceptance(json_schema=SCHEMA),
    }
    base.update(kw)
    return OrderSpec(**base)


def agent_on(box: Any, market: str, state_dir: Path, order: OrderSpec | None = None) -> BuyerAgent:
    info = box.info
    return BuyerAgent(
        market,
        machine_id=info.machine_id,
        api_key=info.api_key,
        evm_key=info.evm_private_key,
        evm_rpc=info.evm_rpc_url,
        state_dir=state_dir,
        spec=order,
    )


def chain_view(box: Any) -> tuple[int, int, int]:
    """The buyer's nonce, sandbox USDC and x402 USDC on anvil: any payment moves one of them."""
    from web3 import Web3

    info = box.info
    w3 = Web3(Web3.HTTPProvider(info.evm_rpc_url))
    nonce = int(w3.eth.get_transaction_count(Web3.to_checksum_address(info.evm_address)))
    return nonce, int(box.evm.usdc_balance(info.evm_address)), int(box.evm.x402_balance(info.evm_address))


def market_payment(box: Any, market_order_id: str) -> Any:
    from buyer_agent.market import MarketClient

    with MarketClient(box.info.url, api_key=box.info.api_key.reveal()) as market:
        return market.get_market_payment(market_order_id).item


def test_a_free_order_is_ordered_executed_and_confirmed_with_nothing_paid(box: Any, tmp_path: Path) -> None:
    before = chain_view(box)

    async def go() -> tuple[Any, Any, Any, Any]:
        async with agent_on(box, box.info.url, tmp_path) as agent:
            summary = await agent.buy(spec())
            journal = agent.journal
            events = journal.events(summary.order_id)
            journal.verify(summary.order_id)
            row = journal.order(summary.order_id)
            ledger = journal.ledger_entry(summary.order_id)
            return summary, events, row, ledger

    summary, events, row, ledger = asyncio.run(go())
    assert summary.state is S.CONFIRMED, summary.error
    assert [e.trigger for e in events] == FREE_PATH
    # ordered → executed through the table, never through paying or paid.
    moves = [(e.src, e.dst) for e in events if e.src != e.dst]
    assert ("ordered", "executed") in moves and not any("pay" in d for _, d in moves)
    # Nothing signed, sent or proven: no intent at the market, the buyer's chain state unchanged,
    # the budget ledger untouched.
    assert market_payment(box, str(summary.market_order_id)) is None
    assert chain_view(box) == before
    assert ledger is None
    assert summary.payment is not None and summary.payment["rail"] == "not-required"
    assert summary.payment["tx"] is None and summary.payment["amount"] == "0.00"
    assert summary.outcome is not None and summary.outcome["status"] == "completed"
    # What the market order said of its payment is a fact of the fold (tests/workflow/
    # test_workflow_facts.py shows the fold of a free order is its row's context).
    facts = fold(events)
    assert facts.market_order_id == row.context["market_order_id"]
    assert facts.market_order_payment == {"required": False, "default_rail": "not-required", "amount": None}


def test_the_readers_know_the_no_payment_path(box: Any, tmp_path: Path) -> None:
    from buyer_agent.dashboard._data import DashboardData
    from buyer_agent.journal import SqliteStore

    async def go() -> tuple[Any, Any, Any]:
        async with agent_on(box, box.info.url, tmp_path) as agent:
            summary = await agent.buy(spec())
            replayed = replay_order(agent.journal, summary.order_id)
            data = DashboardData(SqliteStore(agent.journal))
            view = await data.order(summary.order_id)
            return summary, replayed, view

    summary, replayed, view = asyncio.run(go())
    assert replayed.verified and replayed.state == "confirmed", replayed.breakage
    timeline = build_timeline(replayed.events)
    assert [s["state"] for s in timeline["states"]] == [
        "created", "paired", "searched", "quoted", "ordered", "executed", "confirmed",
    ]  # fmt: skip
    assert timeline["payment"] == {"rail": "not-required", "chain": None, "amount": None, "payee": None}
    assert timeline["spent"] is None and timeline["transactions"] == []
    text = render_timeline(summary.order_id, "confirmed", timeline)
    assert "payment: none (not-required): nothing was signed or paid" in text
    evidence = build_evidence(replayed.events, reason="checking")
    assert evidence["payment"] == {"tx": None, "txs": [], "proof": None}
    assert evidence["journal"]["outcome"]["seq"] == FREE_PATH.index("execute_free") + 1
    alt = what_if(replayed.events, "cheapest")
    assert alt["same"] and alt["recorded"]["service_id"] == "svc_hash_free"
    assert view is not None and view.row.rail == "not-required" and view.row.state == "confirmed"


def test_steps_follow_the_free_row_pay_is_refused_execute_runs(box: Any, tmp_path: Path) -> None:
    from buyer_agent._errors import StateError

    async def go() -> list[Any]:
        seen: list[Any] = []
        async with agent_on(box, box.info.url, tmp_path) as agent:
            order_id = await agent.submit(spec())
            for step in (agent.pair, agent.search, agent.choose, agent.place_order):
                await step(order_id)
            seen.append(agent.allowed_actions(order_id))
            with pytest.raises(StateError) as refused:
                await agent.pay(order_id)
            seen.append(refused.value.allowed)
            seen.append((await agent.execute(order_id)).state)
            seen.append((await agent.confirm(order_id)).state)
        return seen

    allowed, refused_allowed, executed, confirmed = asyncio.run(go())
    assert allowed == ["execute"] and refused_allowed == ["execute"]
    assert executed is S.EXECUTED and confirmed is S.CONFIRMED


def test_a_free_delivery_that_fails_acceptance_is_disputed_and_rests(box: Any, tmp_path: Path) -> None:
    strict = Acceptance(json_schema={"type": "object", "required": ["missing"]})

    async def go() -> tuple[Any, list[Any], list[str]]:
        async with agent_on(box, box.info.url, tmp_path) as agent:
            summary = await agent.buy(spec(acceptance=strict))
            events = agent.journal.events(summary.order_id)
            # Nothing was paid, so nothing is waited for: a resume leaves it where it is at once.
            again = await agent.resume(summary.order_id)
            return summary, events, [s.state.value for s in again]

    summary, events, resumed = asyncio.run(go())
    assert summary.state is S.DISPUTED and summary.error is not None
    assert "acceptance" in summary.error["message"]
    assert [e.trigger for e in events][-3:] == ["result:acceptance", "intent:dispute_market_order", "dispute"]
    assert resumed == ["disputed"]


class Rewriter(LoopbackProxy):
    """Forwards to the market; ``change(path, doc)`` may rewrite each 2xx JSON answer."""

    def __init__(self, upstream: str, change: Callable[[str, Any], None]) -> None:
        self.change = change
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        status, ctype, data = self.forward(req.command, req.path, self.body(req), dict(req.headers.items()))
        if 200 <= status < 300 and data:
            doc = json.loads(data)
            self.change(req.path, doc)
            data = json.dumps(doc).encode()
        self.reply(req, status, ctype, data)


def paid_after_all(path: str, doc: Any) -> None:
    """The market order of a free quote now asks for a payment."""
    if path == "/api/v1/market/orders" and isinstance(doc.get("item"), dict):
        doc["item"]["payment"]["required"] = True


def test_a_free_quote_whose_order_asks_for_payment_is_refused_before_anything_runs(
    box: Any, tmp_path: Path
) -> None:
    before = chain_view(box)
    proxy = Rewriter(box.info.url, paid_after_all)

    async def go() -> tuple[Any, list[Any]]:
        try:
            async with agent_on(box, proxy.address, tmp_path) as agent:
                summary = await agent.buy(spec())
                agent.journal.verify(summary.order_id)
                return summary, agent.journal.events(summary.order_id)
        finally:
            proxy.close()

    summary, events = asyncio.run(go())
    assert summary.state is S.FAILED
    assert summary.error is not None and summary.error["code"] == "PRICE_CHANGED", summary.error
    assert "payment.required" in summary.error["message"]
    fail = events[-1]
    assert fail.trigger == "fail" and fail.payload["field"] == "payment.required"
    triggers = [e.trigger for e in events]
    never = ("intent:create_payment_intent", "pay", "intent:execute_market_order")
    assert not any(t in triggers for t in never)
    assert chain_view(box) == before
    # The market order was never run: it still waits for its (free) execution.
    from buyer_agent.market import MarketClient

    with MarketClient(box.info.url, api_key=box.info.api_key.reveal()) as market:
        assert market.get_market_order(str(summary.market_order_id)).item.status == "created"


def test_a_model_buys_a_free_service_through_the_tools(box: Any, tmp_path: Path) -> None:
    task = load_task(ROOT / "examples" / "free.yaml", env={})
    info = box.info

    async def go() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async with agent_on(box, info.url, tmp_path, replace(task.spec)) as agent:
            found = await agent.call_tool("search_market", {})
            order_id = found["order_id"]
            out.append(found)
            out.append(await agent.call_tool("choose_quote", {"order_id": order_id}))
            out.append(await agent.call_tool("place_order", {"order_id": order_id}))
            out.append(await agent.call_tool("pay_order", {"order_id": order_id}))
            out.append(await agent.call_tool("execute_order", {"order_id": order_id}))
            out.append(await agent.call_tool("confirm_order", {"order_id": order_id}))
        return out

    found, chosen, placed, paid, executed, confirmed = asyncio.run(go())
    assert found["recommended"] is not None and chosen["state"] == "quoted"
    assert placed["state"] == "ordered" and placed["next"][0] == "execute_order", placed
    assert "execute_order" in placed["hint"] and "pay_order" not in placed["next"]
    assert paid["error"]["code"] == "STEP_OUT_OF_ORDER" and "execute_order" in paid["error"]["allowed"]
    assert executed["state"] == "executed" and confirmed["state"] == "confirmed", confirmed
    assert confirmed["payment"]["rail"] == "not-required" and confirmed["payment"]["tx"] is None
