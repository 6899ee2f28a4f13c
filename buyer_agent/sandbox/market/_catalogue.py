"""The demo catalogue: hashing and price-feed services from several providers, on every documented rail."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from buyer_agent.sandbox.market._wire import human

__all__ = [
    "CATALOGUE",
    "DIRECT_RAILS",
    "OPERATION",
    "OPERATION_FREE",
    "OPERATION_PRICE",
    "OPERATION_UNVERIFIED",
    "PRICE_SERVICE_TYPE",
    "PRICE_SKILL_KEY",
    "SERVICE_TYPE",
    "SKILL_KEY",
    "ChainFacts",
    "ServiceSpec",
    "service_by_id",
]

SERVICE_TYPE = "compute.marketplace"
OPERATION = "sha256"
OPERATION_UNVERIFIED = "sha256-unverified"
OPERATION_FREE = "sha256-free"
SKILL_KEY = "compute.hash"
PRICE_SERVICE_TYPE = "oracle.price-feed"
OPERATION_PRICE = "get-latest-price"
PRICE_SKILL_KEY = "oracle.price-feed"
#: A direct transfer's rail types: ``wallet``, and the documented ``wdk-usdt-transfer`` it upgrades to
#: after a proof (and which a client may ask for when ``supportedRails`` lists it).
DIRECT_RAILS = ("wallet", "wdk-usdt-transfer")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One demo service: who sells it, what it costs (USDC base units), how it runs and is paid.

    ``rail`` is the service's ``defaultRail``: ``wallet``, ``onchain-escrow``, ``x402`` (the
    buyer signs an EIP-3009 authorization, the market settles it at execute) or ``not-required``
    (free, no payment). ``chain`` is ``evm``, ``solana``, or ``none`` for a free service.
    """

    id: str
    name: str
    provider_key: str
    provider_label: str
    price_raw: int
    score: Decimal
    rail: str
    chain: str
    latency_ms: int
    reputation: Decimal
    region: str = "global"
    operation: str = OPERATION
    execution_mode: str = "native"
    capabilities: tuple[str, ...] = ("sha256", "hashing")
    faulty: bool = False
    notes: tuple[str, ...] = field(default=())
    service_type: str = SERVICE_TYPE
    skill_key: str = SKILL_KEY

    @property
    def free(self) -> bool:
        """True for a service that needs no payment (``payment.required`` false)."""
        return self.rail == "not-required"


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
    # The other documented flows (reference §4.8): no payment, and x402 (the market settles the
    # buyer's signed EIP-3009 authorization at execute). Prices stay at or under 1 USDC, the default
    # spend cap of the x402 reference client.
    # Its own operation, so the paid hashing searches (and every task written for them) see the same
    # quotes as before; a buyer asks for the free one by name.
    ServiceSpec(
        "svc_hash_free", "Free SHA-256 (community)", "freehash", "FreeHash", 0, _d("0.50"), "not-required",
        "none", latency_ms=600, reputation=_d("0.60"), operation=OPERATION_FREE,
        notes=("Free: no payment intent, proof or signature; order, execute, confirm.",),
    ),
    ServiceSpec(
        "svc_hash_x402", "SHA-256 paid over x402", "x402hash", "X402Hash", 750_000, _d("0.83"), "x402", "evm",
        latency_ms=90, reputation=_d("0.86"),
    ),
    ServiceSpec(
        "svc_hash_x402_fast", "Fast SHA-256 paid over x402", "x402fast", "X402Fast", 950_000, _d("0.91"),
        "x402", "evm", latency_ms=35, reputation=_d("0.93"), region="eu-west",
        capabilities=("sha256", "hashing", "low-latency"),
    ),
    # A price feed whose result is numbers (fractions and integers), for acceptance schemas that say
    # ``type: number`` / ``integer`` (examples/price.yaml).
    ServiceSpec(
        "svc_price_feed", "Spot price feed", "tickerlab", "TickerLab", 250_000, _d("0.81"), "wallet", "evm",
        latency_ms=60, reputation=_d("0.90"), operation=OPERATION_PRICE, capabilities=("prices", "spot"),
        service_type=PRICE_SERVICE_TYPE, skill_key=PRICE_SKILL_KEY,
    ),
    ServiceSpec(
        "svc_price_feed_pro", "Spot price feed Pro", "tickerpro", "TickerPro", 400_000, _d("0.94"), "wallet",
        "evm", latency_ms=25, reputation=_d("0.97"), operation=OPERATION_PRICE,
        capabilities=("prices", "spot", "low-latency"), service_type=PRICE_SERVICE_TYPE,
        skill_key=PRICE_SKILL_KEY,
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
    #: The EIP-3009 test USDC that x402 payments are authorized in (None: no x402 services).
    x402_token_address: str | None = None

    def payee(self, spec: ServiceSpec) -> str | None:
        """The provider's receiving address on the service's chain (None for a free service)."""
        if spec.free:
            return None
        table = self.evm_payees if spec.chain == "evm" else self.solana_payees
        return table.get(spec.provider_key)

    def available(self, spec: ServiceSpec) -> bool:
        """True when the service's chain (and, for x402, its token) runs in this sandbox."""
        if spec.free:
            return True
        if spec.rail == "x402" and self.x402_token_address is None:
            return False
        if spec.chain == "evm":
            return self.evm_chain is not None and self.payee(spec) is not None
        return self.solana_chain is not None and self.payee(spec) is not None

    def token_of(self, spec: ServiceSpec) -> str | None:
        """The token contract a service is paid in (the EIP-3009 one for x402)."""
        return self.x402_token_address if spec.rail == "x402" else self.token_address

    def supported_rails(self, spec: ServiceSpec) -> list[str]:
        """The rail types a payment intent may name for this service."""
        return list(DIRECT_RAILS) if spec.rail == "wallet" else [spec.rail]

    def payment(self, spec: ServiceSpec) -> dict[str, Any]:
        """The ``MarketPaymentRailRecommendation`` for a service."""
        if spec.free:
            return {
                "defaultRail": "not-required",
                "supportedRails": ["not-required"],
                "required": False,
                "notes": ["free: no payment intent, proof or signature is needed"],
                "provider": spec.provider_key,
            }
        payee = self.payee(spec)
        how = {
            "onchain-escrow": " through the escrow contract",
            "x402": " with a signed x402 (EIP-3009) authorization the market settles at execute",
        }.get(spec.rail, " by direct transfer")
        rec: dict[str, Any] = {
            "defaultRail": spec.rail,
            "supportedRails": self.supported_rails(spec),
            "required": True,
            "notes": [f"pay {human(spec.price_raw)} USDC to the provider{how}"],
            "provider": spec.provider_key,
            "token": "USDC",
            "walletAddress": payee,
            "payeeAddress": payee,
        }
        if spec.chain == "evm":
            rec["chain"] = self.evm_chain
            rec["tokenAddress"] = self.token_of(spec)
            if spec.rail == "onchain-escrow":
                rec["escrowAddress"] = self.escrow_address
        else:
            rec["chain"] = self.solana_chain
            rec["tokenMint"] = self.mint
        return rec
