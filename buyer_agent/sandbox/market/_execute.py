"""Execute: native services compute the real SHA-256 (200); handoff services answer 202 with a handoff."""

from __future__ import annotations

import hashlib
from typing import Any

from buyer_agent.sandbox.market._catalogue import handoff, service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._orders import order_for_agent, public, touch
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import opt_object

__all__ = ["execute", "run_service"]


def run_service(service_id: str, data: str) -> dict[str, Any]:
    """The provider's result for ``data``: the SHA-256 hex (the faulty provider returns garbage)."""
    spec = service_by_id(service_id)
    if spec is not None and spec.faulty:
        return {"sha256": "not-a-hash", "algorithm": "sha256"}
    digest = hashlib.sha256(data.encode("utf-8")).hexdigest()
    return {"sha256": digest, "algorithm": "sha256", "inputBytes": len(data.encode("utf-8"))}


def execute(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/execute``.

    Needs a held payment. Repeating execute on a delivered (or handed-off) order returns the stored
    execution, so a retried call never runs the service twice.
    """
    given = opt_object(call.body, "input")
    payment_body = opt_object(call.body, "payment")
    if payment_body is not None:
        raise invalid("payment", "x402 payment signatures are not supported by the sandbox")
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        stored = ctx.store.get("executions", order["id"])
        if stored is not None and order["status"] in ("delivered", "handoff"):
            return int(stored["statusCode"]), {"order": public(order), "execution": stored}
        if order["status"] in ("created", "payment_pending"):
            raise ApiError(402, "PAYMENT_REQUIRED", "the order's payment must be held before execute")
        if order["status"] != "ready":
            raise ApiError(409, "ORDER_CLOSED", f"order is {order['status']}")
        spec = service_by_id(order["serviceId"])
        assert spec is not None
        data = dict(order["input"]) if given is None else given
        if spec.execution_mode == "external-handoff":
            ext = handoff(spec)
            execution: dict[str, Any] = {"statusCode": 202, "handoff": ext}
            touch(ctx, order, status="handoff", handoff=ext)
        else:
            if not isinstance(data.get("data"), str):
                raise invalid("input.data", "required string (the text to hash)")
            run_id, outcome_id = new_id("run"), new_id("out")
            common = {
                "skillKey": spec_skill(order),
                "serviceId": spec.id,
                "executionMode": spec.execution_mode,
            }
            outcome = {
                "id": outcome_id,
                "status": "completed",
                **common,
                "result": run_service(spec.id, data["data"]),
            }
            run = {"id": run_id, "status": "completed", **common, "outcomeId": outcome_id}
            execution = {"statusCode": 200, "run": run, "outcome": outcome}
            touch(
                ctx,
                order,
                status="delivered",
                taskId=new_id("task"),
                routeId=new_id("route"),
                runId=run_id,
                outcomeId=outcome_id,
            )
        ctx.store.put("executions", order["id"], execution)
        ctx.store.audit_event(
            "market.order.executed", "market-order", order["id"], {"statusCode": execution["statusCode"]}
        )
    return int(execution["statusCode"]), {"order": public(order), "execution": execution}


def spec_skill(order: dict[str, Any]) -> str:
    """The order's skill key."""
    return str(order["skillKey"])
