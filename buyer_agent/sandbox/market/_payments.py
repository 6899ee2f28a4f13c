"""Payment endpoints: intent, proof (checked on chain), escrow lock, release, refund, read."""

from __future__ import annotations

import logging
from typing import Any

from web3 import Web3

from buyer_agent.sandbox.market._catalogue import ServiceSpec, service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._orders import order_for_agent, public, touch
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import (
    DECIMALS,
    human,
    iso,
    not_found,
    opt_number,
    opt_object,
    opt_str,
    raw_units,
    req_str,
)

__all__ = [
    "arbiter_refund",
    "create_intent",
    "escrow_lock",
    "get_payment",
    "mark_refunded",
    "refund",
    "release",
    "submit_proof",
]

_log = logging.getLogger(__name__)
_OPEN_ORDER = ("created", "payment_pending")
_BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


def _spec(order: dict[str, Any]) -> ServiceSpec:
    spec = service_by_id(order["serviceId"])
    assert spec is not None
    return spec


def _payment(ctx: MarketContext, order: dict[str, Any]) -> dict[str, Any] | None:
    return ctx.store.get("payments", order.get("_paymentId") or "")


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


def _valid_address(spec: ServiceSpec, value: str, field: str) -> str:
    if spec.chain == "evm":
        if not Web3.is_address(value):
            raise invalid(field, "not an EVM address")
        return value
    if not 32 <= len(value) <= 44 or not set(value) <= _BASE58:
        raise invalid(field, "not a base58 Solana address")
    return value


def _check_rail_request(ctx: MarketContext, spec: ServiceSpec, rail: dict[str, Any]) -> None:
    expected = ctx.facts.payment(spec)
    checks = (
        ("type", spec.rail, "this service's rail is " + spec.rail),
        ("chain", expected["chain"], f"this service is paid on {expected['chain']}"),
        (
            "tokenAddress",
            expected.get("tokenAddress"),
            "wrong token: the service is paid in the sandbox USDC",
        ),
        ("tokenMint", expected.get("tokenMint"), "wrong token: the service is paid in the sandbox USDC mint"),
        ("payeeAddress", expected["payeeAddress"], "the payee is the provider's wallet"),
        ("walletAddress", expected["walletAddress"], "the payee is the provider's wallet"),
        ("escrowAddress", expected.get("escrowAddress"), "the escrow is the sandbox's escrow contract"),
    )
    for key, want, why in checks:
        given = opt_str(rail, key, "rail.")
        if given is not None and not _same(given, want):
            raise invalid("rail." + key, why)
    token = opt_str(rail, "token", "rail.")
    if (
        token is not None
        and token.upper() != "USDC"
        and not _same(token, expected.get("tokenAddress"))
        and not _same(token, expected.get("tokenMint"))
    ):
        raise invalid("rail.token", "wrong token: the sandbox settles in USDC")


def create_intent(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/payment-intent`` (idempotent: returns the existing payment)."""
    body = call.body
    rail = opt_object(body, "rail") or {}
    amount = opt_number(body, "amount")
    currency = opt_str(body, "currency")
    with ctx.store.transaction():
        order, pairing = order_for_agent(ctx, call)
        existing = _payment(ctx, order)
        if existing is not None:
            return 200, {"item": public(existing)}
        if order["status"] not in _OPEN_ORDER:
            raise ApiError(409, "ORDER_CLOSED", f"order is {order['status']}")
        spec = _spec(order)
        _check_rail_request(ctx, spec, rail)
        if amount is not None and raw_units(amount, "amount") != spec.price_raw:
            raise invalid("amount", f"the order's price is {human(spec.price_raw)} USDC")
        if currency is not None and currency.upper() not in ("USDC", "USD"):
            raise invalid("currency", "the sandbox settles in USDC")
        payer = opt_str(rail, "payerAddress", "rail.")
        if payer is None:
            if spec.chain != "evm":
                raise invalid("rail.payerAddress", "required on Solana: the agent's wallet address")
            payer = pairing["agentAddress"]
        payer = _valid_address(spec, payer, "rail.payerAddress")
        expected = ctx.facts.payment(spec)
        metadata: dict[str, Any] = {"tokenDecimals": DECIMALS, "rawAmount": str(spec.price_raw)}
        rail_out: dict[str, Any] = {
            "type": spec.rail,
            "chain": expected["chain"],
            "token": "USDC",
            "provider": spec.provider_key,
            "walletAddress": expected["payeeAddress"],
            "payerAddress": payer,
            "payeeAddress": expected["payeeAddress"],
            "metadata": metadata,
        }
        if spec.chain == "evm":
            rail_out["tokenAddress"] = expected["tokenAddress"]
        else:
            rail_out["tokenMint"] = expected["tokenMint"]
        if spec.rail == "onchain-escrow":
            rail_out["escrowAddress"] = expected["escrowAddress"]
            metadata["orderKey"] = _order_key_hex(order["id"])
        moment = iso(ctx.clock())
        payment: dict[str, Any] = {
            "id": new_id("pay"),
            "orderId": order["id"],
            "machineId": order["machineId"],
            "status": "intent_created",
            "rail": rail_out,
            "notes": [],
            "amount": human(spec.price_raw),
            "currency": "USDC",
            "proof": None,
            "createdAt": moment,
            "updatedAt": moment,
            "_rawAmount": spec.price_raw,
            "_proofKey": None,
        }
        ctx.store.put("payments", payment["id"], payment)
        touch(ctx, order, status="payment_pending", _paymentId=payment["id"])
        ctx.store.audit_event(
            "market.payment.intent-created",
            "market-payment",
            payment["id"],
            {"orderId": order["id"], "rail": spec.rail, "rawAmount": str(spec.price_raw)},
        )
    return 200, {"item": public(payment)}


def _order_key_hex(order_id: str) -> str:
    from buyer_agent.sandbox.contracts import order_key

    return "0x" + order_key(order_id).hex()


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
        raise invalid("payment", "x402 proofs are not supported by the sandbox; send a transfer proof")
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
    """``POST /market/orders/:orderId/payment-proof``: ``rpc`` mode is checked on the chain."""
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = _require_payment(ctx, order)
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
    """``POST …/payment/release``: checks the buyer's ``Released`` tx, or releases as the arbiter."""
    tx = opt_str(call.body, "transactionHash")
    notes = opt_str(call.body, "notes")
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = _require_payment(ctx, order)
        if payment["status"] == "released":
            return 200, {"item": public(payment)}
        if payment["status"] != "release_pending":
            raise ApiError(409, "ORDER_CLOSED", f"payment is {payment['status']}, not release_pending")
        if payment["rail"]["type"] == "onchain-escrow":
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
