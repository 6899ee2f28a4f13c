"""x402 (v2, ``exact``, EVM) on the real stack: the sandbox market over HTTP, anvil, the EIP-3009 token.

The agent signs the authorization locally (its signer, its typed data, its encoding), journals it
before it leaves the process, proves it, executes (the market settles), reads the settlement from the
chain and confirms. Every disagreement between the quote, the intent, the challenge and the pinned
token is refused before signing, naming the field. A resumed order sends the same authorization; a
new one is signed only when the old one expired on chain unused; an execution the chain does not show
settled is disputed with that evidence.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from loopback_proxy import CommitThenDrop, LoopbackProxy
from web3 import Web3

from buyer_agent import BuyerAgent, Money
from buyer_agent.networks import agent_networks, sandbox_profiles
from buyer_agent.workflow import Acceptance, Deadlines, OrderSpec, OrderState, fold
from buyer_agent.workflow._crashpoint import Crash, crash_after

pytestmark = pytest.mark.chains

S = OrderState
PRICE = 750_000
SCHEMA = {"type": "object", "required": ["sha256"], "properties": {"sha256": {"type": "string"}}}
TRANSFER = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()
USED = "0x" + Web3.keccak(text="AuthorizationUsed(address,bytes32)").hex()
OTHER = "0x000000000000000000000000000000000000bad3"
INTENT = "/payment-intent"
X402_PATH = [
    "submit", "pair", "intent:search_market", "search", "choose", "intent:create_market_order", "order",
    "intent:create_payment_intent", "result:create_payment_intent", "pay", "intent:submit_payment_proof",
    "paid", "intent:execute_market_order", "execute", "result:x402_settlement", "result:acceptance",
    "intent:confirm_market_order", "result:confirm_market_order", "intent:release_payment", "confirm",
]  # fmt: skip


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("x402"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "input": {"data": "x402"},
        "budget": Money.parse("1.00 USDC"),
        "rail": "x402",
        "chain": "evm",
        "strategy": "cheapest",
        "acceptance": Acceptance(json_schema=SCHEMA),
    }
    base.update(kw)
    return OrderSpec(**base)


def wallet(box: Any, *, x402: int = 5 * PRICE) -> tuple[str, str]:
    """A fresh buyer wallet with gas, test USDC and ``x402`` base units of the EIP-3009 USDC."""
    account = Account.create()
    box.evm.fund(account.address, usdc=5_000_000, x402_usdc=x402)
    return account.address, account.key.to_0x_hex()


def agent_for(
    box: Any, key: str, state_dir: Path, market: str | None = None, order: OrderSpec | None = None
) -> BuyerAgent:
    info = box.info
    return BuyerAgent(
        market or info.url,
        machine_id=info.machine_id,
        api_key=info.api_key,
        evm_key=key,
        evm_rpc=info.evm_rpc_url,
        state_dir=state_dir,
        networks=agent_networks().extend(sandbox_profiles(info)),
        spec=order,
    )


def buy(
    box: Any,
    key: str,
    state_dir: Path,
    order: OrderSpec,
    *,
    market: str | None = None,
    crash: str | None = None,
) -> tuple[Any, list[Any]]:
    """Buy; with ``crash``, stop right after that event and return the journal as the crash left it."""

    async def go() -> tuple[Any, list[Any]]:
        async with agent_for(box, key, state_dir, market) as agent:
            await agent.start()
            if crash is not None:
                assert agent._conn is not None
                agent._conn.runner._crash_hook = crash_after(crash)
            try:
                summary = await agent.buy(order)
            except Crash:
                summary = None
            (order_id,) = [o.order_id for o in agent.journal.orders()]
            assert agent.journal.verify(order_id) > 0
            return summary, agent.journal.events(order_id)

    return asyncio.run(go())


def resume(box: Any, key: str, state_dir: Path) -> tuple[Any, list[Any]]:
    async def go() -> tuple[Any, list[Any]]:
        async with agent_for(box, key, state_dir) as agent:
            (summary,) = await agent.resume()
            assert agent.journal.verify(summary.order_id) > 0
            return summary, agent.journal.events(summary.order_id)

    return asyncio.run(go())


def on_chain(box: Any, payer: str) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Transfers (tx, to, value) from ``payer`` and the nonces of its AuthorizationUsed, on the x402 token."""
    w3 = box.evm.w3
    token = Web3.to_checksum_address(box.info.x402_token_address)
    sender = "0x" + "0" * 24 + payer.lower()[2:]
    moved = w3.eth.get_logs({"address": token, "fromBlock": 0, "topics": [TRANSFER, sender]})
    used = w3.eth.get_logs({"address": token, "fromBlock": 0, "topics": [USED, sender]})
    transfers = [
        (
            log["transactionHash"].to_0x_hex(),
            "0x" + bytes(log["topics"][2]).hex()[-40:],
            int(log["data"].hex(), 16),
        )
        for log in moved
    ]
    return transfers, ["0x" + bytes(log["topics"][2]).hex() for log in used]


