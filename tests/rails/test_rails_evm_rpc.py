"""The EVM rail's own JSON-RPC transport, between the rail and a real anvil: what it asks, and how often.

A recording proxy on 127.0.0.1 forwards each request to anvil as it is and notes its methods (a
batch as the list of its methods); in one mode it refuses batches, as some node gateways do.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from buyer_agent import Money
from buyer_agent._errors import RailError
from buyer_agent.rails import EvmRail, PaymentRequest, TxStatus
from buyer_agent.rails._evm_rpc import EvmRpc, NodeError
from buyer_agent.sandbox.chains import AnvilNode, EvmChain, EvmWallet, anvil_available

pytestmark = [
    pytest.mark.chains,
    pytest.mark.skipif(not anvil_available(), reason="anvil not installed (scripts/setup)"),
]

USDC = 1_000_000


@pytest.fixture(scope="module")
def chain() -> Iterator[EvmChain]:
    with AnvilNode(accounts=2) as node:
        yield EvmChain.setup(node)


class Proxy:
    """Forwards JSON-RPC to ``upstream``; ``seen`` holds each request's method (a list for a batch)."""

    def __init__(self, upstream: str, *, refuse_batches: bool = False) -> None:
        self.seen: list[Any] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                doc = json.loads(body)
                proxy.seen.append([c["method"] for c in doc] if isinstance(doc, list) else doc["method"])
                if isinstance(doc, list) and refuse_batches:
                    answer = json.dumps(
                        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}}
                    ).encode()
                else:
                    request = urllib.request.Request(
                        upstream, data=body, headers={"content-type": "application/json"}
                    )
                    with urllib.request.urlopen(request, timeout=30) as upstream_answer:
                        answer = upstream_answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def payment(chain: EvmChain, buyer: EvmWallet, order_id: str) -> PaymentRequest:
    return PaymentRequest(
        order_id=order_id,
        rail_type="wallet",
        chain=chain.caip2,
        token=chain.token_address,
        payer=buyer.address,
        payee=EvmWallet.create().address,
        amount=Money(USDC, 6, "USDC"),
    )


def test_prepare_right_after_check_funds_signs_with_what_check_funds_read(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    request = payment(chain, buyer, "rpc-priced")

    async def main(url: str) -> TxStatus:
        rail = EvmRail(url, buyer.private_key, chain=chain.caip2)
        try:
            await rail.node_chain()
            await rail.check_funds(request)
            (tx,) = await rail.prepare(request)
            await rail.broadcast(tx)
            return await rail.wait(tx, 10)
        finally:
            await rail.aclose()

    with Proxy(chain.rpc_url) as proxy:
        assert asyncio.run(main(proxy.url)) is TxStatus.CONFIRMED
    reads = [
        "eth_getBlockByNumber",
        "eth_maxPriorityFeePerGas",
        "eth_estimateGas",
        "eth_getTransactionCount",
        "eth_call",
        "eth_getBalance",
    ]
    # The balances, fees, gas and nonce in one round trip; the genesis block names the nonce scope;
    # then nothing but the bytes and their receipt.
    assert proxy.seen == [
        "eth_chainId",
        reads,
        "eth_getBlockByNumber",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
    ]


def test_prepare_on_its_own_reads_the_fees_itself(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    request = payment(chain, buyer, "rpc-alone")

    async def main(url: str) -> None:
        rail = EvmRail(url, buyer.private_key, chain=chain.caip2)
        try:
            await rail.check_funds(request)
            await rail.prepare(request)
            await rail.prepare(request)  # what check_funds read served one prepare only
        finally:
            await rail.aclose()

    with Proxy(chain.rpc_url) as proxy:
        asyncio.run(main(proxy.url))
    batches = [m for m in proxy.seen if isinstance(m, list)]
    assert len(batches) == 2 and "eth_getBalance" in batches[0] and "eth_getBalance" not in batches[1]
    assert "eth_getBlockByNumber" in batches[1] and "eth_getTransactionCount" in batches[1]


def test_a_node_that_refuses_batches_is_asked_one_call_at_a_time(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)

    async def main(url: str) -> list[TxStatus]:
        rail = EvmRail(url, buyer.private_key, chain=chain.caip2)
        states = []
        try:
            for order_id in ("rpc-nobatch-1", "rpc-nobatch-2"):
                request = payment(chain, buyer, order_id)
                await rail.check_funds(request)
                (tx,) = await rail.prepare(request)
                await rail.broadcast(tx)
                states.append(await rail.wait(tx, 10))
        finally:
            await rail.aclose()
        return states

    with Proxy(chain.rpc_url, refuse_batches=True) as proxy:
        assert asyncio.run(main(proxy.url)) == [TxStatus.CONFIRMED, TxStatus.CONFIRMED]
    batches = [m for m in proxy.seen if isinstance(m, list)]
    assert len(batches) == 1  # refused once; never tried again
    assert proxy.seen.count("eth_getBalance") == 2 and proxy.seen.count("eth_estimateGas") == 2


def test_a_node_error_keeps_its_code_message_and_data_and_a_dead_node_is_retryable(chain: EvmChain) -> None:
    async def main() -> None:
        rpc = EvmRpc(chain.rpc_url)
        try:
            with pytest.raises(NodeError) as caught:
                await rpc.call("eth_no_such_method", [])
            assert isinstance(caught.value.code, int) and caught.value.node_message
            assert "eth_no_such_method" in str(caught.value)
            (ok, refused) = await rpc.batch([("eth_chainId", []), ("eth_no_such_method", [])])
            assert ok == hex(int(chain.caip2.split(":")[1])) and isinstance(refused, NodeError)
        finally:
            await rpc.aclose()
        dead = EvmRpc("http://127.0.0.1:9")
        with pytest.raises(RailError) as down:
            await dead.call("eth_chainId")
        assert down.value.retryable and not isinstance(down.value, NodeError)
        await dead.aclose()

    asyncio.run(main())
