"""SolanaRail on the real LiteSVM RPC: payment with ATA creation, re-sends, expiry, restarts, checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from buyer_agent import Money
from buyer_agent._errors import PaymentMismatchError, RailError, TransactionRevertedError
from buyer_agent.rails import PaymentRequest, SignedTx, SolanaRail, TxStatus
from buyer_agent.sandbox.chains import SolanaRpcServer, SolanaWallet

pytestmark = pytest.mark.chains

T = TypeVar("T")
USDC = 1_000_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def server() -> Iterator[SolanaRpcServer]:
    with SolanaRpcServer() as started:
        yield started


@pytest.fixture(autouse=True)
def _auto_process_back_on(server: SolanaRpcServer) -> Iterator[None]:
    yield
    server.ledger.set_auto_process(True)


def request(
    server: SolanaRpcServer, buyer: SolanaWallet, payee: str, amount: int, **kw: Any
) -> PaymentRequest:
    return PaymentRequest(
        order_id=kw.pop("order_id", "sol-1"),
        rail_type="wallet",
        chain=kw.pop("chain", server.caip2),
        token=kw.pop("token", server.mint),
        payer=buyer.address,
        payee=payee,
        amount=Money(amount, 6, "USDC"),
    )


def rail_of(server: SolanaRpcServer, buyer: SolanaWallet) -> SolanaRail:
    return SolanaRail(server.rpc_url, buyer.secret_key, chain=server.caip2, poll_interval=0.01)


def test_payment_creates_the_payees_token_account_and_moves_exactly_the_amount(
    server: SolanaRpcServer,
) -> None:
    chain = server.chain
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = SolanaWallet.create()  # no token account yet
    req = request(server, buyer, payee.address, 2_500_000)
    assert server.ledger.token_account(chain.token_account(payee.address)) is None

    async def main() -> None:
        rail = rail_of(server, buyer)
        assert rail.supports("wallet", server.caip2)
        assert not rail.supports("onchain-escrow", server.caip2) and not rail.supports("wallet", "eip155:1")
        (tx,) = await rail.prepare(req)
        assert tx.meta["from"] == buyer.address and tx.meta["last_valid_block_height"] > 0
        assert await rail.status(tx) is TxStatus.PENDING  # signed, not sent
        assert chain.usdc_balance(buyer.address) == 5 * USDC
        await rail.broadcast(tx)
        assert await rail.wait(tx, 10) is TxStatus.CONFIRMED
        await rail.verify(req, [tx])
        assert rail.proof(req, [tx]) == {
            "verification_mode": "recorded",
            "chain": server.caip2,
            "token": "USDC",
            "token_mint": server.mint,
            "payer_address": buyer.address,
            "payee_address": payee.address,
            "amount": "2.5",
            "raw_amount": "2500000",
            "token_decimals": 6,
            "transaction_signature": tx.tx_id,
        }
        with pytest.raises(PaymentMismatchError):
            await rail.verify(request(server, buyer, payee.address, 2_000_000), [tx])
        with pytest.raises(PaymentMismatchError):
            await rail.verify(request(server, buyer, SolanaWallet.create().address, 2_500_000), [tx])
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee.address) == 2_500_000
    assert chain.usdc_balance(buyer.address) == 2_500_000


def test_sending_the_same_bytes_again_never_pays_twice(server: SolanaRpcServer) -> None:
    chain = server.chain
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = chain.new_wallet()  # token account exists: the idempotent create is a no-op
    req = request(server, buyer, payee.address, USDC)

    async def main() -> None:
        rail = rail_of(server, buyer)
        (tx,) = await rail.prepare(req)
        await rail.broadcast(tx)
        assert await rail.wait(tx, 10) is TxStatus.CONFIRMED
        for _ in range(3):
            await rail.broadcast(tx)
            assert await rail.wait(tx, 10) is TxStatus.CONFIRMED
        await rail.verify(req, [tx])
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee.address) == USDC
    assert chain.usdc_balance(buyer.address) == 4 * USDC


@pytest.mark.parametrize("cut", ["after_sign", "after_broadcast", "after_receipt"])
def test_a_restart_at_any_cut_point_pays_exactly_once(server: SolanaRpcServer, cut: str) -> None:
    chain = server.chain
    buyer = chain.new_wallet(usdc=3 * USDC)
    payee = SolanaWallet.create()
    req = request(server, buyer, payee.address, USDC, order_id=f"sol-cut-{cut}")

    async def before_the_cut() -> str:
        rail = rail_of(server, buyer)
        (tx,) = await rail.prepare(req)
        if cut == "after_broadcast":
            server.ledger.set_auto_process(False)  # accepted, held, not landed
            await rail.broadcast(tx)
        if cut == "after_receipt":
            await rail.broadcast(tx)
            assert await rail.wait(tx, 10) is TxStatus.CONFIRMED
        await rail.aclose()
        return json.dumps(tx.to_json())  # the journal's copy

    async def after_the_restart(row: str) -> None:
        rail = rail_of(server, buyer)
        tx = SignedTx.from_json(json.loads(row))
        state = await rail.status(tx)
        if cut == "after_broadcast":
            assert state is TxStatus.PENDING
            await rail.broadcast(tx)  # the same bytes again while held
            server.ledger.set_auto_process(True)
            server.ledger.process_held()
            state = await rail.status(tx)
        if state is TxStatus.PENDING:
            await rail.broadcast(tx)
            state = await rail.wait(tx, 10)
        assert state is TxStatus.CONFIRMED
        await rail.verify(req, [tx])
        await rail.aclose()

    run(after_the_restart(run(before_the_cut())))
    assert chain.usdc_balance(payee.address) == USDC
    assert chain.usdc_balance(buyer.address) == 2 * USDC


def test_an_expired_blockhash_is_dropped_and_only_then_reprepared(server: SolanaRpcServer) -> None:
    chain = server.chain
    buyer = chain.new_wallet(usdc=3 * USDC)
    payee = SolanaWallet.create()
    req = request(server, buyer, payee.address, USDC, order_id="sol-expired")

    async def main() -> None:
        rail = rail_of(server, buyer)
        server.ledger.set_auto_process(False)
        (old,) = await rail.prepare(req)
        await rail.broadcast(old)
        server.ledger.drop_held()  # lost on the way; the blockhash is still valid, so it may come back
        assert await rail.status(old) is TxStatus.PENDING
        server.ledger.expire_blockhashes()
        server.ledger.set_auto_process(True)
        assert await rail.status(old) is TxStatus.DROPPED
        with pytest.raises(RailError, match="refused"):
            await rail.broadcast(old)  # expired bytes can never land
        (new,) = await rail.prepare(req)
        assert new.tx_id != old.tx_id
        await rail.broadcast(new)
        assert await rail.wait(new, 10) is TxStatus.CONFIRMED
        assert await rail.status(old) is TxStatus.DROPPED
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee.address) == USDC
    assert chain.usdc_balance(buyer.address) == 2 * USDC


def test_the_read_back_refuses_a_transfer_of_another_mint(server: SolanaRpcServer) -> None:
    # The right amount to the right payee, but in the sandbox's USDC mint while the intent named
    # another mint: peaq records Solana proofs unchecked, so the rail must refuse it itself.
    chain = server.chain
    buyer = chain.new_wallet(usdc=2 * USDC)
    payee = chain.new_wallet()
    paid = request(server, buyer, payee.address, USDC, order_id="sol-mint")
    other_mint = str(SolanaWallet.create().address)
    assert other_mint != server.mint

    async def main() -> None:
        rail = rail_of(server, buyer)
        (tx,) = await rail.prepare(paid)
        await rail.broadcast(tx)
        assert await rail.wait(tx, 10) is TxStatus.CONFIRMED
        await rail.verify(paid, [tx])  # the mint it really moved passes
        wrong = request(server, buyer, payee.address, USDC, order_id="sol-mint", token=other_mint)
        with pytest.raises(PaymentMismatchError) as caught:
            await rail.verify(wrong, [tx])
        assert caught.value.expected == USDC and caught.value.actual == 0
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee.address) == USDC


def test_a_transfer_beyond_the_balance_fails_and_moves_nothing(server: SolanaRpcServer) -> None:
    chain = server.chain
    buyer = chain.new_wallet(usdc=100)
    payee = SolanaWallet.create()
    req = request(server, buyer, payee.address, USDC, order_id="sol-poor")

    async def main() -> None:
        rail = rail_of(server, buyer)
        (tx,) = await rail.prepare(req)
        await rail.broadcast(tx)  # no preflight: it lands and fails, visibly
        assert await rail.wait(tx, 10) is TxStatus.REVERTED
        with pytest.raises(TransactionRevertedError, match="insufficient funds") as caught:
            await rail.verify(req, [tx])
        assert caught.value.tx_id == tx.tx_id
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(buyer.address) == 100
    assert chain.usdc_balance(payee.address) == 0


def test_a_wrong_chain_is_refused_before_anything_is_signed(server: SolanaRpcServer) -> None:
    buyer = server.chain.new_wallet(usdc=USDC)
    payee = SolanaWallet.create().address

    async def main() -> None:
        elsewhere = SolanaRail(
            server.rpc_url, buyer.secret_key, chain="solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
        )
        with pytest.raises(RailError, match="wrong chain"):
            await elsewhere.prepare(request(server, buyer, payee, USDC, chain=elsewhere.chain))
        rail = rail_of(server, buyer)
        with pytest.raises(RailError, match="cannot pay"):
            await rail.prepare(request(server, buyer, payee, USDC, chain="solana:other"))
        with pytest.raises(RailError, match="not a Solana address"):
            await rail.prepare(request(server, buyer, "0xnot-solana", USDC))
        for r in (elsewhere, rail):
            await r.aclose()

    run(main())
    assert server.chain.usdc_balance(buyer.address) == USDC
