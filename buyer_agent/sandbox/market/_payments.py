"""Payment endpoints: proof (checked on chain, or an x402 authorization), escrow lock, release, refund, read.

The intent is in ``_intent.py``; the x402 rail's proof and settlement in ``_x402_flow.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from buyer_agent.sandbox.market._catalogue import ServiceSpec, service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._orders import order_for_agent, public, touch
from buyer_agent.sandbox.market._wire import (
    DECIMALS,
    iso,
    not_found,
    opt_object,
    opt_str,
    raw_units,
    req_str,
)
from buyer_agent.sandbox.market._x402_flow import record_proof

__all__ = [
    "arbiter_refund",
    "escrow_lock",
    "get_payment",
    "mark_refunded",
    "refund",
    "release",
    "submit_proof",
]

_log = logging.getLogger(__name__)
_OPEN_ORDER = ("created", "payment_pending")


def _spec(order: dict[str, Any]) -> ServiceSpec:
    spec = service_by_id(order["serviceId"])
    assert spec is not None
    return spec


def _payment(ctx: MarketContext, order: dict[str, Any]) -> dict[str, Any] | None:
    return ctx.store.get("payments", order.get("_paymentId") or "")


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


def _require_payment(ctx: MarketContext, order: dict[str, Any]) -> dict[str, Any]:
    payment = _payment(ctx, order)
    if payment is None:
        raise ApiError(402, "PAYMENT_REQUIRED", "create a payment intent first")
    return payment


def _reused(ctx: MarketContext, key: str, payment: dict[str, Any]) -> None:
    owner = ctx.store.get("used_proofs", key)
    if owner is not None and owner["paymentId"] != payment["id"]:
        raise ApiError(
            409,
            "PAYMENT_PROOF_REUSED",
            "this transaction already proves another payment",
            {"paymentId": owner["paymentId"]},
        )


def _proof_fields(body: dict[str, Any], payment: dict[str, Any]) -> tuple[str, str]:
    """Validate a transfer proof against the intent; returns (mode, transaction id)."""
    if "payment" in body and "verificationMode" not in body:
        raise invalid("payment", "an x402 proof is for an x402 payment; this one is proven by a transfer")
    mode = req_str(body, "verificationMode")
    if mode not in ("recorded", "rpc"):
        raise invalid("verificationMode", "must be 'recorded' or 'rpc'")
    rail = payment["rail"]
    if not _same(req_str(body, "chain"), rail["chain"]):
        raise invalid("chain", f"the payment is on {rail['chain']}")
    token = req_str(body, "token")
    if token.upper() != "USDC" and not _same(token, rail.get("tokenAddress") or rail.get("tokenMint")):
        raise invalid("token", "wrong token: the payment is in the sandbox USDC")
    for key in ("tokenAddress", "tokenMint"):
        given = opt_str(body, key)
        if given is not None and not _same(given, rail.get(key)):
            raise invalid(key, "wrong token: the payment is in the sandbox USDC")
    if not _same(req_str(body, "payerAddress"), rail["payerAddress"]):
        raise invalid("payerAddress", "must be the payment intent's payer")
    if not _same(req_str(body, "payeeAddress"), rail["payeeAddress"]):
        raise invalid("payeeAddress", "must be the provider's wallet named in the payment intent")
    amount = req_str(body, "amount")
    if raw_units(amount, "amount") != payment["_rawAmount"]:
        raise invalid("amount", f"the payment is {payment['amount']} USDC")
    raw_text = opt_str(body, "rawAmount")
    if raw_text is not None and raw_text != str(payment["_rawAmount"]):
        raise invalid("rawAmount", f"the payment is {payment['_rawAmount']} base units")
    decimals = body.get("tokenDecimals")
    if decimals is not None and decimals != DECIMALS:
        raise invalid("tokenDecimals", f"USDC has {DECIMALS} decimals")
    opt_object(body, "metadata")
    field = "transactionHash" if rail["chain"].startswith("eip155:") else "transactionSignature"
    return mode, req_str(body, field)


def submit_proof(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/payment-proof``: ``rpc`` mode is checked on the chain.

    A transfer proof moves the rail type ``wallet`` to ``wdk-usdt-transfer`` (as documented); an
    x402 payment's proof is its signed authorization (``_x402_flow.record_proof``).
    """
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = _require_payment(ctx, order)
        if payment["rail"]["type"] == "x402":
            return record_proof(ctx, order, payment, call.body)
        if payment["rail"]["type"] == "onchain-escrow":
            raise invalid("verificationMode", "an onchain-escrow payment is proven by payment/escrow-lock")
        mode, tx = _proof_fields(call.body, payment)
        key = f"{payment['rail']['chain']}:{tx.lower() if tx.startswith('0x') else tx}"
        if payment["status"] != "intent_created":
            if payment["_proofKey"] == key:
                return 200, {"item": public(payment)}
            raise ApiError(409, "ORDER_CLOSED", f"payment is already {payment['status']}")
        _reused(ctx, key, payment)
        rail = payment["rail"]
        if mode == "rpc":
            _verify_transfer(ctx, payment, tx)
        evm = rail["chain"].startswith("eip155:")
        proof = {
            "chain": rail["chain"],
            "token": rail["token"],
            "transactionHash": tx if evm else None,
            "transactionSignature": None if evm else tx,
            "payerAddress": rail["payerAddress"],
            "verifiedAt": iso(ctx.clock()) if mode == "rpc" else None,
            "verificationMode": mode,
            "metadata": None,
        }
        _hold(ctx, order, payment, key, proof)
        ctx.store.audit_event(
            "market.payment.proof-recorded",
            "market-payment",
            payment["id"],
            {"orderId": order["id"], "verificationMode": mode, "transaction": tx},
        )
    return 200, {"item": public(payment)}


