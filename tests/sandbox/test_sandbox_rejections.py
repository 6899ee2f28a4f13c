"""Every documented rejection of the sandbox market happens, with its code and HTTP status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eth_account import Account
from sandbox_kit import Market, Pairing, evm_wallet, send_spl, started_sandbox
from solders.keypair import Keypair
from web3 import Web3

from buyer_agent.sandbox import Sandbox
from buyer_agent.sandbox.chains import EvmChain
from buyer_agent.sandbox.contracts import deploy_contracts


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox()


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


@contextmanager
def later(box: Sandbox, seconds: float) -> Iterator[None]:
    """The market's clock runs ``seconds`` ahead (expiry without waiting)."""
    ctx = box.market.ctx
    ctx.clock = lambda: datetime.now(UTC) + timedelta(seconds=seconds)
    try:
        yield
    finally:
        ctx.clock = lambda: datetime.now(UTC)


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["error"]
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    return body


def _proof_step(
    market: Market, pairing: Pairing, order_id: str
) -> Callable[[dict[str, Any]], httpx.Response]:
    return lambda body: market.agent(pairing, "POST", f"/market/orders/{order_id}/payment-proof", body)


# --- pairing -----------------------------------------------------------------------------------


def _pairing_body(market: Market, challenge: dict[str, Any], signature: str) -> dict[str, Any]:
    return {
        "agentAddress": challenge["agentAddress"],
        "agentProvider": "pytest",
        "agentRole": "buyer",
        "agentProof": {"challengeId": challenge["challengeId"], "signature": signature},
    }


def test_bad_signature_is_rejected(market: Market) -> None:
    challenge = market.challenge(market.buyer)
    stranger = Account.create()
    signature = market.sign(stranger, challenge["message"])
    r = market.http.post(
        f"/machines/{market.machine_id}/agent-pairings", json=_pairing_body(market, challenge, signature)
    )
    error(r, 401, "AGENT_PAIRING_PROOF_INVALID")
    garbage = _pairing_body(market, challenge, "0x1234")
    error(
        market.http.post(f"/machines/{market.machine_id}/agent-pairings", json=garbage),
        401,
        "AGENT_PAIRING_PROOF_INVALID",
    )


def test_expired_challenge_is_rejected(box: Sandbox, market: Market) -> None:
    challenge = market.challenge(market.buyer)
    body = _pairing_body(market, challenge, market.sign(market.buyer, challenge["message"]))
    with later(box, 301):
        r = market.http.post(f"/machines/{market.machine_id}/agent-pairings", json=body)
    error(r, 401, "AGENT_PAIRING_PROOF_EXPIRED")


def test_challenge_is_single_use_and_proof_is_required(market: Market) -> None:
    challenge = market.challenge(market.buyer)
    body = _pairing_body(market, challenge, market.sign(market.buyer, challenge["message"]))
    path = f"/machines/{market.machine_id}/agent-pairings"
    assert market.http.post(path, json=body).status_code == 200
    error(market.http.post(path, json=body), 401, "AGENT_PAIRING_PROOF_INVALID")
    del body["agentProof"]
    error(market.http.post(path, json=body), 401, "AGENT_PAIRING_PROOF_REQUIRED")


def test_platform_and_agent_auth_errors(box: Sandbox, market: Market) -> None:
    path = f"/machines/{market.machine_id}/agent-pairings"
    error(httpx.get(market.info["url"] + "/api/v1" + path), 401, "AUTH_REQUIRED")
    error(
        httpx.get(market.info["url"] + "/api/v1" + path, headers={"x-api-key": "nope"}), 401, "AUTH_INVALID"
    )
    search = {"machineId": market.machine_id}
    error(market.http.post("/market/search", json=search), 401, "AGENT_AUTH_REQUIRED")
    bad = market.http.post("/market/search", json=search, headers={"x-agent-pairing-token": "a.b.c"})
    error(bad, 401, "AGENT_AUTH_INVALID")
    pairing = market.pair()
    with later(box, 3601):
        error(market.agent(pairing, "POST", "/market/search", search), 401, "AGENT_AUTH_EXPIRED")
    assert market.agent(pairing, "POST", "/market/search", search).status_code == 200


