"""Catalogue and search endpoints: services, skills, and ranked quotes with prices and expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from buyer_agent.sandbox.market._catalogue import CATALOGUE, SERVICE_TYPE, ServiceSpec, service_by_id
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._paging import list_page
from buyer_agent.sandbox.market._records import handoff, metadata, pricing, service_record
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import (
    iso,
    not_found,
    opt_bool,
    opt_number,
    opt_object,
    opt_str,
    opt_str_list,
    raw_units,
)

__all__ = ["get_search", "get_service", "list_services", "search"]

_TYPE_ALIASES = {"compute": SERVICE_TYPE}
_KNOWN_TYPES = {
    "oracle.price-feed",
    "compute.marketplace",
    "storage.object",
    "data.location",
    "network.partner-console",
    "identity.proof-of-person",
    "device.control",
    "machine.commerce",
    "storage",
    "identity",
    "location",
    "rtk",
    "gnss",
    "defi",
    "commerce",
    "compute",
}


def _catalogue(ctx: MarketContext) -> list[ServiceSpec]:
    return [spec for spec in CATALOGUE if ctx.facts.available(spec)]


def list_services(ctx: MarketContext, call: Call) -> Answer:
    """``GET /market/services?…&limit&cursor`` (platform key or a pairing token)."""
    _auth_either(ctx, call)
    moment = iso(ctx.clock())
    wanted_type = call.query.get("serviceType")
    mode = call.query.get("executionMode")
    provider = call.query.get("providerKey")
    items = [
        (i, service_record(spec, ctx.facts, moment))
        for i, spec in enumerate(_catalogue(ctx))
        if (wanted_type is None or _TYPE_ALIASES.get(wanted_type, wanted_type) == spec.service_type)
        and (mode is None or spec.execution_mode == mode)
        and (provider is None or spec.provider_key == provider)
    ]
    return 200, list_page(items, call.query)


def get_service(ctx: MarketContext, call: Call) -> Answer:
    """``GET /market/services/:serviceId``."""
    _auth_either(ctx, call)
    spec = service_by_id(call.params["serviceId"])
    if spec is None or not ctx.facts.available(spec):
        raise not_found("service", call.params["serviceId"])
    return 200, {"item": service_record(spec, ctx.facts, iso(ctx.clock()))}


def _auth_either(ctx: MarketContext, call: Call) -> None:
    if call.headers.get("x-agent-pairing-token"):
        ctx.require_agent(call)
    else:
        ctx.require_api_key(call)


def _task(body: dict[str, Any]) -> dict[str, Any]:
    service_type = opt_str(body, "serviceType")
    if service_type is not None and service_type not in _KNOWN_TYPES:
        raise invalid("serviceType", "unknown service type")
    native_only = opt_bool(body, "requireNativeExecution") or False
    handoff_ok = opt_bool(body, "allowExternalHandoff")
    return {
        "serviceType": _TYPE_ALIASES.get(service_type or SERVICE_TYPE, service_type or SERVICE_TYPE),
        "requiredCapabilities": opt_str_list(body, "requiredCapabilities") or [],
        # Handoff quotes only when asked for: a buyer that did not opt in cannot use a 202 handoff.
        "allowExternalHandoff": bool(handoff_ok) and not native_only,
        "requireNativeExecution": native_only,
        "operation": opt_str(body, "operation"),
        "region": opt_str(body, "region"),
    }


def _matches(spec: ServiceSpec, task: dict[str, Any]) -> bool:
    if task["serviceType"] != spec.service_type:
        return False
    if task["operation"] is not None and task["operation"] != spec.operation:
        return False
    if task["region"] is not None and spec.region not in (task["region"], "global"):
        return False
    if not set(task["requiredCapabilities"]) <= set(spec.capabilities):
        return False
    return spec.execution_mode == "native" or task["allowExternalHandoff"]


def _budget_max(body: dict[str, Any]) -> int | None:
    budget = opt_object(body, "budget")
    if budget is None:
        return None
    top = opt_number(budget, "max", "budget.")
    if top is None:
        top = opt_number(budget, "amount", "budget.")
    opt_number(budget, "preferred", "budget.")
    currency = opt_str(budget, "currency", "budget.")
    if currency is not None and currency.upper() not in ("USD", "USDC"):
        raise invalid("budget.currency", "the sandbox prices in USDC")
    return None if top is None else raw_units(top, "budget.max")


def search(ctx: MarketContext, call: Call) -> Answer:
    """``POST /market/search``: quotes for matching services, best score first.

    Quotes over ``budget.max`` are still returned (marked in ``reasons`` and
    ``metadata.withinBudget``): the buyer filters.
    """
    pairing, _claims = ctx.require_agent(call)
    body = call.body
    machine_id = ctx.check_machine(opt_str(body, "machineId"))
    pairing_id = opt_str(body, "agentPairingId")
    if pairing_id is not None and pairing_id != pairing["id"]:
        raise ApiError(403, "AGENT_AUTH_INVALID", "agentPairingId does not match the pairing token")
    task = _task(body)
    max_results = body.get("maxResults")
    if max_results is not None and (
        isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
    ):
        raise invalid("maxResults", "must be a positive integer")
    budget_max = _budget_max(body)
    opt_object(body, "providerCredentials")
    created = ctx.clock()
    expires = iso(created + timedelta(seconds=ctx.settings.quote_ttl_s))
    search_id = new_id("srch")
    specs = sorted((s for s in _catalogue(ctx) if _matches(s, task)), key=lambda s: (-s.score, s.price_raw))
    if max_results is not None:
        specs = specs[:max_results]
    quotes = [_quote(ctx, spec, expires, budget_max) for spec in specs]
    record = {
        "id": search_id,
        "machineId": machine_id,
        "agentPairingId": pairing["id"],
        "requestPayload": body,
        "normalizedTask": task,
        "status": "completed" if quotes else "no_match",
        "quotes": quotes,
        "createdAt": iso(created),
    }
    with ctx.store.transaction():
        ctx.store.put("searches", search_id, record)
        for quote in quotes:
            ctx.store.put("quotes", quote["id"], {"searchId": search_id, "pairingId": pairing["id"], **quote})
    return 200, {"item": record}


def _quote(ctx: MarketContext, spec: ServiceSpec, expires: str, budget_max: int | None) -> dict[str, Any]:
    within = budget_max is None or spec.price_raw <= budget_max
    reasons = [
        f"matches {spec.service_type}/{spec.operation}",
        f"provider reputation {spec.reputation}",
        f"typical latency {spec.latency_ms} ms",
        "native execution" if spec.execution_mode == "native" else "external handoff",
        "free: no payment" if spec.free else f"paid by {spec.rail} on {spec.chain}",
    ]
    if not within:
        reasons.append("price above budget.max")
    meta = {**metadata(spec), "withinBudget": within}
    quote: dict[str, Any] = {
        "id": new_id("quo"),
        "serviceId": spec.id,
        "skillKey": spec.skill_key,
        "providerKey": spec.provider_key,
        "executionMode": spec.execution_mode,
        "integrationStatus": "native",
        "operation": spec.operation,
        "score": spec.score,
        "reasons": reasons,
        "pricing": pricing(spec),
        "payment": ctx.facts.payment(spec),
        "expiresAt": expires,
        "handoff": handoff(spec),
        "metadata": meta,
    }
    return quote


def get_search(ctx: MarketContext, call: Call) -> Answer:
    """``GET /market/searches/:searchId`` (platform)."""
    ctx.require_api_key(call)
    record = ctx.store.get("searches", call.params["searchId"])
    if record is None:
        raise not_found("search", call.params["searchId"])
    return 200, {"item": record}
