"""Before signing: a payment in another token contract, or to another payee, is refused on the real stack.

A loopback proxy between the agent and a served sandbox rewrites what the market names (the payment
intent's ``tokenAddress`` or ``payeeAddress``, or the token in every answer, quotes included). The
agent must refuse before anything is signed: the buyer's nonce and token balance on anvil stay as
they were, the order fails naming why, and its journal verifies.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback_proxy import LoopbackProxy

from buyer_agent import BuyerAgent, Money
from buyer_agent.networks import NetworkProfile, Networks, agent_networks, sandbox_profiles
from buyer_agent.workflow import OrderSpec, OrderState

pytestmark = pytest.mark.chains

OTHER_TOKEN = "0x000000000000000000000000000000000000bad2"
OTHER_PAYEE = "0x000000000000000000000000000000000000bad1"
INTENT = re.compile(r"^/api/v1/market/orders/[^/]+/payment-intent$")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("pinning"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


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


def intent_rail(change: Callable[[dict[str, Any]], None]) -> Callable[[str, Any], None]:
    def apply(path: str, doc: Any) -> None:
        if INTENT.match(path):
            change(doc["item"]["rail"])

    return apply


def everywhere(key: str, old: str, new: str) -> Callable[[str, Any], None]:
    """Replace ``old`` under ``key`` in every answer (a market lying consistently, quotes included)."""

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == key and isinstance(v, str) and v.lower() == old.lower():
                    value[k] = new
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    return lambda path, doc: walk(doc)


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "input": {"data": "pinning"},
        "budget": Money.parse("2.50 USDC"),
        "rail": "wallet",
        "chain": "evm",
    }
    base.update(kw)
    return OrderSpec(**base)


def chain_view(box: Any) -> tuple[int, int]:
    """The buyer's nonce and sandbox-USDC balance on anvil: both move when anything is paid."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(box.info.evm_rpc_url))
    nonce = int(w3.eth.get_transaction_count(Web3.to_checksum_address(box.info.evm_address)))
    return nonce, int(box.evm.usdc_balance(box.info.evm_address))


def buy(box: Any, market: str, state_dir: Path, networks: Networks, order: OrderSpec) -> tuple[Any, Any]:
    info = box.info

    async def go() -> tuple[Any, Any]:
        agent = BuyerAgent(
            market,
            machine_id=info.machine_id,
            api_key=info.api_key,
            evm_key=info.evm_private_key,
            evm_rpc=info.evm_rpc_url,
            state_dir=state_dir,
            networks=networks,
        )
        async with agent:
            summary = await agent.buy(order)
            events = [e.to_json() for e in agent.journal.events(summary.order_id)]
            agent.journal.verify(summary.order_id)
            return summary, events

    return asyncio.run(go())


def pinned(box: Any) -> Networks:
    return agent_networks().extend(sandbox_profiles(box.info))


def refused_before_signing(box: Any, before: tuple[int, int], events: list[dict[str, Any]]) -> None:
    assert chain_view(box) == before, "something was signed or paid"
    triggers = [e["trigger"] for e in events]
    assert not any("broadcast" in t for t in triggers), triggers
    assert not any(e.get("payload", {}).get("txs") for e in events)


def test_a_rewritten_intent_token_is_refused_before_signing(box: Any, tmp_path: Path) -> None:
    proxy = Rewriter(box.info.url, intent_rail(lambda rail: rail.update(tokenAddress=OTHER_TOKEN)))
    try:
        before = chain_view(box)
        summary, events = buy(box, proxy.address, tmp_path, pinned(box), spec())
    finally:
        proxy.close()
    assert summary.state is OrderState.FAILED
    assert summary.error is not None and summary.error["code"] == "UNKNOWN_TOKEN", summary.error
    message = summary.error["message"]
    assert box.info.evm_chain in message and "USDC" in message
    assert OTHER_TOKEN in message and box.info.token_address in message
    refused_before_signing(box, before, events)
    fail = next(e for e in events if e["trigger"] == "fail")
    assert fail["payload"]["code"] == "UNKNOWN_TOKEN"
    assert fail["payload"]["intent_token"] == OTHER_TOKEN
    assert fail["payload"]["expected_token"].lower() == box.info.token_address.lower()


def test_a_market_naming_another_token_everywhere_is_still_refused(box: Any, tmp_path: Path) -> None:
    # The quote, the order and the intent all agree on the other contract: only the profile knows better.
    proxy = Rewriter(box.info.url, everywhere("tokenAddress", box.info.token_address, OTHER_TOKEN))
    try:
        before = chain_view(box)
        summary, events = buy(box, proxy.address, tmp_path, pinned(box), spec())
    finally:
        proxy.close()
    assert summary.error is not None and summary.error["code"] == "UNKNOWN_TOKEN", summary.error
    refused_before_signing(box, before, events)