def test_an_x402_order_is_signed_proven_executed_settled_and_confirmed(box: Any, tmp_path: Path) -> None:
    payer, key = wallet(box)
    nonce_before = box.evm.w3.eth.get_transaction_count(payer)
    summary, events = buy(box, key, tmp_path, spec())
    assert summary.state is S.CONFIRMED, summary.error
    assert [e.trigger for e in events] == X402_PATH
    pay = summary.payment
    assert pay["rail"] == "x402" and pay["amount"] == "0.75" and pay["status"] == "released"
    transfers, used = on_chain(box, payer)
    # Exactly one settlement: one transfer payer → payee of the exact amount, one AuthorizationUsed of
    # the journaled nonce; the buyer sent no transaction of its own (the market's facilitator did).
    ((tx, to, value),) = transfers
    assert value == PRICE and to == str(fold(events).choice.payee).lower()  # type: ignore[union-attr]
    assert used == [pay["x402"]["nonce"]]
    assert pay["tx"] == pay["settlement_tx"] == tx
    assert box.evm.w3.eth.get_transaction_count(payer) == nonce_before
    # The journaled authorization is what went out: its header carries the payer's signature.
    facts = fold(events)
    assert facts.authorization is not None and facts.settlement == {
        "tx": tx,
        "block": facts.settlement["block"],
    }
    payload = json.loads(base64.b64decode(facts.authorization.header))
    assert payload["payload"]["authorization"]["from"] == payer and payload["x402Version"] == 2
    reference = (
        f"x402:{box.info.evm_chain}:{hashlib.sha256(facts.authorization.header.encode()).hexdigest()[:24]}"
    )
    assert pay["x402"]["reference"] == reference


def test_a_lost_x402_proof_is_read_back_and_adopted_never_sent_twice(box: Any, tmp_path: Path) -> None:
    """The market records the proof, its answer is lost (a 502): the payment read names the nonce."""
    from buyer_agent.workflow._names import ADOPTED, NOTE_RECONCILED

    payer, key = wallet(box)
    proxy = CommitThenDrop(box.info.url)
    try:
        proxy.arm("POST", r"/payment-proof$", "502")
        summary, events = buy(box, key, tmp_path, spec(), market=proxy.address)
        assert proxy.count("POST", r"/payment-proof$") == 1  # read, found held, never sent again
    finally:
        proxy.close()
    assert summary.state is S.CONFIRMED, summary.error
    (note,) = [e.payload for e in events if e.trigger == NOTE_RECONCILED]
    assert note["effect"] == "submit_payment_proof" and note["outcome"] == ADOPTED
    transfers, used = on_chain(box, payer)
    assert len(transfers) == 1 and used == [summary.payment["x402"]["nonce"]]


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


def challenge_change(**change: Any) -> Callable[[str, Any], None]:
    """Rewrite the intent's PAYMENT-REQUIRED challenge: ``change`` goes into its ``accepts`` entry."""

    def apply(path: str, doc: Any) -> None:
        if path.endswith(INTENT):
            request = doc["item"]["rail"]["metadata"]["paymentRequest"]
            required = json.loads(base64.b64decode(request["paymentRequired"]))
            required["accepts"][0].update(change)
            request["paymentRequired"] = base64.b64encode(json.dumps(required).encode()).decode()

    return apply


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"amount": str(PRICE + 1)}, "PAYMENT_MISMATCH", "accepted.amount"),
        ({"payTo": OTHER}, "PAYMENT_MISMATCH", "accepted.payTo"),
        ({"asset": OTHER}, "PAYMENT_MISMATCH", "accepted.asset"),
        ({"network": "eip155:8453"}, "X402_CHALLENGE_INVALID", "accepts"),
        ({"extra": {"name": "USD Coin", "version": "2", "assetTransferMethod": "permit2"}},
         "X402_CHALLENGE_INVALID", "accepts[].extra.assetTransferMethod"),
    ],
)  # fmt: skip
def test_a_challenge_that_disagrees_is_refused_before_signing(
    box: Any, tmp_path: Path, change: dict[str, Any], code: str, field: str
) -> None:
    payer, key = wallet(box)
    proxy = Rewriter(box.info.url, challenge_change(**change))
    try:
        summary, events = buy(box, key, tmp_path, spec(), market=proxy.address)
    finally:
        proxy.close()
    assert summary.state is S.FAILED and summary.error is not None
    assert summary.error["code"] == code, summary.error
    fail = events[-1]
    assert fail.trigger == "fail" and fail.payload["field"] == field
    assert "pay" not in [e.trigger for e in events] and fold(events).authorization is None
    assert on_chain(box, payer) == ([], [])


