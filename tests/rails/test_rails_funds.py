"""Before signing, the rails read the payer's balances: too few tokens or too little gas is refused.

On a real anvil and the LiteSVM RPC: the refusal names what the wallet holds and what the payment
needs, and nothing is signed (the wallet's nonce, token and gas balances stay as they were). The
chain's profile gives a rail its default depth (EVM) and commitment (Solana).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from buyer_agent import InsufficientFundsError, Money
from buyer_agent.networks import NativeToken, NetworkProfile, Networks
from buyer_agent.rails import EvmRail, PaymentRequest, SolanaRail, TxStatus
from buyer_agent.sandbox.chains import AnvilNode, EvmChain, EvmWallet, SolanaRpcServer, anvil_available

pytestmark = pytest.mark.chains

T = TypeVar("T")
USDC = 1_000_000
PAYEE = "0x000000000000000000000000000000000000dEaD"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    if not anvil_available():
        pytest.skip("anvil not installed (scripts/setup)")
    with AnvilNode(accounts=2) as started:
        yield started


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> EvmChain:
    return EvmChain.setup(node)


@pytest.fixture(scope="module")
def solana() -> Iterator[SolanaRpcServer]:
    with SolanaRpcServer() as started:
        yield started


def evm_request(chain: EvmChain, buyer: EvmWallet, amount: int, rail_type: str = "wallet") -> PaymentRequest:
    return PaymentRequest(
        order_id="ord_funds",
        rail_type=rail_type,
        chain=chain.caip2,
        token=chain.token_address,
        payer=buyer.address,
        payee=PAYEE,
        amount=Money(amount, 6, "USDC"),
        escrow_address=chain.escrow_address if rail_type == "onchain-escrow" else None,
    )


def evm_view(chain: EvmChain, wallet: EvmWallet) -> tuple[int, int, int]:
    """The wallet's nonce, USDC and ETH: all three move when anything is sent."""
    nonce = int(chain.w3.eth.get_transaction_count(chain.w3.to_checksum_address(wallet.address)))
    return nonce, chain.usdc_balance(wallet.address), chain.eth_balance(wallet.address)


def check(rail: EvmRail | SolanaRail, request: PaymentRequest) -> None:
    async def go() -> None:
        try:
            await rail.check_funds(request)
        finally:
            await rail.aclose()

    run(go())


