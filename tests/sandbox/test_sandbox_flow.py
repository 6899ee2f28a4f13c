"""The whole buyer flow over real HTTP, with real anvil and the LiteSVM Solana RPC."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_kit import Market, evm_wallet, send_spl, started_sandbox

from buyer_agent.sandbox import Sandbox


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox()


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


def _payment(market: Market, order_id: str) -> dict[str, Any]:
    r = market.http.get(f"/market/orders/{order_id}/payment")
    assert r.status_code == 200, r.text
    item: dict[str, Any] = r.json()["item"]
    return item


def test_direct_evm_payment_is_verified_executed_and_confirmed(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_fast", data="hello sandbox")
    assert order["status"] == "created"
    payment = market.intent(pairing, order["id"])
    rail = payment["rail"]
    assert (rail["type"], rail["token"], rail["metadata"]) == (
        "wallet",
        "USDC",
        {"tokenDecimals": 6, "rawAmount": "1200000"},
    )
    assert rail["payerAddress"] == market.buyer.address
    assert rail["chain"] == market.info["evm"]["chain"]
    payee_before = box.evm.usdc_balance(rail["payeeAddress"])

    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), rail["payeeAddress"], 1_200_000)
    r = market.agent(
        pairing, "POST", f"/market/orders/{order['id']}/payment-proof", market.evm_proof(payment, tx)
    )
    assert r.status_code == 200, r.text
    held = r.json()["item"]
    assert held["status"] == "held" and held["proof"]["verificationMode"] == "rpc"
    # "On success the rail type upgrades wallet → wdk-usdt-transfer" (the orders reference).
    assert held["rail"]["type"] == "wdk-usdt-transfer"
    # The same proof again is idempotent.
    again = market.agent(
        pairing, "POST", f"/market/orders/{order['id']}/payment-proof", market.evm_proof(payment, tx)
    )
    assert again.status_code == 200 and again.json()["item"]["id"] == held["id"]

    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {})
    assert r.status_code == 200, r.text
    execution = r.json()["execution"]
    assert execution["statusCode"] == 200
    assert execution["outcome"]["status"] == "completed"
    assert execution["outcome"]["result"]["sha256"] == hashlib.sha256(b"hello sandbox").hexdigest()
    assert r.json()["order"]["status"] == "delivered"

    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/confirm", {})
    assert r.status_code == 200, r.text
    assert r.json()["order"]["status"] == "confirmed"
    # As documented: confirm moves the held payment to release_pending; the buyer's release closes it.
    assert r.json()["payment"]["status"] == "release_pending"
    release = f"/market/orders/{order['id']}/payment/release"
    r = market.agent(pairing, "POST", release, {"transactionHash": tx})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "transactionHash"
    r = market.agent(pairing, "POST", release)  # no body at all, as the SDK sends it
    assert r.status_code == 200, r.text
    assert r.json()["item"]["status"] == "released"
    assert market.agent(pairing, "POST", release, {}).json()["item"]["status"] == "released"  # repeatable
    assert box.evm.usdc_balance(rail["payeeAddress"]) == payee_before + 1_200_000
    events = [
        e["type"] for e in market.http.get("/audit-events", params={"resourceId": held["id"]}).json()["items"]
    ]
    assert events.count("market.payment.released") == 1


def test_escrow_then_confirm_then_release_pays_the_provider(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_escrow")
    payment = market.intent(pairing, order["id"])
    rail = payment["rail"]
    assert rail["type"] == "onchain-escrow" and rail["escrowAddress"] == market.info["evm"]["escrow_address"]
    payee_before = box.evm.usdc_balance(rail["payeeAddress"])
    buyer = evm_wallet(market.buyer)

    tx = box.evm.deposit(buyer, order["id"], rail["payeeAddress"], 1_000_000)
    lock = {"transactionHash": tx, "chain": rail["chain"], "escrowAddress": rail["escrowAddress"]}
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment/escrow-lock", lock)
    assert r.status_code == 200, r.text
    assert r.json()["item"]["status"] == "held"
    again = market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment/escrow-lock", lock)
    assert again.status_code == 200  # idempotent for held

    assert market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {}).status_code == 200
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/confirm", {})
    assert r.json()["payment"]["status"] == "release_pending"
    assert box.evm.usdc_balance(rail["payeeAddress"]) == payee_before  # still in escrow

    release_tx = box.evm.release(order["id"], by=buyer)
    r = market.agent(
        pairing, "POST", f"/market/orders/{order['id']}/payment/release", {"transactionHash": release_tx}
    )
    assert r.status_code == 200, r.text
    assert r.json()["item"]["status"] == "released"
    assert box.evm.usdc_balance(rail["payeeAddress"]) == payee_before + 1_000_000


def test_dispute_freezes_then_the_arbiter_refunds_the_buyer(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_faulty", operation="sha256-unverified")
    payment = market.intent(pairing, order["id"])
    rail = payment["rail"]
    buyer_before = box.evm.usdc_balance(market.buyer.address)
    tx = box.evm.deposit(evm_wallet(market.buyer), order["id"], rail["payeeAddress"], 700_000)
    assert box.evm.usdc_balance(market.buyer.address) == buyer_before - 700_000
    lock = {"transactionHash": tx, "chain": rail["chain"], "escrowAddress": rail["escrowAddress"]}
    assert (
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment/escrow-lock", lock).status_code
        == 200
    )

    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {})
    result = r.json()["execution"]["outcome"]["result"]
    assert r.json()["execution"]["outcome"]["status"] == "completed"
    assert result["sha256"] != hashlib.sha256(b"hello").hexdigest()  # the provider lied

    r = market.agent(
        pairing,
        "POST",
        f"/market/orders/{order['id']}/dispute",
        {"reason": "result is not a sha256", "evidence": result},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["order"]["status"] == "disputed"
    assert body["payment"]["status"] == "frozen"
    assert body["dispute"]["status"] == "open"

    market.wait_for(lambda: _payment(market, order["id"])["status"] == "refunded")
    assert box.evm.usdc_balance(market.buyer.address) == buyer_before
    events = market.http.get("/audit-events", params={"resourceId": payment["id"]}).json()["items"]
    assert [e["type"] for e in events][-1] == "market.payment.refunded"
    assert market.http.get(f"/market/orders/{order['id']}").json()["item"]["status"] == "disputed"


def test_solana_transfer_is_verified_through_the_rpc(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_sol", data="sol")
    sol = market.info["wallets"]["solana"]
    payment = market.intent(pairing, order["id"], {"payerAddress": sol["address"]})
    rail = payment["rail"]
    assert (
        rail["chain"] == market.info["solana"]["chain"] and rail["tokenMint"] == market.info["solana"]["mint"]
    )
    chain = box.solana_server.chain
    payee_before = chain.usdc_balance(rail["payeeAddress"])

    sig = send_spl(
        market.info["solana"]["rpc_url"], sol["secret_key"], rail["tokenMint"], rail["payeeAddress"], 900_000
    )
    proof = {
        "verificationMode": "rpc",
        "chain": rail["chain"],
        "token": "USDC",
        "tokenMint": rail["tokenMint"],
        "payerAddress": sol["address"],
        "payeeAddress": rail["payeeAddress"],
        "amount": "0.9",
        "transactionSignature": sig,
    }
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment-proof", proof)
    assert r.status_code == 200, r.text
    assert r.json()["item"]["status"] == "held"
    assert chain.usdc_balance(rail["payeeAddress"]) == payee_before + 900_000
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {})
    assert r.json()["execution"]["outcome"]["result"]["sha256"] == hashlib.sha256(b"sol").hexdigest()


def test_handoff_service_answers_202_with_a_handoff(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_handoff", allowExternalHandoff=True)
    payment = market.intent(pairing, order["id"])
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment["rail"]["payeeAddress"], 900_000)
    proof = market.evm_proof(payment, tx)
    assert (
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment-proof", proof).status_code == 200
    )
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {})
    assert r.status_code == 202, r.text
    assert r.json()["execution"]["handoff"]["url"].startswith("https://")
    assert r.json()["order"]["status"] == "handoff"
    # A repeated execute returns the stored answer instead of running twice.
    assert market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {}).status_code == 202


def test_dispute_on_direct_rails_refunds_from_the_provider(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    # EVM direct transfer: the provider's wallet pays the buyer back.
    order = market.order(pairing, "svc_hash_budget")
    payment = market.intent(pairing, order["id"])
    before = box.evm.usdc_balance(market.buyer.address)
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment["rail"]["payeeAddress"], 800_000)
    proof = market.evm_proof(payment, tx)
    assert (
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment-proof", proof).status_code == 200
    )
    assert market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {}).status_code == 200
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/dispute", {"reason": "test"})
    assert r.json()["payment"]["status"] == "frozen"
    market.wait_for(lambda: _payment(market, order["id"])["status"] == "refunded")
    assert box.evm.usdc_balance(market.buyer.address) == before

    # Solana direct transfer: likewise, with an SPL transfer from the provider's keypair.
    sol = market.info["wallets"]["solana"]
    chain = box.solana_server.chain
    order = market.order(pairing, "svc_hash_sol_fast")
    payment = market.intent(pairing, order["id"], {"payerAddress": sol["address"]})
    rail = payment["rail"]
    sol_before = chain.usdc_balance(sol["address"])
    sig = send_spl(
        market.info["solana"]["rpc_url"],
        sol["secret_key"],
        rail["tokenMint"],
        rail["payeeAddress"],
        1_400_000,
    )
    proof = {
        "verificationMode": "rpc",
        "chain": rail["chain"],
        "token": "USDC",
        "payerAddress": sol["address"],
        "payeeAddress": rail["payeeAddress"],
        "amount": "1.4",
        "transactionSignature": sig,
    }
    assert (
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment-proof", proof).status_code == 200
    )
    assert market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {}).status_code == 200
    assert (
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/dispute", {"reason": "t"}).status_code
        == 200
    )
    market.wait_for(lambda: _payment(market, order["id"])["status"] == "refunded")
    assert chain.usdc_balance(sol["address"]) == sol_before


def test_the_price_feed_answers_numbers_and_the_free_service_needs_no_payment(
    box: Sandbox, market: Market
) -> None:
    pairing = market.pair()
    feed = {"serviceType": "oracle.price-feed", "operation": "get-latest-price"}
    r = market.agent(pairing, "POST", "/market/search", {"machineId": market.machine_id, **feed})
    assert {q["serviceId"] for q in r.json()["item"]["quotes"]} == {"svc_price_feed", "svc_price_feed_pro"}
    quote = market.quote(pairing, "svc_price_feed", **feed)
    body = {"machineId": market.machine_id, "agentPairingId": pairing.id, "serviceId": "svc_price_feed"}
    bad = market.agent(
        pairing, "POST", "/market/orders", {**body, "quoteId": quote["id"], "input": {"data": "x"}}
    )
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "input.symbol"
    r = market.agent(
        pairing, "POST", "/market/orders", {**body, "quoteId": quote["id"], "input": {"symbol": "BTC-USD"}}
    )
    order = r.json()["item"]
    payment = market.intent(pairing, order["id"])
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment["rail"]["payeeAddress"], 250_000)
    proof = market.evm_proof(payment, tx)
    assert (
        market.agent(pairing, "POST", f"/market/orders/{order['id']}/payment-proof", proof).status_code == 200
    )
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {})
    # Fractions and integers on the wire as JSON numbers, exactly.
    assert '"price":54575.06' in r.text and '"volume":1200' in r.text

    # The free service: order, execute, confirm; no intent, nothing paid, and no payment record.
    order = market.order(pairing, "svc_hash_free", data="free")
    assert order["payment"]["required"] is False and order["payment"]["defaultRail"] == "not-required"
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/execute", {})
    assert r.status_code == 200, r.text
    r = market.agent(pairing, "POST", f"/market/orders/{order['id']}/confirm", {})
    assert r.json()["order"]["status"] == "confirmed" and r.json()["payment"] is None
