"""``POST …/payment-intent``: the payment record for an order, on the rail its service recommends.

Idempotent (a second call returns the existing payment). The rail type asked for must be one the
service supports (``wallet`` services also take ``wdk-usdt-transfer``); a free service's intent is
``not_required`` and moves the order straight to ``ready``; an ``x402`` intent carries the
provider's ``PAYMENT-REQUIRED`` challenge in ``rail.metadata``.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from buyer_agent.sandbox.market._catalogue import ServiceSpec, service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._orders import order_for_agent, public, touch
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import DECIMALS, human, iso, opt_number, opt_object, opt_str, raw_units
from buyer_agent.sandbox.market._x402_flow import intent_metadata

__all__ = ["create_intent"]

_OPEN_ORDER = ("created", "payment_pending")
_BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


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


def _rail_type(ctx: MarketContext, spec: ServiceSpec, rail: dict[str, Any]) -> str:
    """The rail type of the payment: the one asked for (a supported one), else the service's default."""
    asked = opt_str(rail, "type", "rail.")
    if asked is None:
        return spec.rail
    supported = ctx.facts.supported_rails(spec)
    if asked not in supported:
        raise invalid("rail.type", "this service's supportedRails are " + ", ".join(supported))
    return asked


def _check_rail_request(ctx: MarketContext, spec: ServiceSpec, rail: dict[str, Any]) -> None:
    expected = ctx.facts.payment(spec)
    checks = (
        ("chain", expected.get("chain"), f"this service is paid on {expected.get('chain')}"),
        (
            "tokenAddress",
            expected.get("tokenAddress"),
            "wrong token: the service is paid in the sandbox USDC",
        ),
        ("tokenMint", expected.get("tokenMint"), "wrong token: the service is paid in the sandbox USDC mint"),
        ("payeeAddress", expected.get("payeeAddress"), "the payee is the provider's wallet"),
        ("walletAddress", expected.get("walletAddress"), "the payee is the provider's wallet"),
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
        existing = ctx.store.get("payments", order.get("_paymentId") or "")
        if existing is not None:
            return 200, {"item": public(existing)}
        if order["status"] not in _OPEN_ORDER:
            raise ApiError(409, "ORDER_CLOSED", f"order is {order['status']}")
        spec = service_by_id(order["serviceId"])
        assert spec is not None
        rail_type = _rail_type(ctx, spec, rail)
        _check_rail_request(ctx, spec, rail)
        if amount is not None and raw_units(amount, "amount") != spec.price_raw:
            raise invalid("amount", f"the order's price is {human(spec.price_raw)} USDC")
        if currency is not None and currency.upper() not in ("USDC", "USD"):
            raise invalid("currency", "the sandbox settles in USDC")
        if spec.free:
            payment = _record(
                ctx, order, spec, "not_required", {"type": rail_type, "provider": spec.provider_key}
            )
            touch(ctx, order, status="ready", _paymentId=payment["id"])
        else:
            rail_out = _paid_rail(ctx, order, spec, rail_type, rail, pairing)
            payment = _record(ctx, order, spec, "intent_created", rail_out)
            touch(ctx, order, status="payment_pending", _paymentId=payment["id"])
        ctx.store.audit_event(
            "market.payment.intent-created",
            "market-payment",
            payment["id"],
            {"orderId": order["id"], "rail": rail_type, "rawAmount": str(spec.price_raw)},
        )
    return 200, {"item": public(payment)}


def _paid_rail(
    ctx: MarketContext,
    order: dict[str, Any],
    spec: ServiceSpec,
    rail_type: str,
    rail: dict[str, Any],
    pairing: dict[str, Any],
) -> dict[str, Any]:
    payer = opt_str(rail, "payerAddress", "rail.")
    if payer is None:
        if spec.chain != "evm":
            raise invalid("rail.payerAddress", "required on Solana: the agent's wallet address")
        payer = pairing["agentAddress"]
    payer = _valid_address(spec, payer, "rail.payerAddress")
    expected = ctx.facts.payment(spec)
    metadata: dict[str, Any] = {"tokenDecimals": DECIMALS, "rawAmount": str(spec.price_raw)}
    rail_out: dict[str, Any] = {
        "type": rail_type,
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
    if rail_type == "x402":
        metadata.update(intent_metadata(ctx, order, rail_out, spec.price_raw))
    return rail_out


def _record(
    ctx: MarketContext, order: dict[str, Any], spec: ServiceSpec, status: str, rail: dict[str, Any]
) -> dict[str, Any]:
    moment = iso(ctx.clock())
    payment: dict[str, Any] = {
        "id": new_id("pay"),
        "orderId": order["id"],
        "machineId": order["machineId"],
        "status": status,
        "rail": rail,
        "notes": ["free: no payment is required"] if spec.free else [],
        "amount": human(spec.price_raw),
        "currency": "USDC",
        "proof": None,
        "createdAt": moment,
        "updatedAt": moment,
        "_rawAmount": spec.price_raw,
        "_proofKey": None,
    }
    ctx.store.put("payments", payment["id"], payment)
    return payment


def _order_key_hex(order_id: str) -> str:
    from buyer_agent.sandbox.contracts import order_key

    return "0x" + order_key(order_id).hex()