def test_too_few_tokens_are_refused_naming_both_amounts(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=USDC // 2)
    before = evm_view(chain, buyer)
    with pytest.raises(InsufficientFundsError) as caught:
        check(EvmRail(chain.rpc_url, buyer.private_key), evm_request(chain, buyer, 800_000))
    err = caught.value
    assert err.code == "INSUFFICIENT_FUNDS" and not err.retryable
    assert err.asset == "USDC" and err.have == "0.5 USDC" and err.need == "0.8 USDC"
    assert "0.5 USDC" in str(err) and "0.8 USDC" in str(err) and buyer.address in str(err)
    assert "nothing was signed" in str(err)
    assert evm_view(chain, buyer) == before


def test_no_gas_money_is_refused_naming_both_amounts(chain: EvmChain) -> None:
    buyer = chain.new_wallet(eth_wei=10**9, usdc=5 * USDC)  # 1 gwei of ETH: a few gas units at most
    before = evm_view(chain, buyer)
    with pytest.raises(InsufficientFundsError) as caught:
        check(EvmRail(chain.rpc_url, buyer.private_key), evm_request(chain, buyer, USDC))
    err = caught.value
    assert err.asset == "ETH" and err.have == "0.000000001 ETH"
    assert err.need.endswith(" ETH") and err.need != err.have and "for gas" in str(err)
    assert evm_view(chain, buyer) == before


def test_the_gas_token_is_named_from_the_chains_profile(chain: EvmChain) -> None:
    buyer = chain.new_wallet(eth_wei=10**9, usdc=5 * USDC)
    nets = Networks([NetworkProfile(name="dev", chain=chain.caip2, native=NativeToken("DEV", 18))])
    with pytest.raises(InsufficientFundsError, match="not enough DEV"):
        check(EvmRail(chain.rpc_url, buyer.private_key, networks=nets), evm_request(chain, buyer, USDC))


def test_an_escrow_payment_prices_both_of_its_transactions(chain: EvmChain) -> None:
    # Enough gas for one 120k-gas transfer, not for approve + deposit (400k).
    probe = EvmRail(chain.rpc_url, chain.new_wallet().private_key)
    price = int(
        run(probe._rpc.call("eth_gasPrice")), 16
    )  # the node's price; the rail signs at about twice it
    run(probe.aclose())
    buyer = chain.new_wallet(eth_wei=price * 2 * 150_000, usdc=5 * USDC)
    check(EvmRail(chain.rpc_url, buyer.private_key), evm_request(chain, buyer, USDC))
    with pytest.raises(InsufficientFundsError, match=r"2 transaction\(s\)"):
        check(EvmRail(chain.rpc_url, buyer.private_key), evm_request(chain, buyer, USDC, "onchain-escrow"))


def test_a_wallet_that_can_pay_passes_and_then_pays(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=USDC)
    request = evm_request(chain, buyer, USDC)  # exactly its balance

    async def go() -> TxStatus:
        rail = EvmRail(chain.rpc_url, buyer.private_key)
        try:
            await rail.check_funds(request)
            (tx,) = await rail.prepare(request)
            await rail.broadcast(tx)
            return await rail.wait(tx, 30)
        finally:
            await rail.aclose()

    assert run(go()) is TxStatus.CONFIRMED
    assert chain.usdc_balance(buyer.address) == 0


def test_the_chains_profile_sets_the_depth_unless_the_rail_does(chain: EvmChain) -> None:
    wallet = chain.new_wallet()
    nets = Networks([NetworkProfile(name="dev", chain=chain.caip2, confirmations=4)])
    assert EvmRail(chain.rpc_url, wallet.private_key, chain=chain.caip2, networks=nets).confirmations == 4
    assert EvmRail(chain.rpc_url, wallet.private_key, networks=nets).depth_for(chain.caip2) == 4
    explicit = EvmRail(chain.rpc_url, wallet.private_key, networks=nets, confirmations=2)
    assert explicit.depth_for(chain.caip2) == 2
    assert EvmRail(chain.rpc_url, wallet.private_key).depth_for(chain.caip2) == 1


def test_a_payment_is_pending_until_the_profiles_depth(node: AnvilNode, chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=USDC)
    nets = Networks([NetworkProfile(name="dev", chain=chain.caip2, confirmations=3)])
    request = evm_request(chain, buyer, USDC)

    async def go() -> list[TxStatus]:
        rail = EvmRail(chain.rpc_url, buyer.private_key, networks=nets)
        seen = []
        try:
            (tx,) = await rail.prepare(request)
            node.set_automine(False)
            await rail.broadcast(tx)
            for _ in range(3):
                await asyncio.to_thread(node.mine, 1)
                seen.append(await rail.status(tx))
        finally:
            node.set_automine(True)
            await rail.aclose()
        return seen

    assert run(go()) == [TxStatus.PENDING, TxStatus.PENDING, TxStatus.CONFIRMED]


# --- Solana -------------------------------------------------------------------------------------------


def sol_request(server: SolanaRpcServer, payer: str, payee: str, amount: int) -> PaymentRequest:
    return PaymentRequest(
        order_id="ord_funds",
        rail_type="wallet",
        chain=server.caip2,
        token=server.mint,
        payer=payer,
        payee=payee,
        amount=Money(amount, 6, "USDC"),
    )


def test_solana_too_few_tokens_are_refused(solana: SolanaRpcServer) -> None:
    buyer = solana.chain.new_wallet(usdc=USDC // 4)
    payee = solana.chain.new_wallet(usdc=1).address
    rail = SolanaRail(solana.rpc_url, buyer.secret_key, chain=solana.caip2)
    with pytest.raises(InsufficientFundsError) as caught:
        check(rail, sol_request(solana, buyer.address, payee, USDC))
    assert caught.value.have == "0.25 USDC" and caught.value.need == "1 USDC"
    assert solana.chain.usdc_balance(buyer.address) == USDC // 4


def test_solana_no_token_account_at_all_holds_zero(solana: SolanaRpcServer) -> None:
    buyer = solana.chain.new_wallet()
    rail = SolanaRail(solana.rpc_url, buyer.secret_key, chain=solana.caip2)
    with pytest.raises(InsufficientFundsError, match=r"holds 0 USDC .* needs 0\.5 USDC"):
        check(rail, sol_request(solana, buyer.address, solana.chain.new_wallet().address, USDC // 2))


def test_solana_without_sol_for_the_fee_and_the_payees_account_is_refused(solana: SolanaRpcServer) -> None:
    # Enough for the fee (5,000 lamports), not for the rent of a new token account (~2 million).
    buyer = solana.chain.new_wallet(sol=1_000_000, usdc=USDC)
    from solders.keypair import Keypair

    payee = str(Keypair().pubkey())  # no token account yet: the payment creates (and rents) it
    rail = SolanaRail(solana.rpc_url, buyer.secret_key, chain=solana.caip2)
    with pytest.raises(InsufficientFundsError) as caught:
        check(rail, sol_request(solana, buyer.address, payee, USDC))
    assert caught.value.asset == "SOL" and caught.value.have == "0.001 SOL"
    assert "rent of the payee's new token account" in str(caught.value)
    # A payee that already holds the mint costs only the fee.
    holder = solana.chain.new_wallet(usdc=1).address
    check(
        SolanaRail(solana.rpc_url, buyer.secret_key, chain=solana.caip2),
        sol_request(solana, buyer.address, holder, USDC),
    )


def test_the_chains_profile_sets_the_commitment_unless_the_rail_does(solana: SolanaRpcServer) -> None:
    key = solana.chain.new_wallet().secret_key
    nets = Networks([NetworkProfile(name="dev", chain=solana.caip2, commitment="finalized")])
    assert SolanaRail(solana.rpc_url, key, chain=solana.caip2, networks=nets).commitment == "finalized"
    explicit = SolanaRail(solana.rpc_url, key, chain=solana.caip2, networks=nets, commitment="processed")
    assert explicit.commitment == "processed"
    assert SolanaRail(solana.rpc_url, key, chain=solana.caip2).commitment == "confirmed"
