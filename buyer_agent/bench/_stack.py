"""What the order benchmarks run against: a served sandbox, its funded wallet, the agent and the raw flow.

The sandbox runs as a separate process (``python -m buyer_agent sandbox``), so the market and anvil
never share this process's GIL with the agent being measured. The raw flow makes the same HTTP calls
with :class:`AsyncMarketClient` and the chain calls any EIP-1559 payer makes (base fee, tip, gas
estimate, sign, ``eth_sendRawTransaction``, receipt polls; nonces counted locally) with nothing of the
framework around them: no journal, no state machine, no strategy, no reconciliation reads.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from buyer_agent._errors import BuyerAgentError
from buyer_agent.market._transport import MAX_IN_FLIGHT
from buyer_agent.task import parse_task
from buyer_agent.workflow import OrderSpec

__all__ = ["BENCH_POLICY", "BenchTask", "RawBuyer", "ServedSandbox", "bench_spec"]

_MINT = "0x40c10f19"  # mint(address,uint256)
_TRANSFER = "0xa9059cbb"  # transfer(address,uint256)
_RECEIPT_POLL_S = 0.1  # the EVM rail's default poll interval, so both sides wait alike

_TASK = """\
task:
  service_type: compute.marketplace
  task_type: hash
  operation: sha256
  input: {data: "benchmark"}
  region: eu-west
budget: "2.50 USDC"
strategy: cheapest
payment: {rail: wallet, chain: evm, max_fee_per_gas_gwei: 50}
acceptance: {outcome: completed}
"""


#: The delegation policy both sides pair with: the sandbox's default daily limit (20 USDC) would stop
#: a full run after a couple of dozen orders.
BENCH_POLICY: Mapping[str, Any] = {
    "per_transaction_limit": Decimal("5"),
    "daily_spend_limit": Decimal("1000000"),
    "currency": "USDC",
}


def bench_spec() -> OrderSpec:
    """The order every benchmark buys: one SHA-256 hash, paid by a direct USDC transfer on EVM."""
    return parse_task(_TASK, env={}).spec


@dataclass(frozen=True, slots=True)
class BenchTask:
    """The served sandbox's JSON line, kept as given (the keys in it are worthless test keys)."""

    info: Mapping[str, Any]

    @property
    def url(self) -> str:
        """The market's URL."""
        return str(self.info["url"])


class ServedSandbox:
    """``python -m buyer_agent sandbox`` in a child process, market state in memory."""

    def __init__(self, log_path: Path) -> None:
        self._log = log_path.open("w", encoding="utf-8")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", "sandbox"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self.stop()
            raise BuyerAgentError(f"the sandbox did not start; see {log_path}")
        self.task = BenchTask(json.loads(line))

    def stop(self) -> None:
        """Stop the sandbox and its chains."""
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()

    def new_wallet(self, usdc: int) -> str:
        """A fresh EVM key with 1 ETH and ``usdc`` minted: the raw flow's own wallet, with its own nonces."""
        account = Account.create()
        with httpx.Client(timeout=30) as http:
            _rpc_sync(
                http, self.task.info["evm"]["rpc_url"], "anvil_setBalance", [account.address, hex(10**18)]
            )
        self.mint(usdc, account.address)
        return str(account.key.to_0x_hex())

    def mint(self, usdc: int, to: str | None = None) -> None:
        """Mint ``usdc`` base units to ``to`` (default: the demo wallet) as the token owner."""
        info = self.task.info
        rpc = info["evm"]["rpc_url"]
        with httpx.Client(timeout=30) as http:
            owner = _rpc_sync(http, rpc, "eth_accounts", [])[0]
            wallet = str(to or info["wallets"]["evm"]["address"]).lower()[2:]
            data = _MINT + wallet.rjust(64, "0") + hex(usdc)[2:].rjust(64, "0")
            tx = {"from": owner, "to": info["evm"]["token_address"], "data": data, "gas": hex(100_000)}
            tx_hash = _rpc_sync(http, rpc, "eth_sendTransaction", [tx])
            while _rpc_sync(http, rpc, "eth_getTransactionReceipt", [tx_hash]) is None:
                time.sleep(0.05)

    def agent_kwargs(self, state_dir: Path) -> dict[str, Any]:
        """Keyword arguments for :class:`BuyerAgent` on this sandbox."""
        info = self.task.info
        return {
            "machine_id": info["machine_id"],
            "api_key": info["api_key"],
            "evm_key": info["wallets"]["evm"]["private_key"],
            "evm_rpc": info["evm"]["rpc_url"],
            "solana_key": info["wallets"]["solana"]["secret_key"],
            "solana_rpc": info["solana"]["rpc_url"],
            "state_dir": state_dir,
            "delegation_policy": BENCH_POLICY,
        }


def _rpc_sync(http: httpx.Client, url: str, method: str, params: list[Any]) -> Any:
    body = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
    if "error" in body:
        raise BuyerAgentError(f"{method}: {body['error']}")
    return body["result"]


