"""Order endpoints: create (policy, spend and quote checks), read, list, confirm and dispute."""

from __future__ import annotations

from typing import Any

from buyer_agent.sandbox.market._catalogue import ServiceSpec, service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._paging import list_page
from buyer_agent.sandbox.market._policy import check_order
from buyer_agent.sandbox.market._providers import check_input
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import (
    iso,
    not_found,
    opt_number,
    opt_object,
    opt_str,
    parse_iso,
    req_str,
)

__all__ = [
    "create_order",
    "get_order",
    "list_orders",
    "order_for_agent",
    "public",
    "spent_today",
    "touch",
]

#: Order states in which no further step is possible.
CLOSED = ("confirmed", "disputed", "cancelled", "failed")


def public(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record without its private ``_`` bookkeeping keys."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if not k.startswith("_")}


def touch(ctx: MarketContext, record: dict[str, Any], **changes: Any) -> None:
    """Apply changes and bump ``updatedAt``."""
    record.update(changes)
    record["updatedAt"] = iso(ctx.clock())


def spent_today(ctx: MarketContext, pairing_id: str) -> int:
    """Base units the pairing committed today (UTC): its orders' prices, minus refunded ones."""
    today = ctx.clock().date()
    total = 0
    for order in ctx.store.values("orders"):
        if order["agentPairingId"] != pairing_id or parse_iso(order["createdAt"]).date() != today:
            continue
        payment = ctx.store.get("payments", order.get("_paymentId") or "")
        if payment is not None and payment["status"] == "refunded":
            continue
        total += int(order["_priceRaw"])
    return total


def _input(spec: ServiceSpec, body: dict[str, Any]) -> dict[str, Any]:
    data = opt_object(body, "input") or {}
    check_input(spec, data)
    return data


def _quote(ctx: MarketContext, body: dict[str, Any], spec: ServiceSpec) -> dict[str, Any] | None:
    quote_id = opt_str(body, "quoteId")
    if quote_id is None:
        return None
    quote = ctx.store.get("quotes", quote_id)
    if quote is None:
        raise ApiError(404, "NOT_FOUND", f"quote {quote_id!r} not found", {"field": "quoteId"})
    if quote["serviceId"] != spec.id:
        raise invalid("quoteId", f"quote is for {quote['serviceId']}, not {spec.id}")
    if parse_iso(quote["expiresAt"]) <= ctx.clock():
        raise ApiError(409, "QUOTE_EXPIRED", "the quote expired; search again", {"quoteId": quote_id})
    return quote


def create_order(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/orders``: lock a service into an order after the policy and spend checks."""
    pairing, _claims = ctx.require_agent(call)
    body = call.body
    machine_id = ctx.check_machine(req_str(body, "machineId"))
    pairing_id = req_str(body, "agentPairingId")
    if pairing_id != pairing["id"]:
        raise ApiError(401, "AGENT_AUTH_INVALID", "agentPairingId does not match the pairing token")
    service_id = req_str(body, "serviceId")
    spec = service_by_id(service_id)
    if spec is None or not ctx.facts.available(spec):
        raise ApiError(404, "NOT_FOUND", f"service {service_id!r} not found", {"field": "serviceId"})
    operation = opt_str(body, "operation")
    if operation is not None and operation != spec.operation:
        raise invalid("operation", f"service {spec.id} offers {spec.operation!r}")
    budget = opt_object(body, "budget")
    if budget is not None:
        for key in ("amount", "max"):
            opt_number(budget, key, "budget.")
        opt_str(budget, "currency", "budget.")
    opt_object(body, "providerCredentials")
    search_id = opt_str(body, "searchId")
    data = _input(spec, body)
    with ctx.store.transaction():
        quote = _quote(ctx, body, spec)
        policy = pairing["delegationPolicy"]
        if not ctx.settings.enforce_daily_limit:  # the buyer's own ledger alone keeps it (tests)
            policy = {**policy, "dailySpendLimit": None}
        check_order(
            policy,
            service_id=spec.id,
            skill_key=spec.skill_key,
            price_raw=spec.price_raw,
            spent_today_raw=spent_today(ctx, pairing["id"]),
        )
        moment = iso(ctx.clock())
        order: dict[str, Any] = {
            "id": new_id("ord"),
            "machineId": machine_id,
            "agentPairingId": pairing["id"],
            "searchId": search_id or (quote["searchId"] if quote else None),
            "quoteId": quote["id"] if quote else None,
            "serviceId": spec.id,
            "skillKey": spec.skill_key,
            "providerKey": spec.provider_key,
            "serviceType": spec.service_type,
            "operation": spec.operation,
            "executionMode": spec.execution_mode,
            "integrationStatus": "native",
            "status": "created",
            "input": data,
            "budget": None
            if budget is None
            else {"amount": budget.get("amount", budget.get("max")), "currency": budget.get("currency")},
            "payment": ctx.facts.payment(spec),
            "serviceSnapshot": {"id": spec.id, "name": spec.name, "providerLabel": spec.provider_label},
            "taskId": None,
            "routeId": None,
            "runId": None,
            "outcomeId": None,
            "handoff": None,
            "errorMessage": None,
            "createdAt": moment,
            "updatedAt": moment,
            "_priceRaw": spec.price_raw,
            "_agentAddress": pairing["agentAddress"],
            "_paymentId": None,
        }
        ctx.store.put("orders", order["id"], order)
        ctx.store.audit_event(
            "market.order.created",
            "market-order",
            order["id"],
            {"serviceId": spec.id, "quoteId": order["quoteId"]},
        )
    return 200, {"item": public(order)}


def order_for_agent(ctx: MarketContext, call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order named in the path, for the calling agent (any live pairing of the same agent).

    A second agent process that paired again with the same key can resume its orders.
    """
    pairing, _claims = ctx.require_agent(call)
    order = ctx.store.get("orders", call.params["orderId"])
    if order is None or order["_agentAddress"].lower() != pairing["agentAddress"].lower():
        raise not_found("order", call.params["orderId"])
    return order, pairing


def get_order(ctx: MarketContext, call: Call) -> Answer:
    """``GET /market/orders/:orderId`` (platform key, or the owning agent's token).

    The owner's view (the agent's token) also carries the order's ``execution`` once it ran — the
    docs promise that view's ``execution`` for oneM2M orders; the sandbox gives it for every order, so
    an agent whose execute answer was lost can read the outcome instead of executing again.
    """
    if call.headers.get("x-agent-pairing-token"):
        order, _pairing = order_for_agent(ctx, call)
        stored = ctx.store.get("executions", order["id"])
        if stored is not None:
            return 200, {"item": {**(public(order) or {}), "execution": stored}}
    else:
        ctx.require_api_key(call)
        found = ctx.store.get("orders", call.params["orderId"])
        if found is None:
            raise not_found("order", call.params["orderId"])
        order = found
    return 200, {"item": public(order)}


def list_orders(ctx: MarketContext, call: Call) -> Answer:
    """``GET /market/orders?machineId=…&limit&cursor`` (platform), oldest first."""
    ctx.require_api_key(call)
    machine = call.query.get("machineId")
    if machine is None:
        raise invalid("machineId", "required query parameter")
    ctx.check_machine(machine)
    with ctx.store.lock:
        orders = [
            (i, public(o)) for i, o in enumerate(ctx.store.values("orders")) if o["machineId"] == machine
        ]
    return 200, list_page(orders, call.query)
