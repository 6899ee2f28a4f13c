"""An order whose wallet cannot cover it fails before any transaction, naming both amounts.

Real stack: a sandbox market served over HTTP, anvil and the LiteSVM RPC. A fresh agent wallet with
gas but too little USDC, or USDC but no gas (EVM), or USDC but no SOL for the payee's new token
account (Solana), buys the sandbox's cheapest hash: the order fails ``INSUFFICIENT_FUNDS`` from
``ordered``, the journal holds no signed transaction and verifies, the wallet's nonce and balances
are untouched, and the budget held for the order is released. Also: the agent hands each chain's
profile (depth, commitment) to its rails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import BuyerAgent, Money
from buyer_agent.networks import NetworkProfile, agent_networks, sandbox_profiles
from buyer_agent.workflow import OrderSpec, OrderState

pytestmark = pytest.mark.chains

USDC = 1_000_000


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("funds"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def spec(chain: str = "evm") -> OrderSpec:
    return OrderSpec(
        service_type="compute.marketplace",
        operation="sha256",
        input={"data": "funds"},
        budget=Money.parse("2.50 USDC"),
        rail="wallet",
        chain=chain,
        strategy="cheapest",
    )


def buy(box: Any, state_dir: Path, order: OrderSpec, **keys: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    info = box.info

    async def go() -> tuple[Any, list[dict[str, Any]], Any]:
        agent = BuyerAgent(
            info.url,
            machine_id=info.machine_id,
            api_key=info.api_key,
            evm_rpc=info.evm_rpc_url,
            solana_rpc=info.solana_rpc_url,
            state_dir=state_dir,
            networks=agent_networks().extend(sandbox_profiles(info)),
            **keys,
        )
        async with agent:
            summary = await agent.buy(order)
            assert agent.journal.verify(summary.order_id) > 0
            events = [e.to_json() for e in agent.journal.events(summary.order_id)]
            ledger = agent.journal.ledger_entry(summary.order_id)
            return summary, events, ledger

    return asyncio.run(go())


def evm_view(box: Any, address: str) -> tuple[int, int, int]:
    w3 = box.evm.w3
    nonce = int(w3.eth.get_transaction_count(w3.to_checksum_address(address)))
    return nonce, box.evm.usdc_balance(address), box.evm.eth_balance(address)


def assert_failed_before_signing(summary: Any, events: list[dict[str, Any]], ledger: Any) -> str:
    assert summary.state is OrderState.FAILED, summary
    assert summary.error is not None and summary.error["code"] == "INSUFFICIENT_FUNDS", summary.error
    fail = events[-1]
    assert fail["trigger"] == "fail" and fail["src"] == "ordered", fail
    assert not any("broadcast" in e["trigger"] or e["payload"].get("txs") for e in events)
    assert ledger is None or ledger.status.value == "released", ledger
    return str(summary.error["message"])


def test_a_wallet_short_of_usdc_fails_before_any_transaction(box: Any, tmp_path: Path) -> None:
    wallet = box.evm.new_wallet(usdc=USDC // 2)  # 0.50 USDC; the cheapest quote is 0.80
    before = evm_view(box, wallet.address)
    summary, events, ledger = buy(box, tmp_path, spec(), evm_key=wallet.private_key)
    message = assert_failed_before_signing(summary, events, ledger)
    assert "holds 0.5 USDC" in message and "needs 0.8 USDC" in message and wallet.address in message
    assert evm_view(box, wallet.address) == before


def test_a_wallet_without_gas_fails_before_any_transaction(box: Any, tmp_path: Path) -> None:
    wallet = box.evm.new_wallet(eth_wei=10**12, usdc=5 * USDC)  # 0.000001 ETH: not a transfer's gas
    before = evm_view(box, wallet.address)
    summary, events, ledger = buy(box, tmp_path, spec(), evm_key=wallet.private_key)
    message = assert_failed_before_signing(summary, events, ledger)
    assert "not enough ETH" in message and "holds 0.000001 ETH" in message and "for gas" in message
    assert evm_view(box, wallet.address) == before


def test_a_solana_wallet_short_of_usdc_fails_before_any_transaction(box: Any, tmp_path: Path) -> None:
    chain = box.solana_server.chain
    payer = chain.new_wallet(usdc=USDC // 10)  # 0.10 USDC; the cheapest Solana quote is 0.90
    pairing = box.evm.new_wallet()
    summary, events, ledger = buy(
        box, tmp_path, spec("solana"), evm_key=pairing.private_key, solana_key=payer.secret_key
    )
    message = assert_failed_before_signing(summary, events, ledger)
    assert "holds 0.1 USDC" in message and "needs 0.9 USDC" in message
    assert chain.usdc_balance(payer.address) == USDC // 10


def test_a_funded_wallet_still_pays_once(box: Any, tmp_path: Path) -> None:
    wallet = box.evm.new_wallet(usdc=USDC)
    summary, _, _ = buy(box, tmp_path, spec(), evm_key=wallet.private_key)
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert box.evm.usdc_balance(wallet.address) == USDC - 800_000


def test_the_agent_gives_each_chains_profile_to_its_rails(box: Any, tmp_path: Path) -> None:
    info = box.info
    deep = [
        NetworkProfile(name="deep-evm", chain=info.evm_chain, confirmations=3),
        NetworkProfile(name="deep-sol", chain=info.solana_chain, commitment="finalized"),
    ]

    async def go() -> dict[str, Any]:
        agent = BuyerAgent(
            info.url,
            machine_id=info.machine_id,
            api_key=info.api_key,
            evm_key=box.evm.new_wallet().private_key,
            evm_rpc=info.evm_rpc_url,
            solana_key=box.solana_server.chain.new_wallet().secret_key,
            solana_rpc=info.solana_rpc_url,
            state_dir=tmp_path,
            networks=agent_networks().extend(deep),
        )
        async with agent:
            await agent.start()
            assert agent._conn is not None
            return {rail.name: rail for rail in agent._conn.rails}

    rails = asyncio.run(go())
    assert rails["evm"].depth_for(info.evm_chain) == 3
    assert rails["solana"].commitment == "finalized"
