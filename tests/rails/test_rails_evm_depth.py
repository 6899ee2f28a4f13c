"""EvmRail at a confirmation depth on a real anvil that mines only when told: PENDING until the depth,
and a payment whose block a reorg removes is sent again — the same signed bytes, never re-signed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from buyer_agent import Money
from buyer_agent.rails import EvmRail, PaymentRequest, SignedTx, TxStatus
from buyer_agent.rails._evm_abi import TRANSFER_TOPIC
from buyer_agent.sandbox.chains import AnvilNode, EvmChain, EvmWallet, anvil_available

pytestmark = [
    pytest.mark.chains,
    pytest.mark.skipif(not anvil_available(), reason="anvil not installed (scripts/setup)"),
]

T = TypeVar("T")
USDC = 1_000_000
DEPTH = 3


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    with AnvilNode(accounts=2) as started:
        yield started


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> EvmChain:
    return EvmChain.setup(node)


@pytest.fixture
def buyer(node: AnvilNode, chain: EvmChain) -> Iterator[EvmWallet]:
    """A funded wallet; then the node mines only when a test says so (automine back on after)."""
    wallet = chain.new_wallet(usdc=5 * USDC)
    node.set_automine(False)
    try:
        yield wallet
    finally:
        node.set_automine(True)


def request(chain: EvmChain, buyer: EvmWallet, payee: str, amount: int, order_id: str) -> PaymentRequest:
    return PaymentRequest(
        order_id=order_id,
        rail_type="wallet",
        chain=chain.caip2,
        token=chain.token_address,
        payer=buyer.address,
        payee=payee,
        amount=Money(amount, 6, "USDC"),
    )


def transfers_from(chain: EvmChain, address: str) -> list[str]:
    """Hashes of the transactions that moved the test token out of ``address`` on the canonical chain."""
    logs = chain.w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": chain.w3.to_checksum_address(chain.token_address),
            "topics": [TRANSFER_TOPIC, "0x" + "0" * 24 + address.lower().removeprefix("0x")],
        }
    )
    return [log["transactionHash"].to_0x_hex() for log in logs]


def block_of(node: AnvilNode, tx: SignedTx) -> int | None:
    receipt = node.rpc("eth_getTransactionReceipt", [tx.tx_id])
    return None if receipt is None else int(receipt["blockNumber"], 16)


@contextlib.asynccontextmanager
async def mining(node: AnvilNode, every: float = 0.15) -> Any:
    """Mine one block every ``every`` seconds while the block runs (interval mining, driven here)."""
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await asyncio.to_thread(node.mine, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task


def test_a_payment_is_pending_until_its_depth_then_confirmed(
    node: AnvilNode, chain: EvmChain, buyer: EvmWallet
) -> None:
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, USDC, "depth-1")

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, confirmations=DEPTH)
        assert rail.confirmations == DEPTH and f"confirmations={DEPTH}" in repr(rail)
        (tx,) = await rail.prepare(req)
        await rail.broadcast(tx)
        assert await rail.status(tx) is TxStatus.PENDING  # in the pool
        seen = []
        for _ in range(DEPTH):
            await asyncio.to_thread(node.mine, 1)
            seen.append(await rail.status(tx))
        assert seen == [TxStatus.PENDING] * (DEPTH - 1) + [TxStatus.CONFIRMED]
        await rail.verify(req, [tx])
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee) == USDC


def test_wait_reports_pending_before_the_depth_and_a_revert_only_at_depth(
    node: AnvilNode, chain: EvmChain, buyer: EvmWallet
) -> None:
    payee = EvmWallet.create().address
    too_much = request(chain, buyer, payee, 50 * USDC, "depth-revert")  # beyond the balance: reverts

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, confirmations=DEPTH)
        (tx,) = await rail.prepare(too_much)
        await rail.broadcast(tx)
        await asyncio.to_thread(node.mine, 1)
        assert block_of(node, tx) is not None  # mined (and failed) at depth 1
        assert await rail.wait(tx, 0.3) is TxStatus.PENDING
        await asyncio.to_thread(node.mine, DEPTH - 1)
        assert await rail.status(tx) is TxStatus.REVERTED
        assert await rail.revert_reason(tx) == "ERC20: insufficient balance"
        await rail.aclose()

    run(main())


@pytest.mark.parametrize("seen_before_the_reorg", [True, False], ids=["seen", "unseen"])
def test_a_reorg_before_the_depth_sends_the_same_bytes_again_and_pays_once(
    node: AnvilNode, chain: EvmChain, buyer: EvmWallet, seen_before_the_reorg: bool
) -> None:
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, 2 * USDC, f"reorg-{seen_before_the_reorg}")
    signed: list[SignedTx] = []

    async def main() -> TxStatus:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, confirmations=DEPTH)
        (tx,) = await rail.prepare(req)
        signed.append(tx)
        await rail.broadcast(tx)
        await asyncio.to_thread(node.mine, 1)
        mined_in = block_of(node, tx)
        assert mined_in is not None
        if seen_before_the_reorg:
            assert await rail.status(tx) is TxStatus.PENDING  # at depth 1 of 3
        # The block holding the payment leaves the chain; anvil keeps nothing of it, not even in
        # its pool, and the buyer's nonce is free again.
        node.rpc("anvil_reorg", [1, []])
        assert block_of(node, tx) is None
        assert node.rpc("eth_getTransactionByHash", [tx.tx_id]) is None
        assert int(node.rpc("eth_getTransactionCount", [buyer.address, "latest"]), 16) == tx.meta["nonce"]
        async with mining(node):
            state = await rail.wait(tx, 20)
        await rail.verify(req, [tx])
        await rail.aclose()
        return state

    assert run(main()) is TxStatus.CONFIRMED
    (tx,) = signed
    # One transfer, by the very transaction that was signed first: nothing was signed again.
    assert transfers_from(chain, buyer.address) == [tx.tx_id]
    assert block_of(node, tx) is not None
    assert int(node.rpc("eth_getTransactionCount", [buyer.address, "latest"]), 16) == tx.meta["nonce"] + 1
    assert chain.usdc_balance(payee) == 2 * USDC
