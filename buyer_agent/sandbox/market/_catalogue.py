"""The demo catalogue: hashing services from several providers, priced and ranked to choose between."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from buyer_agent.sandbox.market._wire import human

__all__ = [
    "CATALOGUE",
    "OPERATION",
    "OPERATION_UNVERIFIED",
    "SERVICE_TYPE",
    "SKILL_KEY",
    "ChainFacts",
    "ServiceSpec",
    "handoff",
    "metadata",
    "pricing",
    "service_by_id",
    "service_record",
]

SERVICE_TYPE = "compute.marketplace"
OPERATION = "sha256"
OPERATION_UNVERIFIED = "sha256-unverified"
SKILL_KEY = "compute.hash"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One demo service: who sells it, what it costs (USDC base units), how it runs and is paid."""

    id: str
    name: str
    provider_key: str
    provider_label: str
    price_raw: int
    score: Decimal
    rail: str  # "wallet" | "onchain-escrow"
    chain: str  # "evm" | "solana"
    latency_ms: int
    reputation: Decimal
    region: str = "global"
    operation: str = OPERATION
    execution_mode: str = "native"
    capabilities: tuple[str, ...] = ("sha256", "hashing")
    faulty: bool = False
    notes: tuple[str, ...] = field(default=())


def _d(text: str) -> Decimal:
    return Decimal(text)


#: The catalogue. Ids are stable (documented in the README): tests and strategies rely on them.
CATALOGUE: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "svc_hash_budget", "Budget SHA-256", "hashbarn", "HashBarn", 800_000, _d("0.70"), "wallet", "evm",
        latency_ms=450, reputation=_d("0.72"),
    ),
    ServiceSpec(
        "svc_hash_fast", "Fast SHA-256", "quickhash", "QuickHash", 1_200_000, _d("0.92"), "wallet", "evm",
        latency_ms=40, reputation=_d("0.95"), region="eu-west",
        capabilities=("sha256", "hashing", "low-latency"),
    ),
    ServiceSpec(
        "svc_hash_premium", "Premium SHA-256", "premiumhash", "Premium Hash Labs", 4_000_000, _d("0.99"),
        "wallet", "evm", latency_ms=20, reputation=_d("0.99"), region="eu-west",
        capabilities=("sha256", "hashing", "low-latency"),
    ),
    ServiceSpec(
        "svc_hash_denied", "Cheap SHA-256 (denied by the demo policy)", "shadyhash", "ShadyHash", 600_000,
        _d("0.80"), "wallet", "evm", latency_ms=150, reputation=_d("0.41"), region="global",
    ),
    ServiceSpec(
        "svc_hash_handoff", "SHA-256 by external handoff", "handhash", "HandHash", 900_000, _d("0.75"),
        "wallet", "evm", latency_ms=900, reputation=_d("0.80"), execution_mode="external-handoff",
    ),
    ServiceSpec(
        "svc_hash_escrow", "Escrowed SHA-256", "escrowhash", "EscrowHash", 1_000_000, _d("0.85"),
        "onchain-escrow", "evm", latency_ms=120, reputation=_d("0.88"),
        capabilities=("sha256", "hashing", "escrow"),
    ),
    ServiceSpec(
        "svc_hash_escrow_pro", "Escrowed SHA-256 Pro", "escrowpro", "EscrowPro", 1_600_000, _d("0.93"),
        "onchain-escrow", "evm", latency_ms=60, reputation=_d("0.94"), region="eu-west",
        capabilities=("sha256", "hashing", "escrow", "low-latency"),
    ),
    ServiceSpec(
        "svc_hash_sol", "SHA-256 on Solana", "solhash", "SolHash", 900_000, _d("0.80"), "wallet", "solana",
        latency_ms=200, reputation=_d("0.83"),
    ),
    ServiceSpec(
        "svc_hash_sol_fast", "Fast SHA-256 on Solana", "solfast", "SolFast", 1_400_000, _d("0.90"), "wallet",
        "solana", latency_ms=50, reputation=_d("0.91"), capabilities=("sha256", "hashing", "low-latency"),
    ),
    ServiceSpec(
        "svc_hash_faulty", "SHA-256 (unverified provider)", "faultyhash", "FaultyHash", 700_000, _d("0.65"),
        "onchain-escrow", "evm", latency_ms=100, reputation=_d("0.30"), operation=OPERATION_UNVERIFIED,
        capabilities=("sha256", "hashing", "escrow"), faulty=True,
        notes=("Reports completed outcomes whose result is not a valid hash (dispute demo).",),
    ),
    # Every example (task, escrow, solana, dispute) gets, on its own rail, quotes to choose between:
    # eligible ones at different prices and scores, one over a typical 2.50 budget, and a cheap one
    # denied by the demo policy (``DEFAULT_POLICY``).
    ServiceSpec(
        "svc_hash_escrow_premium", "Escrowed SHA-256 Premium", "escrowprime", "EscrowPrime", 3_200_000,
        _d("0.97"), "onchain-escrow", "evm", latency_ms=25, reputation=_d("0.97"), region="eu-west",
        capabilities=("sha256", "hashing", "escrow", "low-latency"),
    ),
    ServiceSpec(
        "svc_hash_escrow_denied", "Cheap escrowed SHA-256 (denied by the demo policy)", "shadyescrow",
        "ShadyEscrow", 500_000, _d("0.78"), "onchain-escrow", "evm", latency_ms=180, reputation=_d("0.38"),
        capabilities=("sha256", "hashing", "escrow"),
    ),
    ServiceSpec(
        "svc_hash_sol_premium", "Premium SHA-256 on Solana", "solprime", "SolPrime", 3_500_000, _d("0.98"),
        "wallet", "solana", latency_ms=30, reputation=_d("0.98"),
        capabilities=("sha256", "hashing", "low-latency"),
    ),
    ServiceSpec(
        "svc_hash_sol_denied", "Cheap SHA-256 on Solana (denied by the demo policy)", "shadysol", "ShadySol",
        500_000, _d("0.77"), "wallet", "solana", latency_ms=220, reputation=_d("0.36"),
    ),
    ServiceSpec(
        "svc_hash_faulty_pro", "SHA-256 Pro (unverified provider)", "faultypro", "FaultyPro", 1_300_000,
        _d("0.82"), "onchain-escrow", "evm", latency_ms=70, reputation=_d("0.35"),
        operation=OPERATION_UNVERIFIED, capabilities=("sha256", "hashing", "escrow"), faulty=True,
        notes=("Reports completed outcomes whose result is not a valid hash (dispute demo).",),
    ),
    ServiceSpec(
        "svc_hash_faulty_premium", "SHA-256 Premium (unverified provider)", "faultyprime", "FaultyPrime",
        3_000_000, _d("0.90"), "onchain-escrow", "evm", latency_ms=30, reputation=_d("0.33"),
        operation=OPERATION_UNVERIFIED, capabilities=("sha256", "hashing", "escrow"), faulty=True,
        notes=("Reports completed outcomes whose result is not a valid hash (dispute demo).",),
    ),
    ServiceSpec(
        "svc_hash_faulty_denied", "Cheap SHA-256 (unverified, denied by the demo policy)", "faultyshady",
        "FaultyShady", 500_000, _d("0.60"), "onchain-escrow", "evm", latency_ms=160, reputation=_d("0.20"),
        operation=OPERATION_UNVERIFIED, capabilities=("sha256", "hashing", "escrow"), faulty=True,
        notes=("Reports completed outcomes whose result is not a valid hash (dispute demo).",),
    ),
    # The cheapest quote when a task allows handoffs: native_first passes it over, cheapest takes it.
    ServiceSpec(
        "svc_hash_handoff_lite", "SHA-256 by external handoff (lite)", "handlite", "HandLite", 500_000,
        _d("0.60"), "wallet", "evm", latency_ms=1200, reputation=_d("0.70"),
        execution_mode="external-handoff",
    ),
)  # fmt: skip