def test_policy_patch_rotation_and_revoke_invalidate_old_tokens(market: Market) -> None:
    pairing = market.pair()
    search = {"machineId": market.machine_id}
    base = f"/machines/{market.machine_id}/agent-pairings/{pairing.id}"
    r = market.http.patch(base, json={"delegationPolicy": {"perTransactionLimit": 2, "dailySpendLimit": 4}})
    assert r.status_code == 200 and "pairingToken" not in r.json()["item"]
    error(market.agent(pairing, "POST", "/market/search", search), 401, "AGENT_AUTH_INVALID")

    challenge = market.challenge(market.buyer)
    proof = {
        "challengeId": challenge["challengeId"],
        "signature": market.sign(market.buyer, challenge["message"]),
    }
    r = market.http.post(base + "/sessions", json={"agentProof": proof})
    assert r.status_code == 200, r.text
    fresh = Pairing(pairing.id, r.json()["item"]["pairingToken"], pairing.account)
    assert market.agent(fresh, "POST", "/market/search", search).status_code == 200

    # Rotating again kills the previous token.
    challenge = market.challenge(market.buyer)
    proof = {
        "challengeId": challenge["challengeId"],
        "signature": market.sign(market.buyer, challenge["message"]),
    }
    newest = market.http.post(base + "/sessions", json={"agentProof": proof}).json()["item"]["pairingToken"]
    error(market.agent(fresh, "POST", "/market/search", search), 401, "AGENT_AUTH_INVALID")

    assert market.http.delete(base).status_code == 204
    revoked = Pairing(pairing.id, newest, pairing.account)
    error(market.agent(revoked, "POST", "/market/search", search), 401, "AGENT_AUTH_INVALID")


# --- policy and quotes -------------------------------------------------------------------------


def test_denied_service_is_refused(market: Market) -> None:
    pairing = market.pair()
    body = error(market.create_order(pairing, "svc_hash_denied"), 403, "AGENT_POLICY_DENIED")
    assert "svc_hash_denied" in body["message"]
    only_fast = market.pair(policy={"allowedServiceIds": ["svc_hash_fast"]})
    error(market.create_order(only_fast, "svc_hash_budget"), 403, "AGENT_POLICY_DENIED")
    no_hash = market.pair(policy={"deniedSkillKeys": ["compute.hash"]})
    error(market.create_order(no_hash, "svc_hash_budget"), 403, "AGENT_POLICY_DENIED")


def test_spend_limits(market: Market) -> None:
    tight = market.pair(policy={"perTransactionLimit": 2.5, "dailySpendLimit": 2, "currency": "USDC"})
    error(market.create_order(tight, "svc_hash_premium"), 403, "AGENT_SPEND_LIMIT_EXCEEDED")
    assert market.create_order(tight, "svc_hash_fast").status_code == 200  # 1.20 of 2.00 today
    error(market.create_order(tight, "svc_hash_fast"), 403, "AGENT_DAILY_LIMIT_EXCEEDED")


