"""An order on the sandbox whose payment a reorg removes before its confirmation depth.

The sandbox's anvil mines only when this test says so (a block every 0.15 s, as interval mining
would); when the buyer's payment lands, the block holding it is reorged away (``anvil_reorg``). The
EVM rail waits for 3 confirmations, sends the same signed bytes again, and the order confirms: one
transfer, by the transaction journaled before the first broadcast, and a journal that verifies.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import Money
from buyer_agent.journal import Journal
from buyer_agent.workflow import Acceptance, Deadlines, OrderSpec, OrderState

pytestmark = pytest.mark.chains

DEPTH = 3
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "error" not in answer, answer
    return answer["result"]


@pytest.fixture(scope="module")
def info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("reorg-market"), solana=False)
    try:
        yield sandbox.start().to_json()
    finally:
        sandbox.stop()


class ReorgingMiner:
    """Mines a block every ``every`` s; removes, once, the first block holding a tx from ``sender``."""

    def __init__(self, url: str, sender: str, every: float = 0.15) -> None:
        self.url, self.sender, self.every = url, sender.lower(), every
        self.reorged: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reorging-miner", daemon=True)

    def __enter__(self) -> ReorgingMiner:
        rpc(self.url, "evm_setAutomine", [False])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        rpc(self.url, "evm_setAutomine", [True])

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            rpc(self.url, "anvil_mine", ["0x1"])
            if self.reorged:
                continue
            block = rpc(self.url, "eth_getBlockByNumber", ["latest", True])
            mine = [tx["hash"] for tx in block["transactions"] if tx["from"].lower() == self.sender]
            if mine:
                # Let the rail see it at depth 1 first, then take the block away.
                self._stop.wait(0.4)
                rpc(self.url, "anvil_reorg", [1, []])
                self.reorged.extend(mine)


def transfers_from(info: dict[str, Any], address: str) -> list[str]:
    topic_from = "0x" + "0" * 24 + address.lower().removeprefix("0x")
    logs = rpc(
        info["evm"]["rpc_url"],
        "eth_getLogs",
        [
            {
                "fromBlock": "0x0",
                "toBlock": "latest",
                "address": info["evm"]["token_address"],
                "topics": [TRANSFER_TOPIC, topic_from],
            }
        ],
    )
    return [str(entry["transactionHash"]) for entry in logs]


def test_a_payment_reorged_out_before_its_depth_is_sent_again_and_the_order_confirms(
    info: dict[str, Any], tmp_path: Path
) -> None:
    from buyer_agent.market import AsyncMarketClient
    from buyer_agent.rails import EvmRail
    from buyer_agent.workflow import PairingSession
    from buyer_agent.workflow._runner import Runner

    buyer = str(info["wallets"]["evm"]["address"])
    before = transfers_from(info, buyer)
    db = tmp_path / "j.db"

    async def go() -> Any:
        journal = Journal(db)
        market = AsyncMarketClient(info["url"], api_key=info["api_key"])
        rail = EvmRail(
            info["evm"]["rpc_url"],
            info["wallets"]["evm"]["private_key"],
            chain=info["evm"]["chain"],
            nonce_store=journal,
            confirmations=DEPTH,
        )
        pairing = PairingSession.with_platform_key(
            market, machine_id=info["machine_id"], agent_key=info["wallets"]["evm"]["private_key"]
        )
        runner = Runner(market=market, journal=journal, rails=[rail], pairing=pairing, poll_interval=0.05)
        try:
            return await runner.buy(
                OrderSpec(
                    service_type="compute.marketplace",
                    operation="sha256",
                    input={"data": "reorg"},
                    budget=Money.parse("2.50 USDC"),
                    rail="wallet",
                    chain="evm",
                    acceptance=Acceptance(json_schema={"type": "object", "required": ["sha256"]}),
                    deadlines=Deadlines(payment=30),
                )
            )
        finally:
            await rail.aclose()
            await market.aclose()
            journal.close()

    with ReorgingMiner(info["evm"]["rpc_url"], buyer) as miner:
        summary = asyncio.run(go())
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert len(miner.reorged) == 1, "the payment's block was never reorged away"
    journal = Journal(db)
    try:
        assert journal.verify(summary.order_id) > 10
        events = journal.events(summary.order_id)
    finally:
        journal.close()
    # One signature: the payment was journaled once, never dropped and re-prepared.
    (paid,) = [e for e in events if e.trigger == "pay"]
    (signed,) = paid.payload["txs"]
    assert not [e for e in events if e.trigger.endswith("_dropped")]
    # The transaction the reorg removed is the one journaled, and the one finally mined.
    assert miner.reorged == [signed["tx_id"]]
    assert summary.payment is not None and summary.payment["tx"] == signed["tx_id"]
    assert transfers_from(info, buyer) == [*before, signed["tx_id"]]
    receipt = rpc(info["evm"]["rpc_url"], "eth_getTransactionReceipt", [signed["tx_id"]])
    assert receipt is not None and int(receipt["status"], 16) == 1
