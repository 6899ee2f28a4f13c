"""A catalogue service as the wire shows it: the ``MarketService`` entry, pricing, metadata, handoff."""

from __future__ import annotations

from typing import Any

from buyer_agent.sandbox.market._catalogue import ChainFacts, ServiceSpec
from buyer_agent.sandbox.market._providers import operation_contract
from buyer_agent.sandbox.market._wire import human

__all__ = ["handoff", "metadata", "pricing", "service_record"]


def pricing(spec: ServiceSpec) -> dict[str, Any]:
    """The quote's fixed ``pricing`` block (amount in human USDC; 0 for a free service)."""
    return {
        "mode": "fixed",
        "amount": human(spec.price_raw),
        "currency": "USDC",
        "rate": "per_request",
        "notes": ["free"] if spec.free else [],
    }


def metadata(spec: ServiceSpec) -> dict[str, Any]:
    """Extra facts a strategy may use (documented in the README)."""
    return {
        "latencyMs": spec.latency_ms,
        "providerReputation": spec.reputation,
        "providerLabel": spec.provider_label,
        "region": spec.region,
        "chainFamily": spec.chain,
        "capabilities": list(spec.capabilities),
    }


def handoff(spec: ServiceSpec) -> dict[str, Any] | None:
    """The external handoff of a handoff service."""
    if spec.execution_mode != "external-handoff":
        return None
    return {
        "label": f"Continue with {spec.provider_label}",
        "url": f"https://{spec.provider_key}.invalid/sandbox/jobs",
        "notes": ["The sandbox does not run this service; the provider takes over outside the market."],
    }


def service_record(spec: ServiceSpec, facts: ChainFacts, updated_at: str) -> dict[str, Any]:
    """The ``MarketService`` catalogue entry."""
    return {
        "id": spec.id,
        "skillKey": spec.skill_key,
        "providerKey": spec.provider_key,
        "providerId": f"prov_{spec.provider_key}",
        "providerLabel": spec.provider_label,
        "serviceType": spec.service_type,
        "name": spec.name,
        "description": spec.name + " (sandbox demo service).",
        "operations": [spec.operation],
        "authType": "none" if spec.free else "wallet",
        "accessMode": "public",
        "executionMode": spec.execution_mode,
        "integrationStatus": "native",
        "distribution": "peaq-native",
        "maturity": "reference",
        "kind": "runtime",
        "capabilities": list(spec.capabilities),
        "region": spec.region,
        "freshnessSeconds": 0,
        "requiresHumanEnablement": False,
        "metadata": metadata(spec),
        "updatedAt": updated_at,
        "handoff": handoff(spec),
        "pricing": pricing(spec),
        "payment": facts.payment(spec),
        "operationContracts": [operation_contract(spec)],
    }
