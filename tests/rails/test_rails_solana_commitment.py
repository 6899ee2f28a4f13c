"""SolanaRail waits for the commitment it was built with: below it a landed transaction (even a failed
one) is PENDING. The LiteSVM RPC finalizes at once, so a proxy reports a lower level for a while."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

import pytest
from loopback_proxy import LoopbackProxy

from buyer_agent import Money
from buyer_agent.rails import PaymentRequest, SolanaRail, TxStatus
from buyer_agent.sandbox.chains import SolanaRpcServer, SolanaWallet
from buyer_agent.signers import LocalSolanaSigner

pytestmark = pytest.mark.chains

T = TypeVar("T")
USDC = 1_000_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class LevelProxy(LoopbackProxy):
    """Rewrites each ``confirmationStatus`` of ``getSignatureStatuses`` answers to ``level`` (None: as is)."""

    level: str | None = None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self.body(req)
        status, ctype, data = self.forward(req.command, req.path, body, dict(req.headers.items()))
        asked = json.loads(body or b"{}")
        if (
            self.level is not None
            and isinstance(asked, dict)
            and asked.get("method") == "getSignatureStatuses"
        ):
            answer = json.loads(data)
            for entry in answer.get("result", {}).get("value") or []:
                if entry is not None:
                    entry["confirmationStatus"] = self.level
            data = json.dumps(answer).encode()
        self.reply(req, status, ctype, data)


@pytest.fixture(scope="module")
def server() -> Iterator[SolanaRpcServer]:
    with SolanaRpcServer() as started:
        yield started


@pytest.fixture
def proxy(server: SolanaRpcServer) -> Iterator[LevelProxy]:
    bent = LevelProxy(server.rpc_url)
    try:
        yield bent
    finally:
        bent.close()


def request(server: SolanaRpcServer, buyer: SolanaWallet, payee: str, amount: int) -> PaymentRequest:
    return PaymentRequest(
        order_id="commit-1",
        rail_type="wallet",
        chain=server.caip2,
        token=server.mint,
        payer=buyer.address,
        payee=payee,
        amount=Money(amount, 6, "USDC"),
    )


def test_a_payment_is_pending_until_the_rails_commitment(server: SolanaRpcServer, proxy: LevelProxy) -> None:
    buyer = server.chain.new_wallet(usdc=5 * USDC)
    payee = SolanaWallet.create().address
    req = request(server, buyer, payee, USDC)

    async def main() -> None:
        signer = LocalSolanaSigner(buyer.secret_key)
        rail = SolanaRail(
            proxy.address, signer, chain=server.caip2, commitment="finalized", poll_interval=0.01
        )
        assert rail.signer is signer and rail.address == buyer.address and rail.commitment == "finalized"
        (tx,) = await rail.prepare(req)
        proxy.level = "confirmed"
        await rail.broadcast(tx)
        assert await rail.wait(tx, 0.3) is TxStatus.PENDING  # landed, only "confirmed"
        assert server.chain.usdc_balance(payee) == USDC
        confirmed = SolanaRail(proxy.address, signer, chain=server.caip2, commitment="confirmed")
        assert await confirmed.status(tx) is TxStatus.CONFIRMED  # enough for a rail that asks less
        proxy.level = None
        assert await rail.wait(tx, 5) is TxStatus.CONFIRMED
        await rail.verify(req, [tx])
        await rail.aclose()
        await confirmed.aclose()

    run(main())


def test_a_failed_transaction_is_reverted_only_at_the_commitment(
    server: SolanaRpcServer, proxy: LevelProxy
) -> None:
    buyer = server.chain.new_wallet(usdc=USDC // 2)
    req = request(server, buyer, SolanaWallet.create().address, USDC)  # more than the balance

    async def main() -> None:
        rail = SolanaRail(proxy.address, buyer.secret_key, chain=server.caip2, poll_interval=0.01)
        (tx,) = await rail.prepare(req)
        proxy.level = "processed"
        await rail.broadcast(tx)
        assert await rail.wait(tx, 0.3) is TxStatus.PENDING  # a fork could still drop it
        proxy.level = None
        assert await rail.wait(tx, 5) is TxStatus.REVERTED
        await rail.aclose()

    run(main())
