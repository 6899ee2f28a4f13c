"""Shared by the CLI tests: the command line (forked: `cli_fork.py`), an external sandbox, chain reads."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cli_fork
import pytest
from cli_fork import clean_env

ROOT = Path(__file__).resolve().parents[2]
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS``, forked off a process that imported it once (``tests/cli_fork.py``)."""
    return cli_fork.run(*args, env=env if env is not None else clean_env(), timeout=timeout)


@pytest.fixture(scope="session")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``python -m buyer_agent sandbox`` in a subprocess; its JSON line."""
    state = tmp_path_factory.mktemp("external-sandbox")
    proc = subprocess.Popen(
        # Deduplicating nothing (the default, said here): a blind repeat shows as a second order or run.
        [sys.executable, "-m", "buyer_agent", "sandbox", "--state-dir", str(state), "--idempotency", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the sandbox printed no JSON line"
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def market_env(info: dict[str, Any], evm_key: str | None = None) -> dict[str, str]:
    """The environment pointing the CLI's keys at an external sandbox (the market URL not included)."""
    return clean_env(
        PEAQOS_API_KEY=info["api_key"],
        PEAQOS_MACHINE_ID=info["machine_id"],
        BUYER_AGENT_EVM_KEY=evm_key or info["wallets"]["evm"]["private_key"],
        BUYER_AGENT_EVM_RPC=info["evm"]["rpc_url"],
        BUYER_AGENT_SOLANA_KEY=info["wallets"]["solana"]["secret_key"],
        BUYER_AGENT_SOLANA_RPC=info["solana"]["rpc_url"],
    )


def transfers_from(info: dict[str, Any], address: str) -> int:
    """ERC-20 Transfer logs of the sandbox token sent by ``address``: payments on chain."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    topic_from = "0x" + "0" * 24 + address.lower().removeprefix("0x")
    logs = w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": Web3.to_checksum_address(info["evm"]["token_address"]),
            "topics": [TRANSFER_TOPIC, topic_from],
        }
    )
    return len(logs)


ERC20_TRANSFER = "0xa9059cbb"


def fund_wallets(info: dict[str, Any], count: int) -> list[tuple[str, str]]:
    """``count`` fresh wallets, each given gas money and 5 USDC by the sandbox's demo wallet."""
    from eth_account import Account
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    demo = Account.from_key(info["wallets"]["evm"]["private_key"])
    token = Web3.to_checksum_address(info["evm"]["token_address"])
    nonce = int(w3.eth.get_transaction_count(demo.address, "pending"))
    chain_id = w3.eth.chain_id
    fee = w3.eth.gas_price * 2 + 10**9
    wallets = [Account.create() for _ in range(count)]
    hashes = []
    for wallet in wallets:
        amount = 5 * 10**6
        data = ERC20_TRANSFER + wallet.address.lower()[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
        for tx in (
            {"to": wallet.address, "value": 10**17, "gas": 21_000},
            {"to": token, "value": 0, "gas": 100_000, "data": data},
        ):
            signed = demo.sign_transaction(
                {
                    **tx,
                    "nonce": nonce,
                    "chainId": chain_id,
                    "maxFeePerGas": fee,
                    "maxPriorityFeePerGas": 10**9,
                }
            )
            hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
            nonce += 1
    for h in hashes:
        assert w3.eth.wait_for_transaction_receipt(h, timeout=60)["status"] == 1
    return [(w.address, w.key.to_0x_hex()) for w in wallets]