def _verify_transfer(ctx: MarketContext, payment: dict[str, Any], tx: str) -> None:
    rail = payment["rail"]
    if rail["chain"].startswith("eip155:"):
        if ctx.evm is None:
            raise ApiError(409, "PAYMENT_RPC_REQUIRED", "no EVM RPC configured in this sandbox")
        ctx.evm.check_transfer(
            tx,
            token=rail["tokenAddress"],
            payer=rail["payerAddress"],
            payee=rail["payeeAddress"],
            raw=payment["_rawAmount"],
        )
    else:
        if ctx.solana is None:
            raise ApiError(409, "PAYMENT_RPC_REQUIRED", "no Solana RPC configured in this sandbox")
        ctx.solana.check_transfer(
            tx,
            mint=rail["tokenMint"],
            payer=rail["payerAddress"],
            payee=rail["payeeAddress"],
            raw=payment["_rawAmount"],
        )


def _hold(
    ctx: MarketContext, order: dict[str, Any], payment: dict[str, Any], key: str, proof: dict[str, Any]
) -> None:
    ctx.store.put("used_proofs", key, {"paymentId": payment["id"]})
    if payment["rail"]["type"] == "wallet":
        # "On success the rail type upgrades wallet → wdk-usdt-transfer" (the orders reference).
        payment["rail"]["type"] = "wdk-usdt-transfer"
    touch(ctx, payment, status="held", proof=proof, _proofKey=key)
    if order["status"] in _OPEN_ORDER:
        touch(ctx, order, status="ready")


