"""BuyerAgent against a served sandbox: configured by the environment, in token mode, with a plug-in
rail, and on a node of the wrong chain.

The sandbox runs in this process but is reached over HTTP and JSON-RPC like any market and node; its
chains are read directly to count what moved.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import BuyerAgent, Money, SyncBuyerAgent
from buyer_agent.journal import Journal, LedgerStatus
from buyer_agent.workflow import OrderSpec, OrderState

pytestmark = pytest.mark.chains

ROOT = Path(__file__).resolve().parents[2]
_CLI = (sys.executable, "-m", "buyer_agent")
POLICY = {
    "per_transaction_limit": Decimal("5"),
    "daily_spend_limit": Decimal("100"),
    "currency": "USDC",
    "denied_service_ids": ["svc_hash_denied"],
}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("agent-market"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "input": {"data": "agent"},
        "budget": Money.parse("2.50 USDC"),
        "rail": "wallet",
        "chain": "evm",
    }
    base.update(kw)
    return OrderSpec(**base)


def evm_usdc(box: Any) -> int:
    return int(box.evm.usdc_balance(box.info.evm_address))


def sol_usdc(box: Any) -> int:
    return int(box.solana_server.chain.usdc_balance(box.info.solana_address))


def env_for(info: dict[str, Any], monkeypatch: pytest.MonkeyPatch, **skip: bool) -> None:
    """The documented environment variables, pointed at the served sandbox."""
    values = {
        "PEAQOS_ORCHESTRATION_URL": info["url"],
        "PEAQOS_API_KEY": info["api_key"],
        "PEAQOS_MACHINE_ID": info["machine_id"],
        "BUYER_AGENT_EVM_KEY": info["wallets"]["evm"]["private_key"],
        "BUYER_AGENT_SOLANA_KEY": info["wallets"]["solana"]["secret_key"],
        "BUYER_AGENT_EVM_RPC": info["evm"]["rpc_url"],
        "BUYER_AGENT_SOLANA_RPC": info["solana"]["rpc_url"],
    }
    for name, value in values.items():
        if not skip.get(name):
            monkeypatch.setenv(name, value)


def _price(summary: Any) -> int:
    assert summary.payment is not None
    return int(Money.parse(f"{summary.payment['amount']} {summary.payment['currency']}").amount)


# --- point 4: from_env ----------------------------------------------------------------------------


def test_from_env_reads_every_documented_variable_and_buys_on_both_chains(
    box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = box.info.to_json()
    env_for(info, monkeypatch)
    evm_before, sol_before = evm_usdc(box), sol_usdc(box)

    async def go() -> tuple[Any, Any, str]:
        async with BuyerAgent.from_env(state_dir=tmp_path / "async") as agent:
            assert not agent.uses_sandbox
            label = agent.market_label
            evm = await agent.buy(spec())
            sol = await agent.buy(spec(chain="solana"))
            return evm, sol, label

    evm, sol, label = asyncio.run(go())
    assert label == info["url"].rstrip("/")
    assert evm.state is OrderState.CONFIRMED, evm.error
    assert sol.state is OrderState.CONFIRMED, sol.error
    assert str(sol.payment["chain"]).startswith("solana:")  # type: ignore[index]
    # The keys from the environment paid: the sandbox's demo wallets, once each.
    assert evm_usdc(box) == evm_before - _price(evm)
    assert sol_usdc(box) == sol_before - _price(sol)


def test_sync_from_env_buys_and_lists(box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = box.info.to_json()
    env_for(info, monkeypatch, BUYER_AGENT_SOLANA_KEY=True, BUYER_AGENT_SOLANA_RPC=True)
    monkeypatch.setenv("BUYER_AGENT_STATE_DIR", str(tmp_path / "sync"))
    before = evm_usdc(box)
    with SyncBuyerAgent.from_env() as agent:
        assert agent.agent.state_dir == tmp_path / "sync"
        summary = agent.buy(spec())
        assert [o.order_id for o in agent.orders()] == [summary.order_id]
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert evm_usdc(box) == before - _price(summary)


# --- point 7: token mode ----------------------------------------------------------------------------


async def _operator_pairing(info: dict[str, Any]) -> tuple[str, str]:
    """What an operator does with the platform key: pair the agent's wallet; (pairing id, token)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from buyer_agent.market import AsyncMarketClient

    agent = Account.from_key(info["wallets"]["evm"]["private_key"])
    async with AsyncMarketClient(info["url"], api_key=info["api_key"]) as operator:
        challenge = (
            await operator.create_agent_pairing_challenge(
                info["machine_id"],
                {"agent_address": agent.address, "agent_provider": "operator-test", "agent_role": "buyer"},
            )
        ).item
        signed = Account.sign_message(encode_defunct(text=challenge.message), agent.key)
        pairing = (
            await operator.create_agent_pairing(
                info["machine_id"],
                {
                    "agent_address": agent.address,
                    "agent_provider": "operator-test",
                    "agent_role": "buyer",
                    "agent_proof": {
                        "challenge_id": challenge.challenge_id,
                        "signature": signed.signature.to_0x_hex(),
                    },
                    "delegation_policy": POLICY,
                },
            )
        ).item
    assert pairing.pairing_token is not None
    return str(pairing.id), pairing.pairing_token.reveal()