def test_an_intent_and_challenge_in_another_token_are_refused_by_the_pinned_profile(
    box: Any, tmp_path: Path
) -> None:
    payer, key = wallet(box)

    def both(path: str, doc: Any) -> None:
        if path.endswith(INTENT):
            doc["item"]["rail"]["tokenAddress"] = OTHER
            challenge_change(asset=OTHER)(path, doc)

    proxy = Rewriter(box.info.url, both)
    try:
        summary, events = buy(box, key, tmp_path, spec(), market=proxy.address)
    finally:
        proxy.close()
    assert summary.error is not None and summary.error["code"] == "UNKNOWN_TOKEN", summary.error
    fail = events[-1].payload
    assert fail["intent_token"] == OTHER
    assert fail["expected_token"].lower() == box.info.x402_token_address.lower()
    assert fold(events).authorization is None and on_chain(box, payer) == ([], [])


def test_valid_before_stays_within_the_payment_deadline_and_a_window_too_short_is_refused(
    box: Any, tmp_path: Path
) -> None:
    from buyer_agent._time import parse_time

    _, key = wallet(box)
    summary, events = buy(box, key, tmp_path / "a", spec(deadlines=Deadlines(payment=30)))
    assert summary.state is S.CONFIRMED, summary.error
    pay = next(e for e in events if e.trigger == "pay")
    signed_at = int(parse_time(pay.at).timestamp())
    valid_before = int(pay.payload["authorization"]["valid_before"])
    assert signed_at + 8 < valid_before <= signed_at + 31  # the deadline, not the challenge's 300 s

    _, key = wallet(box)
    summary, events = buy(box, key, tmp_path / "b", spec(deadlines=Deadlines(payment=5)))
    assert summary.error is not None and summary.error["code"] == "X402_WINDOW_TOO_SHORT", summary.error
    assert events[-1].payload["field"] == "deadlines.payment" and fold(events).authorization is None


def test_budget_and_policy_limits_refuse_an_x402_quote_before_anything_is_signed(
    box: Any, tmp_path: Path
) -> None:
    payer, key = wallet(box)
    summary, events = buy(box, key, tmp_path / "budget", spec(budget=Money.parse("0.50 USDC")))
    assert summary.error is not None and summary.error["code"] == "NO_ELIGIBLE_QUOTE", summary.error
    reasons = [r for c in summary.candidates if c["service_id"] == "svc_hash_x402" for r in c["reasons"]]
    assert any("over order budget 0.50 USDC" in r for r in reasons), reasons
    assert "intent:create_payment_intent" not in [e.trigger for e in events]
    assert fold(events).authorization is None and on_chain(box, payer) == ([], [])


def test_a_wallet_without_the_x402_token_is_refused_before_signing(box: Any, tmp_path: Path) -> None:
    payer, key = wallet(box, x402=PRICE - 1)
    summary, events = buy(box, key, tmp_path, spec())
    assert summary.state is S.FAILED and summary.error is not None
    assert summary.error["code"] == "INSUFFICIENT_FUNDS", summary.error
    assert "0.749999 USDC" in summary.error["message"] and "0.75 USDC" in summary.error["message"]
    assert fold(events).authorization is None and on_chain(box, payer) == ([], [])


def test_a_resumed_order_sends_the_same_authorization(box: Any, tmp_path: Path) -> None:
    payer, key = wallet(box)
    crashed, events = buy(box, key, tmp_path, spec(), crash="pay")
    assert crashed is None and events[-1].trigger == "pay"
    signed = fold(events).authorization
    assert signed is not None
    summary, events = resume(box, key, tmp_path)
    assert summary.state is S.CONFIRMED, summary.error
    assert "note:authorization_replaced" not in [e.trigger for e in events]
    assert fold(events).authorization == signed
    transfers, used = on_chain(box, payer)
    assert len(transfers) == 1 and used == [signed.nonce]