def test_a_rewritten_payee_is_refused_before_signing(box: Any, tmp_path: Path) -> None:
    proxy = Rewriter(box.info.url, intent_rail(lambda rail: rail.update(payeeAddress=OTHER_PAYEE)))
    try:
        before = chain_view(box)
        summary, events = buy(box, proxy.address, tmp_path, pinned(box), spec())
    finally:
        proxy.close()
    assert summary.state is OrderState.FAILED
    assert summary.error is not None and summary.error["code"] == "PAYMENT_MISMATCH", summary.error
    assert "payee" in summary.error["message"] and OTHER_PAYEE in summary.error["message"]
    refused_before_signing(box, before, events)


def test_a_profile_without_the_token_needs_the_task_allowlist(box: Any, tmp_path: Path) -> None:
    bare = NetworkProfile(name="devchain", chain=box.info.evm_chain, tokens={})
    networks = agent_networks().extend([bare])
    before = chain_view(box)
    summary, events = buy(box, box.info.url, tmp_path / "a", networks, spec())
    assert summary.error is not None and summary.error["code"] == "UNKNOWN_TOKEN"
    assert "payment.tokens" in summary.error["message"]
    refused_before_signing(box, before, events)

    allowed = spec(tokens={"USDC": box.info.token_address})
    summary, _ = buy(box, box.info.url, tmp_path / "b", networks, allowed)
    assert summary.state is OrderState.CONFIRMED, summary.error
    nonce, balance = chain_view(box)
    assert nonce == before[0] + 1 and balance < before[1]


def test_the_embedded_sandbox_pins_its_own_token(tmp_path: Path) -> None:
    async def go() -> Any:
        async with BuyerAgent(state_dir=tmp_path) as agent:
            await agent.start()
            conn = agent._conn
            assert conn is not None
            return conn.runner._networks, conn.sandbox.info

    networks, info = asyncio.run(go())
    profile = networks.get(info.evm_chain)
    assert profile is not None and profile.name == "sandbox-evm"
    token = profile.token("USDC")
    assert token is not None and token.address == info.token_address and token.decimals == 6
    solana = networks.get("sandbox-solana")
    assert solana is not None and solana.token("USDC").address == info.mint


@pytest.mark.parametrize("alias", ["base", "eth", "polygon", "peaq"])
def test_an_alias_whose_chain_is_not_the_rpcs_is_refused_before_signing(box: Any, alias: str) -> None:
    from buyer_agent._errors import RailError
    from buyer_agent.rails import EvmRail
    from buyer_agent.rails._base import PaymentRequest

    chain = agent_networks().resolve(alias)
    assert chain is not None and chain != box.info.evm_chain
    request = PaymentRequest(
        order_id="ord_alias",
        rail_type="wallet",
        chain=chain,
        token=box.info.token_address,
        payer=box.info.evm_address,
        payee=OTHER_PAYEE,
        amount=Money.parse("0.10 USDC"),
    )

    async def go() -> None:
        rail = EvmRail(box.info.evm_rpc_url, box.info.evm_private_key.reveal())
        try:
            await rail.prepare(request)
        finally:
            await rail.aclose()

    before = chain_view(box)
    with pytest.raises(RailError, match="wrong chain"):
        asyncio.run(go())
    assert chain_view(box) == before


def test_a_rewritten_solana_mint_is_refused_before_signing(box: Any, tmp_path: Path) -> None:
    from solders.keypair import Keypair

    info = box.info
    other_mint = str(Keypair().pubkey())
    proxy = Rewriter(info.url, intent_rail(lambda rail: rail.update(tokenMint=other_mint)))
    chain = box.solana_server.chain
    before = int(chain.usdc_balance(info.solana_address))

    async def go() -> tuple[Any, list[dict[str, Any]]]:
        agent = BuyerAgent(
            proxy.address,
            machine_id=info.machine_id,
            api_key=info.api_key,
            evm_key=info.evm_private_key,
            solana_key=info.solana_secret_key,
            solana_rpc=info.solana_rpc_url,
            state_dir=tmp_path,
            networks=pinned(box),
        )
        async with agent:
            summary = await agent.buy(spec(chain="solana"))
            agent.journal.verify(summary.order_id)
            return summary, [e.to_json() for e in agent.journal.events(summary.order_id)]

    try:
        summary, events = asyncio.run(go())
    finally:
        proxy.close()
    assert summary.error is not None and summary.error["code"] == "UNKNOWN_TOKEN", summary.error
    assert other_mint in summary.error["message"] and str(info.mint) in summary.error["message"]
    assert info.solana_chain in summary.error["message"]
    assert int(chain.usdc_balance(info.solana_address)) == before
    assert not any("broadcast" in e["trigger"] for e in events)
