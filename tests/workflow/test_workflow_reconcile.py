"""Each market write's answer lost after the market committed it: the agent reads, adopts, never repeats.

The sandbox deduplicates nothing (its default, as peaq's docs promise no idempotency key); a loopback
proxy (:class:`loopback_proxy.CommitThenDrop`) lets it commit one write and then loses the answer: the
connection closed, held past the client's timeout, or a gateway's 502. Each test asserts what the
market itself holds afterwards — one market order for the journaled order, the service executed once
(its ``market.order.executed`` audit events), one payment (token transfers on anvil, one payment
record) — that the write went out only as often as the client may repeat it, and that the order reads
as one that never failed except for its journaled ``note:reconciled``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback_proxy import CommitThenDrop, Drop

from buyer_agent import Money
from buyer_agent.history import order_summary
from buyer_agent.journal import Journal
from buyer_agent.market import _transport
from buyer_agent.workflow import Acceptance, Deadlines, OrderSpec, OrderState, fold
from buyer_agent.workflow._names import ADOPTED, NOTE_RECONCILED, PENDING

pytestmark = pytest.mark.chains

SCHEMA = {"type": "object", "required": ["sha256"], "properties": {"sha256": {"type": "string"}}}
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#: How long a ``timeout`` drop holds the answer, and the client's write timeout while it does.
HOLD_S, CLIENT_TIMEOUT_S = 2.5, 1.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[dict[str, Any]]:
    from buyer_agent.sandbox import Sandbox

    box = Sandbox(solana=False)  # idempotency off: the default
    info = box.start()
    try:
        yield dict(info.to_json())
    finally:
        box.stop()


@pytest.fixture()
def proxy(sandbox: dict[str, Any]) -> Iterator[CommitThenDrop]:
    p = CommitThenDrop(sandbox["url"], hold_s=HOLD_S)
    yield p
    p.close()


@pytest.fixture()
def short_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client gives a write 1 s, so a ``timeout`` drop (held 2.5 s) times out on the client's side."""
    monkeypatch.setattr(_transport, "WRITE_TIMEOUT_S", CLIENT_TIMEOUT_S)


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "input": {"data": "reconcile"},
        "budget": Money.parse("2.50 USDC"),
        "rail": "wallet",
        "chain": "evm",
        "acceptance": Acceptance(json_schema=SCHEMA),
    }
    base.update(kw)
    return OrderSpec(**base)


def buy(info: dict[str, Any], db: Path, order: OrderSpec, url: str) -> Any:
    """Buy through ``url`` (the proxy); the summary, checked against the one fold of its journal."""
    from buyer_agent.market import AsyncMarketClient
    from buyer_agent.rails import EvmRail
    from buyer_agent.workflow import PairingSession
    from buyer_agent.workflow._runner import Runner

    async def go() -> Any:
        journal = Journal(db)
        market = AsyncMarketClient(url, api_key=info["api_key"])
        key = info["wallets"]["evm"]["private_key"]
        evm = EvmRail(info["evm"]["rpc_url"], key, chain=info["evm"]["chain"], nonce_store=journal)
        pairing = PairingSession.with_platform_key(
            market, machine_id=info["machine_id"], agent_key=key, store=journal
        )
        runner = Runner(market=market, journal=journal, rails=[evm], pairing=pairing, poll_interval=0.05)
        try:
            summary = await runner.buy(order)
            # What `show`, `orders`, replay and the tools read (the fold) is what the run returned.
            assert order_summary(fold(journal.events(summary.order_id)), str(journal.path)).to_json() == (
                summary.to_json()
            )
            journal.verify(summary.order_id)
            return summary
        finally:
            await evm.aclose()
            await market.aclose()
            journal.close()

    return asyncio.run(go())


# --- what the market holds ---------------------------------------------------------------------


def _platform(info: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=info["url"] + "/api/v1", headers={"x-api-key": info["api_key"]}, timeout=30)


def market_orders_for(info: dict[str, Any], db: Path, order_id: str) -> list[str]:
    """The market orders holding any quote the journaled order was offered (its own searches' quotes)."""
    quotes = {
        q["quote_id"]
        for e in Journal(db).events(order_id)
        if e.trigger == "search"
        for q in e.payload.get("quotes") or ()
    }
    with _platform(info) as api:
        held, cursor = [], None
        while True:
            page = api.get(
                "/market/orders", params={"machineId": info["machine_id"], "limit": "500", "cursor": cursor}
            ).json()
            held += [o["id"] for o in page["items"] if o["quoteId"] in quotes]
            cursor = page["nextCursor"]
            if cursor is None:
                return held


def audit_count(info: dict[str, Any], resource_id: str, kind: str) -> int:
    with _platform(info) as api:
        items = api.get("/audit-events", params={"resourceId": resource_id, "limit": "500"}).json()["items"]
    return sum(1 for e in items if e["type"] == kind)


def payment_of(info: dict[str, Any], market_order_id: str) -> dict[str, Any]:
    with _platform(info) as api:
        item: dict[str, Any] = api.get(f"/market/orders/{market_order_id}/payment").json()["item"]
    return item


