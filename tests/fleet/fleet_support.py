"""Shared by the fleet tests: worker processes on one store and one sandbox, and what the chain says.

Workers are real ``python -m buyer_agent worker`` processes; the store a real PostgreSQL database
(the session's throwaway cluster); the market a sandbox served over HTTP with anvil behind it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import cli_fork

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from reliability_support import (
    ROOT,
    TRANSFER_TOPIC,
    clean_env,
    fund_wallets,
    market_env,
    served_sandbox,
)

__all__ = [
    "ROOT",
    "Worker",
    "fleet_env",
    "fund_wallets",
    "pairings_of",
    "served_sandbox",
    "signed_nonces",
    "store_orders",
    "submit",
    "task_file",
    "transfers_from",
    "wait_until",
]

TASK = """\
market: {market}
task:
  service_type: compute.marketplace
  task_type: hash
  operation: sha256
  input: {{data: "fleet"}}
  region: eu-west
budget: "2.50 USDC"
strategy: cheapest
payment:
  rail: {rail}
  chain: evm
  max_fee_per_gas_gwei: 50
policy:
  per_transaction_limit: "5.00 USDC"
  daily_spend_limit: "{daily} USDC"
deadlines: {{quote: 60, payment: 120, execution: 60, refund: 60}}
"""


def task_file(path: Path, market: str, *, daily: str = "1000.00", rail: str = "wallet") -> Path:
    """A task buying one hash on ``market``, whose pairing asks for a ``daily`` USDC limit."""
    path.write_text(TASK.format(market=market, daily=daily, rail=rail), encoding="utf-8")
    return path


def fleet_env(info: dict[str, Any], evm_key: str) -> dict[str, str]:
    """A worker's environment: the sandbox's API key, machine and chains, the fleet's wallet key."""
    return clean_env(**market_env(info, evm_key=evm_key), PEAQOS_ORCHESTRATION_URL=info["url"])


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS``, forked off a process that imported it once (``tests/cli_fork.py``)."""
    return cli_fork.run(*args, env=env, timeout=timeout)


def submit(store: str, task: Path, count: int, env: dict[str, str]) -> list[str]:
    """``submit TASK --store STORE --count N --json``: the new order ids."""
    proc = cli("submit", str(task), "--store", store, "--count", str(count), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout)["order_ids"])


class Worker:
    """``python -m buyer_agent worker --store STORE --json …`` in its own process, stderr to a file."""

    def __init__(self, store: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._err: IO[str] = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", "worker", "--store", store, "--json", *args],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def ready(self) -> bool:
        """It has connected and started claiming (its first line is on stderr)."""
        return "driving orders of" in self.stderr()

    def finish(self, timeout: float = 180) -> tuple[int, dict[str, Any]]:
        """Wait for it to exit: its exit code and its ``--json`` report."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        finally:
            self._err.close()
        return self.proc.returncode, json.loads(out) if out.strip() else {}

    def kill(self) -> None:
        """SIGKILL it (if it still runs) and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


def wait_until(check: Any, *, timeout: float, what: str, every: float = 0.2) -> None:
    """Poll ``check()`` until it is true (the test fails naming ``what`` after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def store_orders(url: str) -> list[dict[str, Any]]:
    """Every order of the store: id, state, error code and every event (read straight from it)."""

    async def read() -> list[dict[str, Any]]:
        from buyer_agent.journal import open_store, verify_chain

        store = await open_store(url)
        try:
            out = []
            for rec in await store.orders():
                events = await store.events(rec.order_id)
                verify_chain(rec.order_id, events)
                error = rec.context.get("error") or {}
                out.append(
                    {
                        "order_id": rec.order_id,
                        "state": rec.state,
                        "error": error.get("code"),
                        "message": error.get("message"),
                        "events": [e.to_json() for e in events],
                        "lease_owner": rec.lease_owner,
                    }
                )
            return out
        finally:
            await store.aclose()

    return asyncio.run(read())


def signed_nonces(orders: Iterable[dict[str, Any]]) -> dict[int, set[str]]:
    """Every EVM transaction any order journaled as signed, by its nonce (decoded from the raw bytes)."""
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    by_nonce: dict[int, set[str]] = {}
    for order in orders:
        for event in order["events"]:
            for tx in (event.get("payload") or {}).get("txs") or ():
                # An escrow's ``paid`` event lists tx ids only; the signed ones are the dicts.
                if not isinstance(tx, dict) or not str(tx.get("chain", "")).startswith("eip155:"):
                    continue
                signed = TypedTransaction.from_bytes(HexBytes(bytes.fromhex(tx["raw"])))
                nonce = int(signed.as_dict()["nonce"])
                by_nonce.setdefault(nonce, set()).add(str(tx["tx_id"]).lower())
    return by_nonce


def transfers_from(info: dict[str, Any], address: str) -> list[tuple[str, int]]:
    """The USDC Transfer logs on chain sent from ``address``: (transaction hash, amount in base units)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    logs = w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": Web3.to_checksum_address(info["evm"]["token_address"]),
            "topics": [TRANSFER_TOPIC, "0x" + address.lower()[2:].rjust(64, "0")],
        }
    )
    return [(log["transactionHash"].to_0x_hex().lower(), int(bytes(log["data"]).hex(), 16)) for log in logs]


def pairings_of(info: dict[str, Any], address: str) -> list[str]:
    """The ids of the market's pairings issued to ``address`` (read with the platform key)."""
    import httpx

    url = f"{info['url']}/api/v1/machines/{info['machine_id']}/agent-pairings"
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(headers={"x-api-key": info["api_key"]}, timeout=30) as client:
        while True:
            page = client.get(url, params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
            items += page["items"]
            cursor = page.get("nextCursor")
            if not cursor:
                break
    return [p["id"] for p in items if str(p.get("agentAddress", "")).lower() == address.lower()]