def test_expired_quote_is_refused(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    quote = market.quote(pairing, "svc_hash_budget")
    body = {
        "machineId": market.machine_id,
        "agentPairingId": pairing.id,
        "serviceId": "svc_hash_budget",
        "quoteId": quote["id"],
        "input": {"data": "x"},
    }
    with later(box, 301):
        # A fresh session token so only the quote is stale.
        fresh = market.pair()
        r = market.agent(fresh, "POST", "/market/orders", {**body, "agentPairingId": fresh.id})
    error(r, 409, "QUOTE_EXPIRED")


# --- payments ----------------------------------------------------------------------------------


def _paid_order(
    market: Market, service: str = "svc_hash_budget"
) -> tuple[Pairing, dict[str, Any], dict[str, Any]]:
    pairing = market.pair()
    order = market.order(pairing, service)
    return pairing, order, market.intent(pairing, order["id"])


def test_wrong_token_is_refused(box: Sandbox, market: Market) -> None:
    pairing, order, payment = _paid_order(market)
    other = Web3.to_checksum_address("0x" + "42" * 20)
    r = market.agent(
        pairing, "POST", f"/market/orders/{order['id']}/payment-intent", {"rail": {"tokenAddress": other}}
    )
    assert r.status_code == 200  # idempotent: the existing intent is returned unchanged
    fresh_pairing = market.pair()
    fresh = market.order(fresh_pairing, "svc_hash_budget")
    r = market.agent(
        fresh_pairing,
        "POST",
        f"/market/orders/{fresh['id']}/payment-intent",
        {"rail": {"tokenAddress": other}},
    )
    assert error(r, 400, "VALIDATION_ERROR")["details"]["field"] == "rail.tokenAddress"

    prove = _proof_step(market, pairing, order["id"])
    assert (
        error(prove(market.evm_proof(payment, "0x" + "00" * 32, token="USDT")), 400, "VALIDATION_ERROR")[
            "details"
        ]["field"]
        == "token"
    )
    # A real transfer of another ERC-20 (same amount, same payee) is not the payment.
    evm = box.evm
    fake = deploy_contracts(evm.w3, evm.owner.private_key)
    fake_chain = EvmChain(evm.rpc_url, chain_id=evm.chain_id, owner=evm.owner, contracts=fake)
    buyer = evm_wallet(market.buyer)
    fake_chain.mint(buyer.address, 800_000)
    tx = fake_chain.transfer_usdc(buyer, payment["rail"]["payeeAddress"], 800_000)
    error(prove(market.evm_proof(payment, tx)), 400, "PAYMENT_TRANSFER_NOT_FOUND")


def test_proof_to_wrong_payee_or_amount_is_refused(box: Sandbox, market: Market) -> None:
    pairing, order, payment = _paid_order(market)
    prove = _proof_step(market, pairing, order["id"])
    buyer = evm_wallet(market.buyer)
    stranger = Account.create().address
    to_stranger = box.evm.transfer_usdc(buyer, stranger, 800_000)
    error(prove(market.evm_proof(payment, to_stranger)), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    declared = error(
        prove(market.evm_proof(payment, to_stranger, payeeAddress=stranger)), 400, "VALIDATION_ERROR"
    )
    assert declared["details"]["field"] == "payeeAddress"

    short = box.evm.transfer_usdc(buyer, payment["rail"]["payeeAddress"], 799_999)
    error(prove(market.evm_proof(payment, short)), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    wrong_amount = error(prove(market.evm_proof(payment, short, amount="0.799999")), 400, "VALIDATION_ERROR")
    assert wrong_amount["details"]["field"] == "amount"


def test_reused_transaction_is_refused(box: Sandbox, market: Market) -> None:
    pairing, order, payment = _paid_order(market)
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment["rail"]["payeeAddress"], 800_000)
    assert _proof_step(market, pairing, order["id"])(market.evm_proof(payment, tx)).status_code == 200
    other = market.order(pairing, "svc_hash_budget")
    other_payment = market.intent(pairing, other["id"])
    r = _proof_step(market, pairing, other["id"])(market.evm_proof(other_payment, tx))
    error(r, 409, "PAYMENT_PROOF_REUSED")


def test_unmined_and_failed_transactions_are_refused(box: Sandbox, market: Market) -> None:
    pairing, order, payment = _paid_order(market)
    prove = _proof_step(market, pairing, order["id"])
    w3 = box.evm.w3
    buyer = market.buyer
    token = box.evm.token

    def signed_transfer(amount: int) -> bytes:
        data = token.encode_abi("transfer", args=[payment["rail"]["payeeAddress"], amount])
        tx = {
            "to": token.address,
            "data": data,
            "gas": 100_000,
            "maxFeePerGas": w3.to_wei(10, "gwei"),
            "maxPriorityFeePerGas": 1,
            "nonce": w3.eth.get_transaction_count(buyer.address, "pending"),
            "chainId": box.evm.chain_id,
        }
        raw: bytes = buyer.sign_transaction(tx).raw_transaction
        return raw

    anvil = box._anvil
    anvil.set_automine(False)
    try:
        pending = w3.eth.send_raw_transaction(signed_transfer(800_000)).to_0x_hex()
        error(prove(market.evm_proof(payment, pending)), 409, "PAYMENT_NOT_MINED")
        anvil.mine()
    finally:
        anvil.set_automine(True)
    # More than the buyer holds: mined, but reverted.
    failed = w3.eth.send_raw_transaction(signed_transfer(10**15)).to_0x_hex()
    w3.eth.wait_for_transaction_receipt(failed)
    error(prove(market.evm_proof(payment, failed)), 402, "PAYMENT_TX_FAILED")
    assert prove(market.evm_proof(payment, pending)).json()["item"]["status"] == "held"


def test_execute_before_payment_and_confirm_before_delivery(box: Sandbox, market: Market) -> None:
    pairing, order, payment = _paid_order(market)
    error(market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {}), 402, "PAYMENT_REQUIRED")
    error(
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/confirm", {}), 409, "ORDER_NOT_DELIVERED"
    )
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment["rail"]["payeeAddress"], 800_000)
    assert _proof_step(market, pairing, order["id"])(market.evm_proof(payment, tx)).status_code == 200
    error(
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/confirm", {}), 409, "ORDER_NOT_DELIVERED"
    )
    assert market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {}).status_code == 200
    assert market.agent(pairing, "POST", f"/market/orders/{order['id']}/confirm", {}).status_code == 200
    error(
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/dispute", {"reason": "late"}),
        409,
        "ORDER_CLOSED",
    )


