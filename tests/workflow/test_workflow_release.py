"""Confirm, release and the rail type as documented (issue 14, dialects 2 and 3), on the real sandbox.

Confirm leaves a held payment ``release_pending`` and the buyer's ``payment/release`` closes it; the
intent asks for ``wdk-usdt-transfer`` where the quote supports it, as the official client does. A
market of the older dialect (``released`` at confirm, ``wallet`` kept, no ``wdk-usdt-transfer``
offered), simulated by a proxy that rewrites the sandbox's answers, is served as well.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback_proxy import LoopbackProxy

from buyer_agent import Money
from buyer_agent.history import order_summary
from buyer_agent.journal import Journal
from buyer_agent.workflow import Acceptance, OrderSpec, OrderState, fold
from buyer_agent.workflow._payment_facts import intent_rail_type

pytestmark = pytest.mark.chains

SCHEMA = {"type": "object", "required": ["sha256"], "properties": {"sha256": {"type": "string"}}}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[dict[str, Any]]:
    from buyer_agent.sandbox import Sandbox

    box = Sandbox()
    info = box.start()
    try:
        yield dict(info.to_json())
    finally:
        box.stop()


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "input": {"data": "release"},
        "budget": Money.parse("2.50 USDC"),
        "rail": "wallet",
        "chain": "evm",
        "acceptance": Acceptance(json_schema=SCHEMA),
    }
    base.update(kw)
    return OrderSpec(**base)


def buy(info: dict[str, Any], db: Path, order: OrderSpec, url: str | None = None) -> Any:
    from buyer_agent.market import AsyncMarketClient
    from buyer_agent.rails import EvmRail
    from buyer_agent.workflow import PairingSession
    from buyer_agent.workflow._runner import Runner

    async def go() -> Any:
        journal = Journal(db)
        market = AsyncMarketClient(url or info["url"], api_key=info["api_key"])
        key = info["wallets"]["evm"]["private_key"]
        evm = EvmRail(info["evm"]["rpc_url"], key, chain=info["evm"]["chain"], nonce_store=journal)
        pairing = PairingSession.with_platform_key(
            market, machine_id=info["machine_id"], agent_key=key, store=journal
        )
        runner = Runner(market=market, journal=journal, rails=[evm], pairing=pairing, poll_interval=0.05)
        try:
            summary = await runner.buy(order)
            # The one fold gives the row's context and the same summary (show, orders, the tools).
            facts = fold(journal.events(summary.order_id))
            assert facts.payment_status == journal.order(summary.order_id).context.get("payment_status")
            assert order_summary(facts, str(journal.path)).to_json() == summary.to_json()
            return summary
        finally:
            await evm.aclose()
            await market.aclose()
            journal.close()

    return asyncio.run(go())


def market_payment(info: dict[str, Any], market_order_id: str) -> dict[str, Any]:
    import httpx

    r = httpx.get(
        f"{info['url']}/api/v1/market/orders/{market_order_id}/payment",
        headers={"x-api-key": info["api_key"]},
        timeout=30,
    )
    item: dict[str, Any] = r.json()["item"]
    return item


def test_the_intent_asks_for_wdk_usdt_transfer_only_where_the_quote_supports_it() -> None:
    assert intent_rail_type("wallet", ["wallet", "wdk-usdt-transfer"]) == "wdk-usdt-transfer"
    assert intent_rail_type("wallet", ["wallet"]) == "wallet"
    assert intent_rail_type("wallet", None) == "wallet"
    assert intent_rail_type("onchain-escrow", ["onchain-escrow", "wdk-usdt-transfer"]) == "onchain-escrow"


def test_a_direct_order_confirms_then_releases_its_payment(sandbox: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    summary = buy(sandbox, db, spec())
    assert summary.state is OrderState.CONFIRMED, summary.error
    # The order's summary shows the final payment status, as the market has it: released.
    assert summary.payment["status"] == "released"
    events = Journal(db).events(summary.order_id)
    triggers = [e.trigger for e in events]
    assert triggers.index("result:confirm_market_order") < triggers.index("intent:release_payment")
    assert triggers[-1] == "confirm"
    confirmed = next(e for e in events if e.trigger == "result:confirm_market_order")
    assert confirmed.payload["payment_status"] == "release_pending"
    assert events[-1].payload == {"payment": "released", "payment_status": "released"}
    # The intent was asked for as the official client asks: wdk-usdt-transfer (the quote lists it).
    intent = next(e for e in events if e.trigger == "result:create_payment_intent").payload["intent"]
    assert intent["rail"]["type"] == "wdk-usdt-transfer"
    paid = market_payment(sandbox, summary.market_order_id)
    assert paid["status"] == "released" and paid["rail"]["type"] == "wdk-usdt-transfer"


class OlderMarket(LoopbackProxy):
    """The sandbox as a market of the older dialect: it offers only ``wallet``, keeps ``wallet``
    after a proof, and answers ``released`` at confirm (so there is nothing to release)."""

    def __init__(self, upstream: str) -> None:
        self.intent_types: list[str | None] = []
        self.released = 0
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self.body(req)
        path = req.path.split("?")[0]
        if path.endswith("/payment/release"):
            self.released += 1
        if path.endswith("/payment-intent") and body:
            self.intent_types.append((json.loads(body).get("rail") or {}).get("type"))
        status, ctype, data = self.forward(req.command, req.path, body, dict(req.headers.items()))
        if status == 200 and data:
            answer = json.loads(data)
            self._older(path, answer)
            data = json.dumps(answer).encode()
        self.reply(req, status, ctype, data)

    @staticmethod
    def _older(path: str, answer: dict[str, Any]) -> None:
        if path.endswith("/market/search"):
            for quote in answer["item"]["quotes"]:
                quote["payment"]["supportedRails"] = [quote["payment"]["defaultRail"]]
        for payment in (answer.get("item"), answer.get("payment")):
            if isinstance(payment, dict) and isinstance(payment.get("rail"), dict):
                if payment["rail"].get("type") == "wdk-usdt-transfer":
                    payment["rail"]["type"] = "wallet"
                if path.endswith("/confirm") and payment.get("status") == "release_pending":
                    payment["status"] = "released"


def test_a_market_that_releases_at_confirm_is_served_as_well(sandbox: dict[str, Any], tmp_path: Path) -> None:
    proxy = OlderMarket(sandbox["url"])
    try:
        summary = buy(sandbox, tmp_path / "o.db", spec(), url=proxy.address)
    finally:
        proxy.close()
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert summary.payment["status"] == "released"
    assert proxy.intent_types == ["wallet"]  # no wdk-usdt-transfer offered: the default rail
    assert proxy.released == 0  # released at confirm: nothing left to release
    triggers = [e.trigger for e in Journal(tmp_path / "o.db").events(summary.order_id)]
    assert "intent:release_payment" not in triggers and triggers[-1] == "confirm"