def transfers_from(info: dict[str, Any]) -> int:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    payer = info["wallets"]["evm"]["address"]
    logs = w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": Web3.to_checksum_address(info["evm"]["token_address"]),
            "topics": [TRANSFER_TOPIC, "0x" + "0" * 24 + payer.lower().removeprefix("0x")],
        }
    )
    return len(logs)


def reconciled(db: Path, order_id: str) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in Journal(db).events(order_id) if e.trigger == NOTE_RECONCILED]


def check_market(info: dict[str, Any], db: Path, summary: Any, paid_before: int) -> None:
    """One market order for the journaled order, the service run once, one payment."""
    assert market_orders_for(info, db, summary.order_id) == [summary.market_order_id]
    assert audit_count(info, summary.market_order_id, "market.order.executed") == 1
    assert transfers_from(info) == paid_before + 1
    payment = payment_of(info, summary.market_order_id)
    assert audit_count(info, payment["id"], "market.payment.intent-created") == 1


def adopted(db: Path, summary: Any, effect: str) -> dict[str, Any]:
    """The one journaled read of ``effect``: it found the write done and adopted it."""
    notes = reconciled(db, summary.order_id)
    assert [n["effect"] for n in notes] == [effect], notes
    assert notes[0]["outcome"] == ADOPTED
    return notes[0]


# --- one test per write ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "timeout", "502"])
def test_a_lost_create_is_adopted_never_placed_twice(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path, how: Drop, short_writes: None
) -> None:
    paid = transfers_from(sandbox)
    proxy.arm("POST", r"^/market/orders$", how)
    summary = buy(sandbox, tmp_path / "j.db", spec(), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"^/market/orders$") == 1  # read, found, never sent again
    note = adopted(tmp_path / "j.db", summary, "create_market_order")
    assert note["market_order_id"] == summary.market_order_id
    assert note["read"].startswith("GET /market/orders?machineId=")
    check_market(sandbox, tmp_path / "j.db", summary, paid)


def test_a_lost_payment_proof_is_adopted(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path
) -> None:
    paid = transfers_from(sandbox)
    proxy.arm("POST", r"/payment-proof$", "502")
    summary = buy(sandbox, tmp_path / "j.db", spec(), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"/payment-proof$") == 1
    note = adopted(tmp_path / "j.db", summary, "submit_payment_proof")
    assert note["proof_tx"].lower() == summary.payment["tx"].lower()
    assert (
        audit_count(
            sandbox, payment_of(sandbox, summary.market_order_id)["id"], "market.payment.proof-recorded"
        )
        == 1
    )
    check_market(sandbox, tmp_path / "j.db", summary, paid)


def test_a_lost_escrow_lock_is_adopted(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path, short_writes: None
) -> None:
    paid = transfers_from(sandbox)
    # Documented idempotent for held, so the client itself repeats it: lose all of its 4 tries.
    proxy.arm("POST", r"/payment/escrow-lock$", "timeout", times=4)
    summary = buy(sandbox, tmp_path / "j.db", spec(rail="onchain-escrow"), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"/payment/escrow-lock$") == 4  # the client's tries; none after the read
    note = adopted(tmp_path / "j.db", summary, "lock_escrow_payment")
    assert note["payment_status"] == "held"
    assert (
        audit_count(sandbox, payment_of(sandbox, summary.market_order_id)["id"], "market.payment.escrow-held")
        == 1
    )
    check_market(sandbox, tmp_path / "j.db", summary, paid)


@pytest.mark.parametrize("how", ["close", "502"])
def test_a_lost_execute_adopts_the_outcome_never_runs_twice(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path, how: Drop
) -> None:
    paid = transfers_from(sandbox)
    proxy.arm("POST", r"/execute$", how)
    summary = buy(sandbox, tmp_path / "j.db", spec(), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"/execute$") == 1
    note = adopted(tmp_path / "j.db", summary, "execute_market_order")
    assert note["market_order_status"] == "delivered"
    # The outcome adopted is the one the market ran: the real SHA-256 of the input, its outcome id.
    import hashlib

    assert summary.outcome["result"]["sha256"] == hashlib.sha256(b"reconcile").hexdigest()
    assert summary.outcome["id"] == note["outcome_id"]
    check_market(sandbox, tmp_path / "j.db", summary, paid)


def test_a_lost_confirm_is_adopted(sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path) -> None:
    paid = transfers_from(sandbox)
    proxy.arm("POST", r"/confirm$", "502")
    summary = buy(sandbox, tmp_path / "j.db", spec(), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"/confirm$") == 1
    note = adopted(tmp_path / "j.db", summary, "confirm_market_order")
    assert (note["market_order_status"], note["payment_status"]) == ("confirmed", "release_pending")
    assert summary.payment["status"] == "released"  # and the release that follows a confirm went out
    assert audit_count(sandbox, summary.market_order_id, "market.order.confirmed") == 1
    check_market(sandbox, tmp_path / "j.db", summary, paid)