def test_a_paused_pairing_is_inactive_until_resumed(market: Market) -> None:
    pairing = market.pair()
    search = {"machineId": market.machine_id}
    base = f"/machines/{market.machine_id}/agent-pairings/{pairing.id}"
    assert market.agent(pairing, "POST", "/market/search", search).status_code == 200
    paused = market.http.patch(base, json={"status": "paused"})
    assert paused.status_code == 200 and paused.json()["item"]["status"] == "paused"

    body = error(market.agent(pairing, "POST", "/market/search", search), 403, "AGENT_PAIRING_INACTIVE")
    assert "paused" in body["message"]
    order = {"machineId": market.machine_id, "agentPairingId": pairing.id, "serviceId": "svc_hash_budget"}
    error(market.agent(pairing, "POST", "/market/orders", order), 403, "AGENT_PAIRING_INACTIVE")
    # No fresh session for a paused pairing either.
    challenge = market.challenge(market.buyer)
    proof = {
        "challengeId": challenge["challengeId"],
        "signature": market.sign(market.buyer, challenge["message"]),
    }
    error(market.http.post(base + "/sessions", json={"agentProof": proof}), 403, "AGENT_PAIRING_INACTIVE")

    # Resuming it (the policy unchanged) makes the same token work again.
    assert market.http.patch(base, json={"status": "active"}).status_code == 200
    assert market.agent(pairing, "POST", "/market/search", search).status_code == 200


# --- Solana proofs -----------------------------------------------------------------------------

SOL_PRICE = 900_000  # svc_hash_sol, 0.90 USDC


def _solana_order(
    market: Market,
) -> tuple[Pairing, dict[str, Any], dict[str, Any], Callable[..., httpx.Response]]:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_sol", data="solana rejections")
    payment = market.intent(
        pairing, order["id"], {"payerAddress": market.info["wallets"]["solana"]["address"]}
    )
    assert payment["rail"]["chain"].startswith("solana:")
    return pairing, order, payment, _proof_step(market, pairing, order["id"])


def _solana_proof(payment: dict[str, Any], signature: str, **override: Any) -> dict[str, Any]:
    rail = payment["rail"]
    return {
        "verificationMode": "rpc",
        "chain": rail["chain"],
        "token": "USDC",
        "tokenMint": rail["tokenMint"],
        "payerAddress": rail["payerAddress"],
        "payeeAddress": rail["payeeAddress"],
        "amount": str(payment["amount"]),
        "tokenDecimals": 6,
        "rawAmount": rail["metadata"]["rawAmount"],
        "transactionSignature": signature,
        **override,
    }


def _spl(market: Market, to_owner: str, raw: int) -> str:
    sol = market.info["wallets"]["solana"]
    return send_spl(
        market.info["solana"]["rpc_url"], sol["secret_key"], market.info["solana"]["mint"], to_owner, raw
    )