def test_an_authorization_expired_unused_on_chain_is_replaced_once(box: Any, tmp_path: Path) -> None:
    payer, key = wallet(box)
    crashed, events = buy(box, key, tmp_path, spec(deadlines=Deadlines(payment=12)), crash="pay")
    old = fold(events).authorization
    assert crashed is None and old is not None
    # The process stays down past validBefore; a block after it moves the chain's clock on.
    time.sleep(max(old.valid_before - time.time(), 0) + 1.5)
    box.evm.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    summary, events = resume(box, key, tmp_path)
    assert summary.state is S.CONFIRMED, summary.error
    (replaced,) = [e for e in events if e.trigger == "note:authorization_replaced"]
    assert replaced.payload["replaced"] == old.nonce
    assert replaced.payload["chain_time"] >= old.valid_before
    new = fold(events).authorization
    assert new is not None and new.nonce != old.nonce
    # One settlement, of the new authorization; the old nonce was never used.
    transfers, used = on_chain(box, payer)
    assert len(transfers) == 1 and used == [new.nonce]
    assert not box.evm.authorization_used(payer, bytes.fromhex(old.nonce[2:]))
    proofs = [e for e in events if e.trigger == "intent:submit_payment_proof"]
    assert len(proofs) == 1 and proofs[0].payload["nonce"] == new.nonce


class UnsettledExecute(LoopbackProxy):
    """A market that says it executed the order but never settles the authorization."""

    def __init__(self, upstream: str, api_key: str) -> None:
        self.api_key = api_key
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self.body(req)
        if req.command == "POST" and req.path.endswith("/execute"):
            order_id = req.path.split("/")[-2]
            _, _, raw = self.forward(
                "GET", f"/api/v1/market/orders/{order_id}", None, {"x-api-key": self.api_key}
            )
            order = json.loads(raw)["item"]
            result = {"algorithm": "sha256", "sha256": hashlib.sha256(b"x402").hexdigest()}
            outcome = {
                "id": "out_fake",
                "status": "completed",
                "skillKey": order["skillKey"],
                "serviceId": order["serviceId"],
                "executionMode": "native",
                "result": result,
            }
            run = {"id": "run_fake", "status": "completed"}
            answer = {"order": order, "execution": {"statusCode": 200, "run": run, "outcome": outcome}}
            self.reply(req, 200, "application/json", json.dumps(answer).encode())
            return
        self.reply(req, *self.forward(req.command, req.path, body, dict(req.headers.items())))


def test_an_execution_the_chain_shows_unsettled_is_disputed_with_that_evidence(
    box: Any, tmp_path: Path
) -> None:
    payer, key = wallet(box)
    proxy = UnsettledExecute(box.info.url, box.info.api_key.reveal())
    try:
        order = spec(deadlines=Deadlines(execution=2, refund=1))
        summary, events = buy(box, key, tmp_path, order, market=proxy.address)
    finally:
        proxy.close()
    assert summary.state in (S.DISPUTED, S.REFUNDED), summary.error
    triggers = [e.trigger for e in events]
    assert "confirm" not in triggers and "result:acceptance" not in triggers
    looked = next(e for e in events if e.trigger == "result:x402_settlement")
    assert looked.payload["found"] is False and looked.payload["authorization_used"] is False
    dispute = next(e for e in events if e.trigger == "dispute")
    assert "no settlement on chain" in dispute.payload["reason"]
    evidence = dispute.payload["evidence"]["payment"]["x402"]
    nonce = fold(events).authorization.nonce  # type: ignore[union-attr]
    assert evidence["nonce"] == nonce and evidence["payer"] == payer and evidence["settlement"] is None
    assert on_chain(box, payer) == ([], [])


def test_a_model_buys_over_x402_through_the_tools(box: Any, tmp_path: Path) -> None:
    payer, key = wallet(box)

    async def go() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async with agent_for(box, key, tmp_path, order=spec()) as agent:
            found = await agent.call_tool("search_market", {})
            order_id = found["order_id"]
            for tool in ("choose_quote", "place_order", "pay_order", "execute_order", "confirm_order"):
                out.append(await agent.call_tool(tool, {"order_id": order_id}))
        return out

    _, placed, paid, _, confirmed = asyncio.run(go())
    assert placed["state"] == "ordered" and "pay_order" in placed["next"]
    assert paid["state"] == "paid" and paid["payment"]["rail"] == "x402", paid
    assert paid["payment"]["x402"]["nonce"] and paid["payment"]["tx"] is None
    assert confirmed["state"] == "confirmed", confirmed
    transfers, used = on_chain(box, payer)
    assert confirmed["payment"]["settlement_tx"] == transfers[0][0] and used == [
        confirmed["payment"]["x402"]["nonce"]
    ]
