"""Confirm and dispute; the sandbox, as arbiter, resolves every dispute for the buyer with a refund."""

from __future__ import annotations

import logging
from typing import Any

from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError
from buyer_agent.sandbox.market._orders import order_for_agent, public, touch
from buyer_agent.sandbox.market._payments import arbiter_refund, mark_refunded
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import iso, opt_object, req_str

__all__ = ["confirm", "dispute", "resolve_dispute"]

_log = logging.getLogger(__name__)
_NOT_YET = ("created", "payment_pending", "ready", "executing")
_DISPUTABLE = ("ready", "executing", "delivered", "handoff")
#: The stated rule (README): every dispute is resolved for the buyer, who gets a full refund.
RULE = "every dispute is resolved for the buyer: full refund on chain"


def confirm(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/confirm``: order → confirmed, a held payment → release_pending.

    As documented for every rail: the buyer's ``payment/release`` then closes it (``released``).
    """
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = ctx.store.get("payments", order.get("_paymentId") or "")
        if order["status"] == "confirmed":
            return 200, {"order": public(order), "payment": public(payment)}
        if order["status"] in _NOT_YET:
            raise ApiError(409, "ORDER_NOT_DELIVERED", f"order is {order['status']}; confirm after delivery")
        if order["status"] not in ("delivered", "handoff"):
            raise ApiError(409, "ORDER_CLOSED", f"order is {order['status']}")
        touch(ctx, order, status="confirmed")
        ctx.store.audit_event("market.order.confirmed", "market-order", order["id"], {})
        if payment is not None and payment["status"] == "held":
            touch(ctx, payment, status="release_pending")
    return 200, {"order": public(order), "payment": public(payment)}


def dispute(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/dispute``: order → disputed, payment → frozen, then resolved."""
    reason = req_str(call.body, "reason")
    evidence = opt_object(call.body, "evidence") or {}
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        payment = ctx.store.get("payments", order.get("_paymentId") or "")
        # Escrowed funds are still in the contract after confirm, so that payment can still be
        # frozen; a direct transfer (or a settled x402 authorization) already reached the provider.
        pending_release = (
            order["status"] == "confirmed"
            and payment is not None
            and payment["status"] == "release_pending"
            and payment["rail"]["type"] == "onchain-escrow"
        )
        if order["status"] not in _DISPUTABLE and not pending_release:
            raise ApiError(409, "ORDER_CLOSED", f"order is {order['status']}")
        moment = iso(ctx.clock())
        record: dict[str, Any] = {
            "id": new_id("dsp"),
            "orderId": order["id"],
            "machineId": order["machineId"],
            "status": "open",
            "reason": reason,
            "evidence": evidence,
            "createdAt": moment,
            "updatedAt": moment,
        }
        ctx.store.put("disputes", record["id"], record)
        touch(ctx, order, status="disputed")
        if payment is not None and payment["status"] in ("held", "release_pending"):
            touch(ctx, payment, status="frozen")
        ctx.store.audit_event(
            "market.order.disputed", "market-order", order["id"], {"disputeId": record["id"]}
        )
        answer = {"order": public(order), "payment": public(payment), "dispute": public(record)}
    order_id = order["id"]
    ctx.later(lambda: resolve_dispute(ctx, order_id), ctx.settings.dispute_delay_s)
    return 200, answer


def resolve_dispute(ctx: MarketContext, order_id: str) -> None:
    """Resolve the order's open dispute by :data:`RULE` (refund on chain, then record it)."""
    with ctx.store.transaction():
        order = ctx.store.get("orders", order_id)
        if order is None:
            return
        payment = ctx.store.get("payments", order.get("_paymentId") or "")
        if payment is not None and payment["status"] == "frozen":
            try:
                tx = arbiter_refund(ctx, order, payment)
            except ApiError as exc:
                _log.error("dispute refund for %s failed: %s", order_id, exc.message)
                return
            mark_refunded(ctx, order, payment, tx, RULE)
            return
        for record in ctx.store.values("disputes"):
            if record["orderId"] == order_id and record["status"] == "open":
                touch(ctx, record, status="resolved", resolution={"outcome": "no payment to refund"})
