"""Execute: native services run (200, the real SHA-256 or a price); handoff services answer 202."""

from __future__ import annotations

from typing import Any

from buyer_agent.sandbox.market._catalogue import service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError
from buyer_agent.sandbox.market._orders import order_for_agent, public, touch
from buyer_agent.sandbox.market._providers import check_input, run_service
from buyer_agent.sandbox.market._records import handoff
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import opt_object
from buyer_agent.sandbox.market._x402_flow import settle

__all__ = ["execute"]

#: Order states from which a free service (no payment) runs: nothing has to be held first.
_FREE_READY = ("created", "payment_pending", "ready")


def execute(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders/:orderId/execute``.

    Needs a held payment, except for a free service (``payment.required`` false), which runs
    straight from ``created``. An x402 order carries ``payment.paymentSignature``: the recorded
    authorization is settled on chain first (``_x402_flow.settle``), exactly once. Repeating execute
    on a delivered (or handed-off) order returns the stored execution, so a retried call never runs
    the service twice.
    """
    given = opt_object(call.body, "input")
    opt_object(call.body, "payment")
    with ctx.store.transaction():
        order, _pairing = order_for_agent(ctx, call)
        stored = ctx.store.get("executions", order["id"])
        if stored is not None and order["status"] in ("delivered", "handoff"):
            return int(stored["statusCode"]), {"order": public(order), "execution": stored}
        spec = service_by_id(order["serviceId"])
        assert spec is not None
        if not (spec.free and order["status"] in _FREE_READY):
            if order["status"] in ("created", "payment_pending"):
                raise ApiError(402, "PAYMENT_REQUIRED", "the order's payment must be held before execute")
            if order["status"] != "ready":
                raise ApiError(409, "ORDER_CLOSED", f"order is {order['status']}")
        data = dict(order["input"]) if given is None else given
        payment = ctx.store.get("payments", order.get("_paymentId") or "")
        if payment is not None and payment["rail"]["type"] == "x402":
            # The market pays the provider now: the recorded authorization is settled on chain.
            check_input(spec, data)
            settle(ctx, order, payment, call.body)
        if spec.execution_mode == "external-handoff":
            ext = handoff(spec)
            execution: dict[str, Any] = {"statusCode": 202, "handoff": ext}
            touch(ctx, order, status="handoff", handoff=ext)
        else:
            check_input(spec, data)
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
                "result": run_service(spec, data, ctx.clock()),
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
