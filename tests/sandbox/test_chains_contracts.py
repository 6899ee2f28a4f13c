"""The committed contract artifacts match their sources, and the contracts behave as the market expects."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from buyer_agent._errors import RailError
from buyer_agent.sandbox.chains import (
    AnvilNode,
    Authorization,
    EscrowDeposit,
    EvmChain,
    EvmWallet,
    anvil_available,
)
from buyer_agent.sandbox.contracts import artifacts, load_artifact, mint, order_key, source_sha256

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "buyer_agent" / "sandbox" / "contracts"

needs_anvil = pytest.mark.skipif(not anvil_available(), reason="anvil not installed (scripts/setup)")


def test_recorded_source_hashes_match_the_sources() -> None:
    for name in ("TestToken", "Escrow"):
        entry = artifacts()[name]
        data = (CONTRACTS / entry["source"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == source_sha256(entry["source"])


@pytest.mark.skipif(
    shutil.which("node") is None or not (REPO / "node_modules" / "solc").is_dir(),
    reason="solc-js not installed (scripts/setup)",
)
def test_artifacts_rebuild_identically_with_solc_js() -> None:
    rebuilt = subprocess.run(
        [str(REPO / "scripts" / "build-contracts"), "--stdout"], capture_output=True, check=True, timeout=120
    ).stdout.decode()
    committed = (CONTRACTS / "artifacts.json").read_text()
    assert json.loads(rebuilt) == json.loads(committed)
    assert rebuilt == committed


def test_load_artifact_and_order_key() -> None:
    abi, bytecode = load_artifact("Escrow")
    assert bytecode.startswith("0x60")
    names = {item.get("name") for item in abi}
    assert {"deposit", "release", "refund", "deposits", "Deposited", "Released", "Refunded"} <= names
    with pytest.raises(KeyError):
        load_artifact("Nope")
    assert order_key("ord_1") == bytes(Web3.keccak(text="ord_1"))
    assert len(order_key("ord_1")) == 32


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    if not anvil_available():
        pytest.skip("anvil not installed (scripts/setup)")
    with AnvilNode(accounts=3) as started:
        yield started


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> EvmChain:
    return EvmChain.setup(node)


@needs_anvil
def test_token_metadata_mint_and_transfer(chain: EvmChain) -> None:
    token = chain.token.functions
    assert (token.name().call(), token.symbol().call(), token.decimals().call()) == (
        "Sandbox USD Coin",
        "USDC",
        6,
    )
    alice = chain.new_wallet(usdc=5_000_000)
    bob = EvmWallet.create()
    tx = chain.transfer_usdc(alice, bob.address, 1_250_000)
    assert (chain.usdc_balance(alice.address), chain.usdc_balance(bob.address)) == (3_750_000, 1_250_000)
    receipt = chain.w3.eth.get_transaction_receipt(tx)
    (log,) = chain.token.events.Transfer().process_receipt(receipt)
    assert (log.args["from"], log.args["to"], log.args["value"]) == (alice.address, bob.address, 1_250_000)

    with pytest.raises(ContractLogicError, match="ERC20: insufficient balance"):
        token.transfer(alice.address, 1_250_001).call({"from": bob.address})
    with pytest.raises(ContractLogicError, match="TestToken: caller is not the owner"):
        token.mint(alice.address, 1).call({"from": alice.address})
    with pytest.raises(ContractLogicError, match="ERC20: insufficient allowance"):
        token.transferFrom(alice.address, bob.address, 1).call({"from": bob.address})


@needs_anvil
def test_escrow_deposit_then_release_pays_the_payee(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=2_000_000)
    payee = EvmWallet.create()
    tx = chain.deposit(buyer, "ord_release", payee.address, 1_500_000)
    assert chain.escrow_deposit("ord_release") == EscrowDeposit(
        buyer=buyer.address, payee=payee.address, token=chain.token_address, amount=1_500_000, state=1
    )
    (event,) = chain.escrow.events.Deposited().process_receipt(
        chain.w3.eth.get_transaction_receipt(tx), errors=DISCARD
    )
    assert event.args["orderKey"] == order_key("ord_release")
    assert (event.args["buyer"], event.args["payee"], event.args["amount"]) == (
        buyer.address,
        payee.address,
        1_500_000,
    )
    assert chain.usdc_balance(chain.escrow_address) >= 1_500_000

    # A second deposit for the same order is refused.
    with pytest.raises(ContractLogicError, match="Escrow: order already has a deposit"):
        chain.escrow.functions.deposit(order_key("ord_release"), payee.address, chain.token_address, 1).call(
            {"from": buyer.address}
        )
    # The payee cannot release to itself; the buyer can.
    with pytest.raises(ContractLogicError, match="Escrow: caller may not release"):
        chain.escrow.functions.release(order_key("ord_release")).call({"from": payee.address})
    tx = chain.release("ord_release", by=buyer)
    (released,) = chain.escrow.events.Released().process_receipt(
        chain.w3.eth.get_transaction_receipt(tx), errors=DISCARD
    )
    assert (released.args["payee"], released.args["amount"]) == (payee.address, 1_500_000)
    assert chain.usdc_balance(payee.address) == 1_500_000
    assert chain.escrow_deposit("ord_release").state == EscrowDeposit.RELEASED
    with pytest.raises(ContractLogicError, match="Escrow: deposit is not held"):
        chain.escrow.functions.refund(order_key("ord_release")).call({"from": chain.owner.address})


@needs_anvil
def test_escrow_refund_by_the_arbiter_restores_the_buyer(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=1_000_000)
    payee = EvmWallet.create()
    chain.deposit(buyer, "ord_refund", payee.address, 400_000)
    assert chain.usdc_balance(buyer.address) == 600_000
    with pytest.raises(ContractLogicError, match="Escrow: caller may not refund"):
        chain.escrow.functions.refund(order_key("ord_refund")).call({"from": buyer.address})
    tx = chain.refund("ord_refund")
    (refunded,) = chain.escrow.events.Refunded().process_receipt(
        chain.w3.eth.get_transaction_receipt(tx), errors=DISCARD
    )
    assert (refunded.args["buyer"], refunded.args["amount"]) == (buyer.address, 400_000)
    assert chain.usdc_balance(buyer.address) == 1_000_000
    assert chain.escrow_deposit("ord_refund").state == EscrowDeposit.REFUNDED
    assert chain.escrow_deposit("never").state == EscrowDeposit.NONE
    with pytest.raises(RailError, match="Escrow: deposit is not held"):
        chain.release("ord_refund")


@needs_anvil
def test_escrow_deposit_without_allowance_reverts_with_the_token_reason(chain: EvmChain) -> None:
    buyer = chain.new_wallet(usdc=10)
    with pytest.raises(ContractLogicError, match="ERC20: insufficient allowance"):
        chain.escrow.functions.deposit(order_key("ord_x"), buyer.address, chain.token_address, 10).call(
            {"from": buyer.address}
        )


@needs_anvil
def test_the_arbiter_can_act_from_many_threads_at_once(chain: EvmChain) -> None:
    # The market answers requests on several threads; the arbiter's nonces must not collide.
    buyer = chain.new_wallet(usdc=600)
    payee = EvmWallet.create()
    orders = [f"ord_par_{i}" for i in range(6)]
    for order in orders:
        chain.deposit(buyer, order, payee.address, 100)
    errors: list[BaseException] = []

    def settle(order: str) -> None:
        try:
            chain.refund(order) if order.endswith(("0", "2", "4")) else chain.release(order)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert (chain.usdc_balance(buyer.address), chain.usdc_balance(payee.address)) == (300, 300)


@needs_anvil
def test_a_transaction_that_would_revert_is_a_rail_error_naming_the_reason(chain: EvmChain) -> None:
    stranger = chain.new_wallet()
    with pytest.raises(RailError, match=r"would revert: .*TestToken: caller is not the owner"):
        mint(chain.w3, chain.token_address, stranger.private_key, stranger.address, 1)


def _authorize(
    chain: EvmChain, payer: EvmWallet, to: str, value: int, *, valid_before: int | None = None
) -> Authorization:
    """An EIP-3009 authorization signed by ``payer`` under the token's own EIP-712 domain."""
    import secrets
    import time

    from eth_account import Account

    nonce = secrets.token_bytes(32)
    before = valid_before if valid_before is not None else int(time.time()) + 300
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": "USD Coin", "version": "2", "chainId": chain.chain_id,
                   "verifyingContract": chain.x402_token_address},
        "message": {"from": payer.address, "to": to, "value": value, "validAfter": 0, "validBefore": before,
                    "nonce": nonce},
    }  # fmt: skip
    signed = Account.from_key(payer.private_key.reveal()).sign_typed_data(full_message=typed)
    return Authorization(payer.address, to, value, 0, before, nonce, bytes(signed.signature))