def test_token_mode_runs_an_order_end_to_end_without_the_platform_key(box: Any, tmp_path: Path) -> None:
    info = box.info.to_json()
    pairing_id, token = asyncio.run(_operator_pairing(info))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    env.update(
        PEAQOS_MACHINE_ID=info["machine_id"],
        PEAQOS_AGENT_PAIRING_ID=pairing_id,
        PEAQOS_AGENT_PAIRING_TOKEN=token,
        BUYER_AGENT_EVM_KEY=info["wallets"]["evm"]["private_key"],
        BUYER_AGENT_EVM_RPC=info["evm"]["rpc_url"],
    )
    before = evm_usdc(box)
    state = tmp_path / "token"
    done = subprocess.run(
        [*_CLI, "run", "examples/task.yaml", "--json", "--market", info["url"], "--state-dir", str(state)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == "confirmed"
    assert evm_usdc(box) == before - int(Decimal(out["payment"]["amount"]) * 10**6)
    journal = Journal.open_dir(state)
    try:
        events = journal.events(out["order_id"])
        pair = next(e for e in events if e.trigger == "pair")
        assert pair.payload["pairing_id"] == pairing_id  # the operator's pairing, no new one
        assert journal.verify(out["order_id"]) == len(events)
    finally:
        journal.close()
    assert token not in done.stderr and token not in done.stdout
    raw = b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())
    assert token.encode() not in raw


# --- point 10: a plug-in rail pays ----------------------------------------------------------------

PLUGIN = '''
from buyer_agent.rails import SolanaRail


class PluginSplRail(SolanaRail):
    """A third-party rail: here the SPL rail under another name."""

    name = "plugin-spl"


def make():
    return PluginSplRail({rpc!r}, {key!r}, chain={chain!r})
'''


def _install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, info: dict[str, Any]) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "buyer_agent_test_plugin_rail.py").write_text(
        PLUGIN.format(
            rpc=info["solana"]["rpc_url"],
            key=info["wallets"]["solana"]["secret_key"],
            chain=info["solana"]["chain"],
        )
    )
    dist = plugins / "plugin_spl_rail-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-spl-rail\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[buyer_agent.rails]\nplugin-spl = buyer_agent_test_plugin_rail:make\n"
    )
    monkeypatch.syspath_prepend(str(plugins))


def test_an_order_pays_through_a_plug_in_rail_chosen_by_type_and_chain(
    box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = box.info.to_json()
    _install_plugin(tmp_path, monkeypatch, info)
    before_sol, before_evm = sol_usdc(box), evm_usdc(box)
    db = tmp_path / "plugin"

    async def go() -> tuple[Any, Any]:
        # Only an EVM key is configured: no built-in rail can pay on Solana, the plug-in can.
        async with BuyerAgent(
            info["url"],
            machine_id=info["machine_id"],
            api_key=info["api_key"],
            evm_key=info["wallets"]["evm"]["private_key"],
            evm_rpc=info["evm"]["rpc_url"],
            state_dir=db,
        ) as agent:
            sol = await agent.buy(spec(chain="solana"))
            evm = await agent.buy(spec())
            return sol, evm

    sol, evm = asyncio.run(go())
    assert sol.state is OrderState.CONFIRMED, sol.error
    assert evm.state is OrderState.CONFIRMED, evm.error
    journal = Journal.open_dir(db)
    try:
        rails = {
            o: next(e for e in journal.events(o) if e.trigger == "pay").payload["rail"]
            for o in (sol.order_id, evm.order_id)
        }
    finally:
        journal.close()
    assert rails == {sol.order_id: "plugin-spl", evm.order_id: "evm"}
    assert sol_usdc(box) == before_sol - _price(sol)
    assert evm_usdc(box) == before_evm - _price(evm)


# --- point 13: wrong chain id at order level ---------------------------------------------------------


def test_a_node_on_the_wrong_chain_fails_the_order_before_signing(box: Any, tmp_path: Path) -> None:
    from buyer_agent.sandbox.chains import AnvilNode

    info = box.info.to_json()
    before = evm_usdc(box)
    db = tmp_path / "wrong-chain"
    with AnvilNode(chain_id=4242) as other:
        wrong_rpc = other.rpc_url

        async def go() -> Any:
            async with BuyerAgent(
                info["url"],
                machine_id=info["machine_id"],
                api_key=info["api_key"],
                evm_key=info["wallets"]["evm"]["private_key"],
                evm_rpc=wrong_rpc,  # the market quotes eip155:31337; this node is eip155:4242
                state_dir=db,
            ) as agent:
                return await agent.buy(spec())

        summary = asyncio.run(go())
        from web3 import Web3

        nonce_elsewhere = Web3(Web3.HTTPProvider(wrong_rpc)).eth.get_transaction_count(box.info.evm_address)
    assert summary.state is OrderState.FAILED
    assert summary.error is not None
    assert "wrong chain" in summary.error["message"] and "eip155:4242" in summary.error["message"]
    assert "nothing was signed" in summary.error["message"]
    assert summary.payment is None  # no payment request was ever built
    assert evm_usdc(box) == before and nonce_elsewhere == 0
    journal = Journal.open_dir(db)
    try:
        events = journal.events(summary.order_id)
        assert journal.verify(summary.order_id) == len(events)
        assert [e.trigger for e in events][-1] == "fail" and events[-1].src == OrderState.ORDERED.value
        assert not any(e.trigger == "pay" for e in events)
        entry = journal.ledger_entry(summary.order_id)
        assert entry is not None and entry.status is LedgerStatus.RELEASED  # the commitment is given back
    finally:
        journal.close()