class RawBuyer:
    """The order flow made raw: the market client's calls and hand-signed ERC-20 transfers."""

    def __init__(
        self, task: BenchTask, market: Any, token: Any, key: str, denied: frozenset[str] = frozenset()
    ) -> None:
        info = task.info
        self._denied = denied
        self._market = market
        self._token = token
        self._machine_id = info["machine_id"]
        self._chain = info["evm"]["chain"]
        self._rpc_url = info["evm"]["rpc_url"]
        self._account = Account.from_key(key)
        self._http = httpx.AsyncClient(timeout=30)
        # Bounded like the market client's requests, so many orders in flight queue cheaply.
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._nonce: int | None = None
        self._nonce_lock = asyncio.Lock()
        self._chain_id = int(self._chain.split(":")[1])
        self._pairing_id: str | None = None

    async def aclose(self) -> None:
        """Close the RPC client."""
        await self._http.aclose()

    async def _rpc(self, method: str, params: list[Any]) -> Any:
        async with self._slots:
            answer = await self._http.post(
                self._rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            )
        body = answer.json()
        if "error" in body:
            raise BuyerAgentError(f"{method}: {body['error']}")
        return body["result"]

    async def _next_nonce(self) -> int:
        async with self._nonce_lock:
            if self._nonce is None:
                self._nonce = int(
                    await self._rpc("eth_getTransactionCount", [self._account.address, "pending"]), 16
                )
            nonce = self._nonce
            self._nonce += 1
            return nonce

    async def buy(self, pairing_id: str) -> str:
        """One order: search, order the cheapest wallet quote, pay, prove, execute, confirm, release."""
        m, token = self._market, self._token
        budget = {"max": Decimal("2.50"), "currency": "USDC"}
        search = (
            await m.search_market(
                {
                    "machine_id": self._machine_id,
                    "agent_pairing_id": pairing_id,
                    "service_type": "compute.marketplace",
                    "operation": "sha256",
                    "region": "eu-west",
                    "allow_external_handoff": False,
                    "budget": budget,
                },
                token,
            )
        ).item
        wallet_quotes = [
            q
            for q in search.quotes
            if q.payment.default_rail == "wallet"
            and q.payment.chain == self._chain
            and q.pricing.amount is not None
            and q.pricing.amount <= budget["max"]
            and q.service_id not in self._denied
            and q.skill_key not in self._denied
        ]
        quote = min(wallet_quotes, key=lambda q: q.pricing.amount)
        order = (
            await m.create_market_order(
                {
                    "machine_id": self._machine_id,
                    "agent_pairing_id": pairing_id,
                    "service_id": quote.service_id,
                    "search_id": search.id,
                    "quote_id": quote.id,
                    "operation": "sha256",
                    "input_payload": {"data": "benchmark"},
                    "budget": budget,
                },
                token,
            )
        ).item
        payment = (
            await m.create_payment_intent(
                order.id,
                {"rail": {"type": "wallet", "chain": self._chain, "payer_address": self._account.address}},
                token,
            )
        ).item
        rail = payment.rail
        meta = rail.metadata or {}
        raw_amount = int(str(meta.get("raw_amount", meta.get("rawAmount"))))
        payee = str(rail.payee_address)
        data = _TRANSFER + payee.lower()[2:].rjust(64, "0") + hex(raw_amount)[2:].rjust(64, "0")
        # What any EIP-1559 payer asks the node before signing: the base fee, the tip and the gas.
        base = int((await self._rpc("eth_getBlockByNumber", ["latest", False]))["baseFeePerGas"], 16)
        tip = int(await self._rpc("eth_maxPriorityFeePerGas", []), 16)
        call = {"from": self._account.address, "to": rail.token_address, "data": data}
        gas = int(await self._rpc("eth_estimateGas", [call]), 16)
        signed = self._account.sign_transaction(
            {
                "to": rail.token_address,
                "data": data,
                "value": 0,
                "gas": max(120_000, gas * 5 // 4),
                "nonce": await self._next_nonce(),
                "chainId": self._chain_id,
                "maxFeePerGas": min(2 * base + tip, 50 * 10**9),
                "maxPriorityFeePerGas": tip,
            }
        )
        tx_hash = await self._rpc(
            "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex().removeprefix("0x")]
        )
        while (receipt := await self._rpc("eth_getTransactionReceipt", [tx_hash])) is None:
            await asyncio.sleep(_RECEIPT_POLL_S)
        if int(receipt["status"], 16) != 1:
            raise BuyerAgentError(f"raw payment {tx_hash} reverted")
        await m.submit_payment_proof(
            order.id,
            {
                "verification_mode": "rpc",
                "chain": self._chain,
                "token": "USDC",
                "token_address": rail.token_address,
                "payer_address": self._account.address,
                "payee_address": payee,
                "amount": str(payment.amount),
                "token_decimals": 6,
                "raw_amount": str(raw_amount),
                "transaction_hash": tx_hash,
            },
            token,
        )
        await m.execute_market_order(order.id, {"input": {"data": "benchmark"}}, token)
        confirmed = await m.confirm_market_order(order.id, token)
        if confirmed.payment is not None and confirmed.payment.status == "release_pending":
            # As the market documents (and the agent does): confirm leaves a held payment
            # release_pending, and the buyer's payment/release closes it.
            await m.release_payment(order.id, None, token)
        return str(confirmed.order.status)