@needs_anvil
def test_the_eip3009_token_settles_an_authorization_once_for_anyone_holding_it(chain: EvmChain) -> None:
    token = chain.x402_token.functions
    assert (token.name().call(), token.version().call(), token.symbol().call(), token.decimals().call()) == (
        "USD Coin",
        "2",
        "USDC",
        6,
    )
    assert artifacts()["AuthorizedUsdc"]["sha256"] == source_sha256("AuthorizedUsdc.sol")
    payer, payee, relayer = EvmWallet.create(), EvmWallet.create(), chain.new_wallet()
    chain.fund(payer.address, eth_wei=0, x402_usdc=2_000_000)
    auth = _authorize(chain, payer, payee.address, 750_000)
    assert not chain.authorization_used(payer.address, auth.nonce)
    tx = chain.transfer_with_authorization(relayer, auth)  # the relayer pays the gas, not the payer
    assert (chain.x402_balance(payer.address), chain.x402_balance(payee.address)) == (1_250_000, 750_000)
    assert chain.authorization_used(payer.address, auth.nonce)
    receipt = chain.w3.eth.get_transaction_receipt(tx)
    (used,) = chain.x402_token.events.AuthorizationUsed().process_receipt(receipt, errors=DISCARD)
    assert (used.args["authorizer"], used.args["nonce"]) == (payer.address, auth.nonce)
    with pytest.raises(RailError, match="authorization is used"):
        chain.transfer_with_authorization(relayer, auth)  # never twice
    with pytest.raises(RailError, match="authorization is expired"):
        chain.transfer_with_authorization(relayer, _authorize(chain, payer, payee.address, 1, valid_before=1))
    forged = _authorize(chain, relayer, payee.address, 1)  # signed by someone else for the payer
    with pytest.raises(RailError, match="invalid signature"):
        chain.transfer_with_authorization(
            relayer, Authorization(payer.address, *dataclasses.astuple(forged)[1:])
        )
    assert chain.x402_balance(payer.address) == 1_250_000


@needs_anvil
def test_a_state_dir_recorded_before_x402_gains_the_token_and_keeps_the_others(tmp_path: Path) -> None:
    with AnvilNode(state_dir=tmp_path, accounts=1) as first:
        before = EvmChain.setup(first).contracts
        record = tmp_path / "evm-contracts.json"
        data = json.loads(record.read_text())
        del data["x402_token_address"]  # as written by the sandbox before issue 14
        record.write_text(json.dumps(data))
    with AnvilNode(state_dir=tmp_path, accounts=1) as second:
        again = EvmChain.setup(second).contracts
        assert (again.token_address, again.escrow_address) == (before.token_address, before.escrow_address)
        assert again.x402_token_address and again.x402_token_address != before.x402_token_address
        assert json.loads(record.read_text())["x402_token_address"] == again.x402_token_address
