"""SIGKILL an x402 order right after each journaled step in turn; `resume` finishes it, settling once.

Runs ``examples/x402.yaml`` through the command line against an external sandbox (``python -m
buyer_agent sandbox``). The kill points are every step from the payment intent on: after the authorization
is signed and journaled (``pay``), after the proof's intent and after the proof (``paid``), during
execute (its intent journaled, the market maybe settling), after execute, after the settlement was
read. Each kill point gets its own buyer wallet (funded here with the sandbox's EIP-3009 USDC) and its
own journal, so "one settlement" is read from the chain per wallet: one ``Transfer`` from it and one
``AuthorizationUsed`` of its nonces on the x402 token. Every journal verifies afterwards.
"""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_support import TRANSFER_TOPIC, cli, market_env

from buyer_agent.journal import Journal

pytestmark = pytest.mark.chains

PRICE = 750_000
ERC20_TRANSFER = "0xa9059cbb"


def _used_topic() -> str:
    from web3 import Web3

    return "0x" + Web3.keccak(text="AuthorizationUsed(address,bytes32)").hex()


def fund_x402(info: dict[str, Any], count: int) -> list[tuple[str, str]]:
    """``count`` fresh wallets, each sent 3 of the sandbox's EIP-3009 USDC by its demo wallet."""
    from eth_account import Account
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    demo = Account.from_key(info["wallets"]["evm"]["private_key"])
    token = Web3.to_checksum_address(info["evm"]["x402_token_address"])
    nonce = int(w3.eth.get_transaction_count(demo.address, "pending"))
    fee = w3.eth.gas_price * 2 + 10**9
    wallets = [Account.create() for _ in range(count)]
    hashes = []
    for wallet in wallets:
        data = ERC20_TRANSFER + wallet.address.lower()[2:].rjust(64, "0") + hex(3 * 10**6)[2:].rjust(64, "0")
        signed = demo.sign_transaction(
            {
                "to": token,
                "value": 0,
                "gas": 100_000,
                "data": data,
                "nonce": nonce,
                "chainId": w3.eth.chain_id,
                "maxFeePerGas": fee,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
        nonce += 1
    for h in hashes:
        assert w3.eth.wait_for_transaction_receipt(h, timeout=60)["status"] == 1
    return [(w.address, w.key.to_0x_hex()) for w in wallets]


def settlements(info: dict[str, Any], payer: str) -> tuple[list[int], int]:
    """The amounts of the x402-token Transfers from ``payer``, and how many nonces of its were used."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    token = Web3.to_checksum_address(info["evm"]["x402_token_address"])
    sender = "0x" + "0" * 24 + payer.lower()[2:]
    moved = w3.eth.get_logs({"address": token, "fromBlock": 0, "topics": [TRANSFER_TOPIC, sender]})
    used = w3.eth.get_logs({"address": token, "fromBlock": 0, "topics": [_used_topic(), sender]})
    return [int(bytes(log["data"]).hex(), 16) for log in moved], len(used)


def run_x402(info: dict[str, Any], key: str, state_dir: Path, crash: str | None = None) -> Any:
    env = market_env(info, evm_key=key)
    if crash is not None:
        env["BUYER_AGENT_CRASH_AFTER"] = crash
    return cli(
        "run", "examples/x402.yaml", "--json", "--market", info["url"], "--state-dir", str(state_dir), env=env
    )


def verified(state_dir: Path) -> list[str]:
    """Every order of the state directory's journal, after its hash chain verified."""
    journal = Journal(state_dir / "buyer_agent.db")
    try:
        ids = [o.order_id for o in journal.orders()]
        for order_id in ids:
            assert journal.verify(order_id) > 0
        return ids
    finally:
        journal.close()


def test_kill_an_x402_order_at_every_step_then_resume_settles_exactly_once(
    external: dict[str, Any], tmp_path: Path
) -> None:
    (ref_addr, ref_key), *_ = fund_x402(external, 1)
    ref = run_x402(external, ref_key, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = json.loads(ref.stdout)
    assert out["payment"]["rail"] == "x402" and out["payment"]["x402"]["nonce"]
    assert settlements(external, ref_addr) == ([PRICE], 1)
    shown = json.loads(cli("show", out["order_id"], "--json", "--state-dir", str(tmp_path / "ref")).stdout)
    steps = shown["timeline"]
    assert steps[-1]["dst"] == "confirmed"
    triggers = [step["trigger"] for step in steps]
    for point in ("pay", "intent:submit_payment_proof", "paid", "intent:execute_market_order", "execute"):
        assert point in triggers, triggers
    # From the payment intent on: the steps before it are every rail's (tests/cli/test_cli_crash_resume.py).
    first = triggers.index("intent:create_payment_intent")
    kill_points = [step["seq"] for step in steps[first:-1]]
    wallets = fund_x402(external, len(kill_points))

    def crash_and_resume(seq: int, wallet: tuple[str, str]) -> tuple[int, str, str, int, str]:
        address, key = wallet
        state_dir = tmp_path / f"kill-{seq}"
        crashed = run_x402(external, key, state_dir, crash=f"seq:{seq}")
        assert crashed.returncode == -signal.SIGKILL, (seq, crashed.returncode, crashed.stderr)
        env = market_env(external, evm_key=key)
        resumed = cli("resume", "--market", external["url"], "--json", "--state-dir", str(state_dir), env=env)
        summaries = json.loads(resumed.stdout or "[]")
        final = summaries[0]["state"] if summaries else "?"
        return seq, final, resumed.stderr, resumed.returncode, address

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(crash_and_resume, kill_points, wallets))
    for seq, final, stderr, code, address in results:
        assert (seq, final, code) == (seq, "confirmed", 0), stderr
        assert settlements(external, address) == ([PRICE], 1), f"kill after event {seq}: not one settlement"
        assert len(verified(tmp_path / f"kill-{seq}")) == 1