def escrow_lock(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/payment/escrow-lock``: the escrow must hold the deposit."""
    body = call.body
    tx = req_str(body, "transactionHash")
    chain = req_str(body, "chain")
    escrow = req_str(body, "escrowAddress")
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = _require_payment(ctx, order)
        rail = payment["rail"]
        if rail["type"] != "onchain-escrow":
            raise invalid(
                "escrowAddress", "this payment's rail is not onchain-escrow; submit a payment-proof"
            )
        if not _same(chain, rail["chain"]):
            raise invalid("chain", f"the escrow is on {rail['chain']}")
        if not _same(escrow, rail["escrowAddress"]):
            raise invalid("escrowAddress", "not the sandbox's escrow contract")
        key = f"{rail['chain']}:{tx.lower()}"
        if payment["status"] != "intent_created":
            if payment["_proofKey"] == key:
                return 200, {"item": public(payment)}
            raise ApiError(409, "ORDER_CLOSED", f"payment is already {payment['status']}")
        _reused(ctx, key, payment)
        if ctx.evm is None:
            raise ApiError(409, "PAYMENT_RPC_REQUIRED", "no EVM RPC configured in this sandbox")
        ctx.evm.check_escrow_lock(
            tx,
            order_id=order["id"],
            payer=rail["payerAddress"],
            payee=rail["payeeAddress"],
            raw=payment["_rawAmount"],
        )
        proof = {
            "chain": rail["chain"],
            "token": rail["token"],
            "transactionHash": tx,
            "payerAddress": rail["payerAddress"],
            "verifiedAt": iso(ctx.clock()),
            "verificationMode": "rpc",
            "metadata": None,
        }
        _hold(ctx, order, payment, key, proof)
        ctx.store.audit_event(
            "market.payment.escrow-held",
            "market-payment",
            payment["id"],
            {"orderId": order["id"], "transaction": tx},
        )
    return 200, {"item": public(payment)}


def release(ctx: MarketContext, call: Call) -> Answer:
    """``POST …/payment/release``: ``release_pending`` → ``released``.

    Escrow: checks the buyer's ``Released`` transaction, or releases as the arbiter without one. A
    direct transfer (or a settled x402 authorization) already reached the provider: nothing moves on
    chain, and a ``transactionHash`` is refused rather than recorded unchecked.
    """
    tx = opt_str(call.body, "transactionHash")
    notes = opt_str(call.body, "notes")
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = _require_payment(ctx, order)
        if payment["status"] == "released":
            return 200, {"item": public(payment)}
        if payment["status"] != "release_pending":
            raise ApiError(409, "ORDER_CLOSED", f"payment is {payment['status']}, not release_pending")
        escrow = payment["rail"]["type"] == "onchain-escrow"
        if tx is not None and not escrow:
            raise invalid("transactionHash", "a direct payment has nothing to release on chain; omit it")
        if escrow:
            assert ctx.evm is not None
            if tx is None:
                tx = ctx.evm.release(order["id"])
            else:
                ctx.evm.check_released(tx, order["id"])
        if notes:
            payment["notes"].append(notes)
        meta = payment["rail"]["metadata"]
        if tx is not None:
            meta["releaseTransactionHash"] = tx
        touch(ctx, payment, status="released")
        ctx.store.audit_event(
            "market.payment.released",
            "market-payment",
            payment["id"],
            {"orderId": order["id"], "transaction": tx},
        )
    return 200, {"item": public(payment)}


def arbiter_refund(ctx: MarketContext, order: dict[str, Any], payment: dict[str, Any]) -> str:
    """Return the buyer's tokens on chain as the market (escrow refund, or the provider pays back).

    Returns the refund's transaction hash or signature.
    """
    rail = payment["rail"]
    raw = int(payment["_rawAmount"])
    if rail["type"] == "onchain-escrow":
        assert ctx.evm is not None
        if ctx.evm.escrow_state(order["id"]) == 3:
            return str(rail["metadata"].get("refundTransactionHash", ""))
        return str(ctx.evm.refund(order["id"]))
    spec = _spec(order)
    if spec.chain == "evm":
        assert ctx.evm is not None
        return str(ctx.evm.send_back(ctx.evm_provider_keys[spec.provider_key], rail["payerAddress"], raw))
    if ctx.solana is None or spec.provider_key not in ctx.solana_provider_keys:
        raise ApiError(409, "PAYMENT_RPC_REQUIRED", "no Solana RPC to refund on")
    return str(ctx.solana.send_back(ctx.solana_provider_keys[spec.provider_key], rail["payerAddress"], raw))


def mark_refunded(
    ctx: MarketContext, order: dict[str, Any], payment: dict[str, Any], tx: str, reason: str
) -> None:
    """Record a refund (payment → refunded, open disputes → resolved) with its audit event."""
    payment["rail"]["metadata"]["refundTransactionHash"] = tx
    payment["notes"].append(f"refunded: {reason}")
    touch(ctx, payment, status="refunded")
    for dispute in ctx.store.values("disputes"):
        if dispute["orderId"] == order["id"] and dispute["status"] == "open":
            touch(ctx, dispute, status="resolved", resolution={"outcome": "refunded", "transaction": tx})
    ctx.store.audit_event(
        "market.payment.refunded",
        "market-payment",
        payment["id"],
        {"orderId": order["id"], "transaction": tx, "reason": reason},
        actor="system:machine-markets",
    )


def refund(ctx: MarketContext, call: Call) -> Answer:
    """``POST …/payment/refund``: a frozen payment, or a held one before delivery, is refunded on chain."""
    tx = opt_str(call.body, "transactionHash")
    reason = opt_str(call.body, "reason") or "refund requested"
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = _require_payment(ctx, order)
        if payment["status"] == "refunded":
            return 200, {"item": public(payment)}
        refundable = payment["status"] == "frozen" or (
            payment["status"] == "held" and order["status"] in ("ready", "payment_pending", "created")
        )
        if not refundable:
            raise ApiError(409, "ORDER_CLOSED", f"payment is {payment['status']}; nothing to refund")
        if tx is not None and payment["rail"]["type"] == "onchain-escrow":
            assert ctx.evm is not None
            ctx.evm.check_refunded(tx, order["id"])
        else:
            tx = arbiter_refund(ctx, order, payment)
        mark_refunded(ctx, order, payment, tx, reason)
        if order["status"] != "disputed":
            touch(ctx, order, status="cancelled")
    return 200, {"item": public(payment)}


def get_payment(ctx: MarketContext, call: Call) -> Answer:
    """``GET /market/orders/:orderId/payment`` (platform key or the owning agent)."""
    if call.headers.get("x-agent-pairing-token"):
        order, _pairing = order_for_agent(ctx, call)
    else:
        ctx.require_api_key(call)
        found = ctx.store.get("orders", call.params["orderId"])
        if found is None:
            raise not_found("order", call.params["orderId"])
        order = found
    return 200, {"item": public(_payment(ctx, order))}