@pytest.mark.parametrize("rail", ["wallet", "onchain-escrow"])
def test_a_lost_release_is_adopted(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path, rail: str, short_writes: None
) -> None:
    paid = transfers_from(sandbox)
    proxy.arm("POST", r"/payment/release$", "timeout")
    summary = buy(sandbox, tmp_path / "j.db", spec(rail=rail), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"/payment/release$") == 1
    note = adopted(tmp_path / "j.db", summary, "release_payment")
    assert note["payment_status"] == "released" == summary.payment["status"]
    payment = payment_of(sandbox, summary.market_order_id)
    assert audit_count(sandbox, payment["id"], "market.payment.released") == 1
    check_market(sandbox, tmp_path / "j.db", summary, paid)


def test_a_lost_dispute_is_adopted_with_its_id(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path
) -> None:
    paid = transfers_from(sandbox)
    proxy.arm("POST", r"/dispute$", "close")
    # The service answers what the acceptance refuses: the order disputes, and is refunded.
    summary = buy(
        sandbox,
        tmp_path / "j.db",
        spec(
            rail="onchain-escrow", acceptance=Acceptance(json_schema={"type": "object", "required": ["nope"]})
        ),
        proxy.address,
    )
    assert summary.state is OrderState.REFUNDED, summary.error
    assert proxy.count("POST", r"/dispute$") == 1  # a second dispute would have been refused: closed
    note = adopted(tmp_path / "j.db", summary, "dispute_market_order")
    assert note["market_order_status"] == "disputed" and note["dispute_id"].startswith("dsp_")
    events = Journal(tmp_path / "j.db").events(summary.order_id)
    dispute = next(e for e in events if e.trigger == "dispute")
    assert dispute.payload["dispute_id"] == note["dispute_id"]  # the market's dispute, as if answered
    assert audit_count(sandbox, summary.market_order_id, "market.order.disputed") == 1
    check_market(sandbox, tmp_path / "j.db", summary, paid)


def test_without_a_lost_answer_nothing_is_read(
    sandbox: dict[str, Any], proxy: CommitThenDrop, tmp_path: Path
) -> None:
    summary = buy(sandbox, tmp_path / "j.db", spec(), proxy.address)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert reconciled(tmp_path / "j.db", summary.order_id) == []
    assert proxy.count("GET", r"^/market/orders$") == 0  # the pairing's orders are read only after a loss


class StillRunning(CommitThenDrop):
    """Also shows the owner's view of an order as ``executing`` (no execution yet) ``times`` times."""

    def __init__(self, upstream: str, times: int) -> None:
        self.running = times
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?")[0]
        owner = bool(req.headers.get("x-agent-pairing-token"))
        if (
            req.command != "GET"
            or not owner
            or not re.search(r"/market/orders/[^/]+$", path)
            or not self.running
        ):
            super().handle(req)
            return
        self.running -= 1
        status, ctype, data = self.forward(req.command, req.path, None, dict(req.headers.items()))
        doc = json.loads(data)
        doc["item"]["status"] = "executing"
        doc["item"].pop("execution", None)
        self.reply(req, status, ctype, json.dumps(doc).encode())


def test_an_execution_still_running_is_waited_for_then_adopted(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    paid = transfers_from(sandbox)
    proxy = StillRunning(sandbox["url"], times=3)
    try:
        proxy.arm("POST", r"/execute$", "close")
        summary = buy(sandbox, tmp_path / "j.db", spec(), proxy.address)
    finally:
        proxy.close()
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert proxy.count("POST", r"/execute$") == 1
    notes = reconciled(tmp_path / "j.db", summary.order_id)
    # The wait is journaled once (not every poll), then the outcome the market shows is adopted.
    assert [(n["effect"], n["outcome"]) for n in notes] == [
        ("execute_market_order", PENDING),
        ("execute_market_order", ADOPTED),
    ]
    check_market(sandbox, tmp_path / "j.db", summary, paid)


def test_an_execution_that_never_shows_an_outcome_is_disputed_at_its_deadline_not_run_again(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    proxy = StillRunning(sandbox["url"], times=10**6)
    try:
        proxy.arm("POST", r"/execute$", "close")
        order = spec(deadlines=Deadlines(execution=3.0))
        summary = buy(sandbox, tmp_path / "j.db", order, proxy.address)
    finally:
        proxy.close()
    # No outcome reached the buyer within the deadline: disputed (and refunded), the service run once.
    assert summary.state is OrderState.REFUNDED, summary.error
    assert proxy.count("POST", r"/execute$") == 1
    assert audit_count(sandbox, summary.market_order_id, "market.order.executed") == 1
    notes = reconciled(tmp_path / "j.db", summary.order_id)
    assert ("execute_market_order", PENDING) in [(n["effect"], n["outcome"]) for n in notes]
    events = Journal(tmp_path / "j.db").events(summary.order_id)
    dispute = next(e for e in events if e.trigger == "dispute")
    assert "execution did not complete within 3 s" in dispute.payload["reason"]
