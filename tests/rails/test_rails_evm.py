"""EvmRail on a real anvil: payments, escrow, exactly-once across restarts, drops, reverts, wrong chains."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from buyer_agent import Money
from buyer_agent._errors import PaymentMismatchError, RailError, TransactionRevertedError
from buyer_agent.journal import Journal
from buyer_agent.rails import EvmRail, PaymentRequest, SignedTx, TxStatus
from buyer_agent.rails._evm_abi import TRANSFER_TOPIC, order_key
from buyer_agent.sandbox.chains import AnvilNode, EscrowDeposit, EvmChain, EvmWallet, anvil_available
from buyer_agent.sandbox.contracts import order_key as sandbox_order_key

pytestmark = [
    pytest.mark.chains,
    pytest.mark.skipif(not anvil_available(), reason="anvil not installed (scripts/setup)"),
]

T = TypeVar("T")
USDC = 1_000_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    with AnvilNode(accounts=2) as started:
        yield started


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> EvmChain:
    return EvmChain.setup(node)


@pytest.fixture(autouse=True)
def _automine_back_on(node: AnvilNode) -> Iterator[None]:
    yield
    node.set_automine(True)


def request(
    chain: EvmChain,
    buyer: EvmWallet,
    payee: str,
    amount: int,
    *,
    order_id: str,
    rail_type: str = "wallet",
    **kw: Any,
) -> PaymentRequest:
    escrow = chain.escrow_address if rail_type in ("onchain-escrow", "escrow") else None
    return PaymentRequest(
        order_id=order_id,
        rail_type=rail_type,
        chain=kw.pop("chain_id", chain.caip2),
        token=chain.token_address,
        payer=buyer.address,
        payee=payee,
        amount=Money(amount, 6, "USDC"),
        escrow_address=escrow,
        **kw,
    )


def transfers_from(chain: EvmChain, address: str) -> int:
    """How many ERC-20 Transfer logs of the test token ``address`` ever sent (payments on chain)."""
    logs = chain.w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": chain.w3.to_checksum_address(chain.token_address),
            "topics": [TRANSFER_TOPIC, "0x" + "0" * 24 + address.lower().removeprefix("0x")],
        }
    )
    return len(logs)


def mined_nonce(chain: EvmChain, address: str) -> int:
    return int(chain.w3.eth.get_transaction_count(chain.w3.to_checksum_address(address), "latest"))


async def settle(rail: EvmRail, txs: Sequence[SignedTx]) -> list[TxStatus]:
    """What the workflow does on resume: status → broadcast if needed → wait."""
    out = []
    for tx in txs:
        state = await rail.status(tx)
        if state is TxStatus.PENDING:
            await rail.broadcast(tx)
            state = await rail.wait(tx, 10)
        out.append(state)
    return out


def journaled(txs: Sequence[SignedTx]) -> list[SignedTx]:
    """The transactions as a restarted process reads them back from the journal."""
    text = json.dumps([t.to_json() for t in txs])
    return [SignedTx.from_json(d) for d in json.loads(text)]


def test_order_key_is_the_escrow_contracts_rule() -> None:
    assert order_key("ord_1") == sandbox_order_key("ord_1")


def test_direct_payment_moves_exactly_the_amount_and_builds_the_proof(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        assert rail.supports("wallet", chain.caip2) and rail.supports("wdk-usdt-transfer", chain.caip2)
        assert not rail.supports("wallet", "eip155:1") and not rail.supports("wallet", "solana:abc")
        req = request(chain, buyer, payee, 2_500_000, order_id="direct-1")
        txs = await rail.prepare(req)
        # Signed, not sent: nothing moved, no nonce used.
        assert [t.purpose for t in txs] == ["transfer"]
        assert txs[0].meta["nonce"] == 0 and txs[0].meta["from"] == buyer.address
        assert mined_nonce(chain, buyer.address) == 0 and chain.usdc_balance(payee) == 0
        await rail.broadcast(txs[0])
        assert await rail.wait(txs[0], 10) is TxStatus.CONFIRMED
        await rail.verify(req, txs)
        proof = rail.proof(req, txs)
        assert proof == {
            "verification_mode": "rpc",
            "chain": chain.caip2,
            "token": "USDC",
            "token_address": chain.token_address,
            "payer_address": buyer.address,
            "payee_address": payee,
            "amount": "2.5",
            "raw_amount": "2500000",
            "token_decimals": 6,
            "transaction_hash": txs[0].tx_id,
        }
        # A check against a different amount fails: the log is read, not assumed.
        with pytest.raises(PaymentMismatchError):
            await rail.verify(request(chain, buyer, payee, 2_000_000, order_id="direct-1"), txs)
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee) == 2_500_000
    assert chain.usdc_balance(buyer.address) == 2_500_000
    assert transfers_from(chain, buyer.address) == 1


def test_escrow_lock_then_release_pays_the_payee(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=3 * USDC)
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, 2 * USDC, order_id="escrow-release-1", rail_type="onchain-escrow")

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        txs = await rail.prepare(req)
        assert [t.purpose for t in txs] == ["approve", "escrow_deposit"]
        assert [t.meta["nonce"] for t in txs] == [0, 1]
        assert await settle(rail, txs) == [TxStatus.CONFIRMED, TxStatus.CONFIRMED]
        await rail.verify(req, txs)
        lock = rail.escrow_proof(req, txs)
        assert (lock.transaction_hash, lock.chain, lock.escrow_address) == (
            txs[1].tx_id,
            chain.caip2,
            chain.escrow_address,
        )
        held = chain.escrow_deposit(req.order_id)
        assert (held.state, held.amount, held.payee) == (EscrowDeposit.HELD, 2 * USDC, payee)
        assert chain.usdc_balance(buyer.address) == 1 * USDC and chain.usdc_balance(payee) == 0
        release = await rail.prepare_release(req)
        assert [t.purpose for t in release] == ["escrow_release"]
        assert await settle(rail, release) == [TxStatus.CONFIRMED]
        await rail.verify(req, release)
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee) == 2 * USDC
    assert chain.escrow_deposit(req.order_id).state == EscrowDeposit.RELEASED


def test_escrow_lock_then_arbiter_refund_restores_the_buyer(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=3 * USDC)
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, 2 * USDC, order_id="escrow-refund-1", rail_type="escrow")

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        txs = await rail.prepare(req)
        assert await settle(rail, txs) == [TxStatus.CONFIRMED, TxStatus.CONFIRMED]
        await rail.verify(req, txs)
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(buyer.address) == 1 * USDC
    chain.refund(req.order_id)  # the arbiter: the deployer key
    assert chain.usdc_balance(buyer.address) == 3 * USDC
    assert chain.usdc_balance(payee) == 0
    assert chain.escrow_deposit(req.order_id).state == EscrowDeposit.REFUNDED


@pytest.mark.parametrize("cut", ["after_sign", "after_broadcast", "after_receipt"])
def test_a_restart_at_any_cut_point_pays_exactly_once(node: AnvilNode, chain: EvmChain, cut: str) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, 1 * USDC, order_id=f"cut-{cut}")

    async def before_the_cut() -> list[dict[str, Any]]:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        txs = await rail.prepare(req)
        if cut == "after_broadcast":
            node.set_automine(False)
            await rail.broadcast(txs[0])
            assert await rail.status(txs[0]) is TxStatus.PENDING
        if cut == "after_receipt":
            await rail.broadcast(txs[0])
            assert await rail.wait(txs[0], 10) is TxStatus.CONFIRMED
        await rail.aclose()
        return [t.to_json() for t in txs]  # what the journal holds; the rail object is gone

    async def after_the_restart(rows: list[dict[str, Any]]) -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        txs = journaled([SignedTx.from_json(r) for r in rows])
        if cut == "after_broadcast":
            assert await rail.status(txs[0]) is TxStatus.PENDING
            await rail.broadcast(txs[0])  # the node already knows these bytes: success
            node.set_automine(True)
            node.mine()
        assert await settle(rail, txs) == [TxStatus.CONFIRMED]
        await rail.broadcast(txs[0])  # re-sending mined bytes is harmless
        await rail.verify(req, txs)
        assert rail.proof(req, txs)["transaction_hash"] == txs[0].tx_id
        await rail.aclose()

    rows = run(before_the_cut())
    run(after_the_restart(rows))
    assert transfers_from(chain, buyer.address) == 1
    assert chain.usdc_balance(payee) == 1 * USDC
    assert chain.usdc_balance(buyer.address) == 4 * USDC


def test_a_dropped_transaction_whose_nonce_was_reused_is_dropped_and_only_then_reprepared(
    node: AnvilNode, chain: EvmChain
) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address
    other = EvmWallet.create().address
    req = request(chain, buyer, payee, 1 * USDC, order_id="dropped-1")

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, drop_settle_s=0.3)
        node.set_automine(False)
        (first,) = await rail.prepare(req)
        await rail.broadcast(first)
        node.drop_transaction(first.tx_id)
        # Gone from the pool but its nonce is unused: it may still be re-sent, so not DROPPED.
        assert await rail.status(first) is TxStatus.PENDING
        node.set_automine(True)
        chain.transfer_usdc(buyer, other, 1)  # another transaction takes the nonce
        # Nonce used, no receipt: DROPPED only once that has held for the settle time.
        assert await rail.status(first) is TxStatus.PENDING
        assert await rail.wait(first, 5) is TxStatus.DROPPED
        await rail.broadcast(first)  # its nonce is used: nothing is sent, and nothing fails
        assert await rail.status(first) is TxStatus.DROPPED
        (second,) = await rail.prepare(req)
        assert second.meta["nonce"] == first.meta["nonce"] + 1
        assert await settle(rail, [second]) == [TxStatus.CONFIRMED]
        assert await rail.status(first) is TxStatus.DROPPED
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(payee) == 1 * USDC
    assert chain.usdc_balance(buyer.address) == 4 * USDC - 1


def test_a_mined_transaction_whose_receipt_is_late_is_never_dropped(chain: EvmChain) -> None:
    # A node may count a mined transaction's nonce before it serves the receipt. One look at "nonce
    # used, no receipt" called it DROPPED and the runner signed a second payment (crash suite, 2 in
    # ~700 orders): the verdict must hold for the settle time first.
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, 1 * USDC, order_id="late-receipt-1")

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, drop_settle_s=0.5)
        (tx,) = await rail.prepare(req)
        await rail.broadcast(tx)
        real = rail._receipt
        hidden = {"left": 6}  # the receipt lookups that find nothing yet

        async def late(tx_id: str) -> Any:
            if hidden["left"] > 0:
                hidden["left"] -= 1
                return None
            return await real(tx_id)

        rail._receipt = late  # type: ignore[method-assign]
        assert await rail.status(tx) is TxStatus.PENDING  # mined, nonce used, receipt not served yet
        assert await rail.wait(tx, 5) is TxStatus.CONFIRMED
        await rail.verify(req, [tx])
        await rail.aclose()

    run(main())
    assert transfers_from(chain, buyer.address) == 1
    assert chain.usdc_balance(payee) == 1 * USDC


def test_a_transfer_beyond_the_balance_reverts_with_its_reason(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=100)
    payee = EvmWallet.create().address
    req = request(chain, buyer, payee, 1 * USDC, order_id="revert-1")

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        txs = await rail.prepare(req)  # a fixed gas limit: signing does not depend on a doomed estimate
        await rail.broadcast(txs[0])
        assert await rail.wait(txs[0], 10) is TxStatus.REVERTED
        with pytest.raises(TransactionRevertedError) as caught:
            await rail.verify(req, txs)
        assert caught.value.tx_id == txs[0].tx_id
        assert caught.value.reason == "ERC20: insufficient balance"
        await rail.aclose()

    run(main())
    assert chain.usdc_balance(buyer.address) == 100 and chain.usdc_balance(payee) == 0


def test_a_wrong_chain_is_refused_before_anything_is_signed(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address

    async def main() -> None:
        anywhere = EvmRail(chain.rpc_url, buyer.private_key)  # any eip155 chain, checked on the node
        assert anywhere.supports("wallet", "eip155:1")
        with pytest.raises(RailError, match=r"wrong chain.*eip155:31337"):
            await anywhere.prepare(
                request(chain, buyer, payee, USDC, order_id="wrong-1", chain_id="eip155:1")
            )
        mainnet = EvmRail(chain.rpc_url, buyer.private_key, chain="eip155:1")
        with pytest.raises(RailError, match="wrong chain"):
            await mainnet.prepare(request(chain, buyer, payee, USDC, order_id="wrong-2", chain_id="eip155:1"))
        with pytest.raises(RailError, match="cannot pay"):
            await mainnet.prepare(request(chain, buyer, payee, USDC, order_id="wrong-3"))
        # No nonce was reserved by the refusals: the next payment takes nonce 0.
        (tx,) = await anywhere.prepare(request(chain, buyer, payee, USDC, order_id="wrong-4"))
        assert tx.meta["nonce"] == 0
        for rail in (anywhere, mainnet):
            await rail.aclose()

    run(main())
    assert mined_nonce(chain, buyer.address) == 0 and chain.usdc_balance(payee) == 0


def test_fees_above_the_cap_are_refused(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        with pytest.raises(RailError, match="above the cap"):
            await rail.prepare(request(chain, buyer, payee, USDC, order_id="fee-1", fee_cap_wei=1))
        capped = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, max_fee_per_gas_cap=10**12)
        (tx,) = await capped.prepare(request(chain, buyer, payee, USDC, order_id="fee-2"))
        assert tx.meta["max_fee_per_gas"] <= 10**12
        for r in (rail, capped):
            await r.aclose()

    run(main())


def test_concurrent_orders_from_one_wallet_get_distinct_nonces_and_all_land(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=10 * USDC)
    payees = [EvmWallet.create().address for _ in range(5)]

    async def main() -> None:
        rail = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2)
        batches = await asyncio.gather(
            *(
                rail.prepare(request(chain, buyer, p, USDC, order_id=f"many-{i}"))
                for i, p in enumerate(payees)
            )
        )
        txs = [b[0] for b in batches]
        assert sorted(t.meta["nonce"] for t in txs) == [0, 1, 2, 3, 4]
        for tx in sorted(txs, key=lambda t: -int(t.meta["nonce"])):  # out of order on purpose
            await rail.broadcast(tx)
        assert [await rail.wait(t, 10) for t in txs] == [TxStatus.CONFIRMED] * 5
        await rail.aclose()

    run(main())
    assert [chain.usdc_balance(p) for p in payees] == [USDC] * 5


def test_the_journal_keeps_nonce_reservations_across_restarts(chain: EvmChain, tmp_path: Any) -> None:
    buyer = chain.new_wallet(usdc=5 * USDC)
    payee = EvmWallet.create().address

    async def main() -> None:
        journal = Journal(tmp_path / "j.db")
        first = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, nonce_store=journal)
        (a,) = await first.prepare(request(chain, buyer, payee, USDC, order_id="nonce-1"))
        await first.aclose()
        journal.close()
        journal = Journal(tmp_path / "j.db")  # a restart: a signed, unsent payment holds nonce 0
        second = EvmRail(chain.rpc_url, buyer.private_key, chain=chain.caip2, nonce_store=journal)
        (b,) = await second.prepare(request(chain, buyer, payee, USDC, order_id="nonce-2"))
        assert (a.meta["nonce"], b.meta["nonce"]) == (0, 1)
        assert await settle(second, [a, b]) == [TxStatus.CONFIRMED, TxStatus.CONFIRMED]
        await second.aclose()
        journal.close()

    run(main())
    assert chain.usdc_balance(payee) == 2 * USDC


def test_keys_never_show_in_reprs_or_signed_transactions(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=USDC)
    secret = buyer.private_key.reveal()
    rail = EvmRail(chain.rpc_url, secret, chain=chain.caip2)
    assert secret.removeprefix("0x") not in repr(rail)
    (tx,) = run(rail.prepare(request(chain, buyer, EvmWallet.create().address, USDC, order_id="k-1")))
    assert secret.removeprefix("0x") not in json.dumps(tx.to_json())
    with pytest.raises(RailError) as caught:
        EvmRail(chain.rpc_url, "0x1234deadbeef")
    assert "1234deadbeef" not in str(caught.value)
    run(rail.aclose())