def test_solana_proof_to_the_wrong_payee_is_refused(market: Market) -> None:
    _pairing, _order, payment, prove = _solana_order(market)
    stranger = str(Keypair().pubkey())
    to_stranger = _spl(market, stranger, SOL_PRICE)
    # The transfer is real and of the right amount, but the provider got nothing.
    body = error(prove(_solana_proof(payment, to_stranger)), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    assert body["details"]["payee"] == payment["rail"]["payeeAddress"]
    declared = error(
        prove(_solana_proof(payment, to_stranger, payeeAddress=stranger)), 400, "VALIDATION_ERROR"
    )
    assert declared["details"]["field"] == "payeeAddress"
    assert market.http.get(f"/market/orders/{payment['orderId']}/payment").json()["item"]["status"] == (
        "intent_created"
    )


def test_solana_proof_of_the_wrong_amount_is_refused(market: Market) -> None:
    _pairing, _order, payment, prove = _solana_order(market)
    payee = payment["rail"]["payeeAddress"]
    for raw in (SOL_PRICE - 1, SOL_PRICE + 1):
        signature = _spl(market, payee, raw)
        body = error(prove(_solana_proof(payment, signature)), 400, "PAYMENT_TRANSFER_NOT_FOUND")
        assert body["details"]["rawAmount"] == str(SOL_PRICE)
    short = _spl(market, payee, SOL_PRICE - 1)
    declared = error(prove(_solana_proof(payment, short, amount="0.899999")), 400, "VALIDATION_ERROR")
    assert declared["details"]["field"] == "amount"


def test_a_reused_solana_signature_is_refused(market: Market) -> None:
    pairing, _order, payment, prove = _solana_order(market)
    signature = _spl(market, payment["rail"]["payeeAddress"], SOL_PRICE)
    held = prove(_solana_proof(payment, signature))
    assert held.status_code == 200 and held.json()["item"]["status"] == "held", held.text
    assert prove(_solana_proof(payment, signature)).status_code == 200  # the same proof again: idempotent

    other = market.order(pairing, "svc_hash_sol", data="second order")
    other_payment = market.intent(pairing, other["id"], {"payerAddress": payment["rail"]["payerAddress"]})
    r = _proof_step(market, pairing, other["id"])(_solana_proof(other_payment, signature))
    body = error(r, 409, "PAYMENT_PROOF_REUSED")
    assert body["details"]["paymentId"] == payment["id"]
    # Also in "recorded" mode, where the chain is not read: the signature is spent either way.
    r = _proof_step(market, pairing, other["id"])(
        _solana_proof(other_payment, signature, verificationMode="recorded")
    )
    error(r, 409, "PAYMENT_PROOF_REUSED")


# --- escrow lock -------------------------------------------------------------------------------

ESCROW_PRICE = 1_000_000  # svc_hash_escrow, 1.00 USDC


def _escrow_order(market: Market) -> tuple[dict[str, Any], dict[str, Any], Callable[[str], httpx.Response]]:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_escrow", data="escrow rejections")
    payment = market.intent(pairing, order["id"])
    rail = payment["rail"]
    assert rail["type"] == "onchain-escrow"

    def lock(tx: str) -> httpx.Response:
        body = {"transactionHash": tx, "chain": rail["chain"], "escrowAddress": rail["escrowAddress"]}
        return market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment/escrow-lock", body)

    return order, payment, lock


def _still_unpaid(market: Market, order: dict[str, Any]) -> None:
    assert (
        market.http.get(f"/market/orders/{order['id']}/payment").json()["item"]["status"] == "intent_created"
    )


def test_escrow_lock_without_a_deposit_on_chain_is_refused(box: Sandbox, market: Market) -> None:
    order, payment, lock = _escrow_order(market)
    buyer = evm_wallet(market.buyer)
    # A mined transaction that deposits nothing: tokens sent straight to the escrow contract.
    plain = box.evm.transfer_usdc(buyer, payment["rail"]["escrowAddress"], ESCROW_PRICE)
    error(lock(plain), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    # A real deposit, but for another order: this order's deposit slot is still empty.
    elsewhere = box.evm.deposit(buyer, "ord_some_other_order", payment["rail"]["payeeAddress"], ESCROW_PRICE)
    error(lock(elsewhere), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    # A transaction hash the chain has never seen.
    error(lock("0x" + "5a" * 32), 409, "PAYMENT_NOT_MINED")
    _still_unpaid(market, order)


def test_escrow_lock_of_a_deposit_of_the_wrong_amount_is_refused(box: Sandbox, market: Market) -> None:
    order, payment, lock = _escrow_order(market)
    tx = box.evm.deposit(
        evm_wallet(market.buyer), order["id"], payment["rail"]["payeeAddress"], ESCROW_PRICE - 1
    )
    body = error(lock(tx), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    assert body["details"]["amount"] == str(ESCROW_PRICE - 1)
    _still_unpaid(market, order)


def test_escrow_lock_of_a_deposit_to_the_wrong_payee_is_refused(box: Sandbox, market: Market) -> None:
    order, _payment, lock = _escrow_order(market)
    stranger = Account.create().address
    tx = box.evm.deposit(evm_wallet(market.buyer), order["id"], stranger, ESCROW_PRICE)
    body = error(lock(tx), 400, "PAYMENT_TRANSFER_NOT_FOUND")
    assert body["details"]["payee"].lower() == stranger.lower()
    _still_unpaid(market, order)