_BY_ID = {spec.id: spec for spec in CATALOGUE}


def service_by_id(service_id: str) -> ServiceSpec | None:
    """The service with this id, or None."""
    return _BY_ID.get(service_id)


@dataclass(frozen=True, slots=True)
class ChainFacts:
    """Where the catalogue's payments go: chains, token contracts and each provider's payee address."""

    evm_chain: str | None
    token_address: str | None
    escrow_address: str | None
    solana_chain: str | None
    mint: str | None
    evm_payees: dict[str, str]
    solana_payees: dict[str, str]

    def payee(self, spec: ServiceSpec) -> str | None:
        """The provider's receiving address on the service's chain."""
        table = self.evm_payees if spec.chain == "evm" else self.solana_payees
        return table.get(spec.provider_key)

    def available(self, spec: ServiceSpec) -> bool:
        """True when the service's chain runs in this sandbox."""
        if spec.chain == "evm":
            return self.evm_chain is not None and self.payee(spec) is not None
        return self.solana_chain is not None and self.payee(spec) is not None

    def payment(self, spec: ServiceSpec) -> dict[str, Any]:
        """The ``MarketPaymentRailRecommendation`` for a service."""
        payee = self.payee(spec)
        rec: dict[str, Any] = {
            "defaultRail": spec.rail,
            "supportedRails": [spec.rail],
            "required": True,
            "notes": [
                f"pay {human(spec.price_raw)} USDC to the provider"
                + (" through the escrow contract" if spec.rail == "onchain-escrow" else " by direct transfer")
            ],
            "provider": spec.provider_key,
            "token": "USDC",
            "walletAddress": payee,
            "payeeAddress": payee,
        }
        if spec.chain == "evm":
            rec["chain"] = self.evm_chain
            rec["tokenAddress"] = self.token_address
            if spec.rail == "onchain-escrow":
                rec["escrowAddress"] = self.escrow_address
        else:
            rec["chain"] = self.solana_chain
            rec["tokenMint"] = self.mint
        return rec


def pricing(spec: ServiceSpec) -> dict[str, Any]:
    """The quote's fixed ``pricing`` block (amount in human USDC)."""
    return {
        "mode": "fixed",
        "amount": human(spec.price_raw),
        "currency": "USDC",
        "rate": "per_request",
        "notes": [],
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
        "skillKey": SKILL_KEY,
        "providerKey": spec.provider_key,
        "providerId": f"prov_{spec.provider_key}",
        "providerLabel": spec.provider_label,
        "serviceType": SERVICE_TYPE,
        "name": spec.name,
        "description": spec.name + " (sandbox demo service).",
        "operations": [spec.operation],
        "authType": "wallet",
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
        "operationContracts": [
            {
                "operation": spec.operation,
                "inputFields": [{"key": "data", "type": "string", "description": "text to hash (UTF-8)"}],
                "outputFields": [{"key": "sha256", "type": "string", "description": "lower-case hex digest"}],
                "exampleInput": {"data": "hello"},
                "summary": "SHA-256 of input.data",
                "notes": list(spec.notes),
            }
        ],
    }
