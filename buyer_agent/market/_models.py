"""What the market answers, as frozen values: exact amounts, secrets held as ``Secret``.

Field names follow the official SDK's models. Statuses and enum-like fields are plain strings so a
value the market adds later is passed through instead of failing the call; the execute response's
``status_code`` is the one discriminator the client checks. Unnamed keys land in ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from buyer_agent._redact import Secret

__all__ = [
    "AgentPairing",
    "AgentPairingChallenge",
    "AgentPairingVerification",
    "AuditEvent",
    "ConfirmMarketOrderResponse",
    "DelegationPolicy",
    "DisputeMarketOrderResponse",
    "ExecuteMarketOrderResponse",
    "ExecutionOutcome",
    "ExecutionRun",
    "ExternalHandoff",
    "HandoffExecution",
    "ItemResponse",
    "ListResponse",
    "Machine",
    "MarketOrder",
    "MarketOrderBudget",
    "MarketPayment",
    "MarketPaymentRailRecommendation",
    "MarketQuote",
    "MarketSearch",
    "MarketService",
    "NativeExecution",
    "NormalizedTask",
    "OrderDispute",
    "PaymentProof",
    "PaymentRailDetails",
    "QuotePricing",
]

T = TypeVar("T")

_AMOUNT: dict[str, Any] = {"amount": True}


def _extra() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ListResponse(Generic[T]):
    """A page of items; ``next_cursor`` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ItemResponse(Generic[T]):
    """One item."""

    item: T


@dataclass(frozen=True, slots=True)
class ExternalHandoff:
    """Where a provider takes over outside the market."""

    label: str
    url: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine registered with the market."""

    id: str
    display_name: str
    status: str
    owner_id: str
    machine_type: str
    runtime_profile: str
    created_at: str
    updated_at: str
    capabilities: tuple[str, ...] = ()
    labels: Mapping[str, Any] = field(default_factory=dict)
    policy_ids: tuple[str, ...] = ()
    skill_keys: tuple[str, ...] = ()
    identity_ref: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class DelegationPolicy:
    """What a paired agent may buy; limits in the policy's currency (human units, exact)."""

    allowed_skill_keys: tuple[str, ...] = ()
    denied_skill_keys: tuple[str, ...] = ()
    allowed_service_ids: tuple[str, ...] = ()
    denied_service_ids: tuple[str, ...] = ()
    per_transaction_limit: Decimal | None = field(default=None, metadata=_AMOUNT)
    daily_spend_limit: Decimal | None = field(default=None, metadata=_AMOUNT)
    currency: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class AgentPairingVerification:
    """How the agent's wallet proved itself."""

    method: str
    signer_address: str
    verified_at: str
    challenge_expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class AgentPairing:
    """A machine's agent pairing. ``pairing_token`` comes back once, from create or a session."""

    id: str
    machine_id: str
    agent_address: str
    agent_provider: str
    agent_role: str
    status: str
    delegation_policy: DelegationPolicy
    created_at: str
    updated_at: str
    has_auth_token: bool = False
    description: str | None = None
    token_last_four: str | None = field(default=None, repr=False)
    pairing_token: Secret | None = None
    agent_did: str | None = None
    verification: AgentPairingVerification | None = None
    session_id: str | None = None
    session_token_id: str | None = None
    session_issued_at: str | None = None
    session_expires_at: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class AgentPairingChallenge:
    """A server-issued message for the agent's wallet to sign (EIP-191)."""

    challenge_id: str
    agent_address: str
    message: str
    expires_at: str
    verification_method: str
    machine_id: str | None = None
    machine_identity_ref: str | None = None
    agent_did: str | None = None
    agent_provider: str | None = None
    agent_role: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class MarketPaymentRailRecommendation:
    """How a service or order wants to be paid."""

    default_rail: str
    supported_rails: tuple[str, ...] = ()
    required: bool = True
    notes: tuple[str, ...] = ()
    provider: str | None = None
    chain: str | None = None
    token: str | None = None
    token_address: str | None = None
    token_mint: str | None = None
    wallet_address: str | None = None
    external_url: str | None = None
    payer_address: str | None = None
    payee_address: str | None = None
    escrow_address: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class QuotePricing:
    """A quote's price: ``amount`` in human units of ``currency`` (exact), None when not fixed."""

    mode: str
    notes: tuple[str, ...] = ()
    amount: Decimal | None = field(default=None, metadata=_AMOUNT)
    currency: str | None = None
    rate: str | None = None


@dataclass(frozen=True, slots=True)
class MarketService:
    """A catalogue entry."""

    id: str
    skill_key: str
    provider_key: str
    service_type: str
    name: str
    execution_mode: str
    integration_status: str
    description: str = ""
    provider_id: str | None = None
    provider_label: str | None = None
    operations: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    region: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    updated_at: str | None = None
    handoff: ExternalHandoff | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class MarketQuote:
    """One priced offer from a search."""

    id: str
    service_id: str
    skill_key: str
    provider_key: str
    execution_mode: str
    integration_status: str
    operation: str
    score: Decimal
    pricing: QuotePricing
    payment: MarketPaymentRailRecommendation
    expires_at: str
    reasons: tuple[str, ...] = ()
    handoff: ExternalHandoff | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class NormalizedTask:
    """The market's reading of a search request."""

    service_type: str
    required_capabilities: tuple[str, ...] = ()
    allow_external_handoff: bool = False
    require_native_execution: bool = False
    operation: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class MarketSearch:
    """A search and its quotes."""

    id: str
    machine_id: str
    normalized_task: NormalizedTask
    status: str
    quotes: tuple[MarketQuote, ...]
    created_at: str
    request_payload: Mapping[str, Any] = field(
        default_factory=dict, metadata={"aliases": ("request_payload", "request")}
    )
    agent_pairing_id: str | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class MarketOrderBudget:
    """An order's budget (human units, exact)."""

    amount: Decimal | None = field(default=None, metadata=_AMOUNT)
    max: Decimal | None = field(default=None, metadata=_AMOUNT)
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class MarketOrder:
    """An order.

    ``execution`` is what the owner's view (``GET /market/orders/:id`` with the pairing token) shows
    of a run that happened: documented for oneM2M orders, and what an agent reads to learn the outcome
    of an execute whose answer was lost. None when the market shows none.
    """

    id: str
    machine_id: str
    agent_pairing_id: str
    service_id: str
    skill_key: str
    provider_key: str
    service_type: str
    operation: str
    execution_mode: str
    integration_status: str
    status: str
    payment: MarketPaymentRailRecommendation
    created_at: str
    updated_at: str
    input_payload: Mapping[str, Any] = field(
        default_factory=dict, metadata={"aliases": ("input", "input_payload")}
    )
    search_id: str | None = None
    quote_id: str | None = None
    budget: MarketOrderBudget | None = None
    handoff: ExternalHandoff | None = None
    error_message: str | None = None
    execution: NativeExecution | HandoffExecution | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class PaymentRailDetails:
    """The rail a payment uses, with the addresses money moves between (``type`` on the wire)."""

    rail_type: str = field(metadata={"aliases": ("type", "rail_type")})
    chain: str | None = None
    token: str | None = None
    token_address: str | None = None
    token_mint: str | None = None
    escrow_address: str | None = None
    external_url: str | None = None
    provider: str | None = None
    account_id: str | None = None
    wallet_address: str | None = None
    payer_address: str | None = None
    payee_address: str | None = None
    payment_intent_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class PaymentProof:
    """What the market recorded as proof of payment."""

    chain: str | None = None
    token: str | None = None
    transaction_hash: str | None = None
    transaction_signature: str | None = None
    payer_address: str | None = None
    verified_at: str | None = None
    verification_mode: str | None = None
    metadata: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class MarketPayment:
    """An order's payment; ``amount`` in human units of ``currency`` (exact)."""

    id: str
    order_id: str
    machine_id: str
    status: str
    rail: PaymentRailDetails
    created_at: str
    updated_at: str
    notes: tuple[str, ...] = ()
    amount: Decimal | None = field(default=None, metadata=_AMOUNT)
    currency: str | None = None
    proof: PaymentProof | None = None
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class ExecutionRun:
    """A run of a native execution."""

    id: str
    status: str
    execution_mode: str | None = None
    skill_key: str | None = None
    service_id: str | None = None
    outcome_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    """What a native execution produced (``result`` is the provider's body, verbatim)."""

    id: str
    status: str
    skill_key: str | None = None
    service_id: str | None = None
    execution_mode: str | None = None
    result: Any = None
    error_message: str | None = None
    external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class NativeExecution:
    """HTTP 200: the market ran the service."""

    status_code: Literal[200]
    run: ExecutionRun
    outcome: ExecutionOutcome


@dataclass(frozen=True, slots=True)
class HandoffExecution:
    """HTTP 202: the provider takes over outside the market."""

    status_code: Literal[202]
    handoff: ExternalHandoff


@dataclass(frozen=True, slots=True)
class ExecuteMarketOrderResponse:
    """An execute answer: narrow ``execution`` with ``isinstance`` (native run or handoff)."""

    order: MarketOrder
    execution: NativeExecution | HandoffExecution


@dataclass(frozen=True, slots=True)
class OrderDispute:
    """A dispute opened by the buyer."""

    id: str
    order_id: str
    machine_id: str
    status: str
    reason: str
    created_at: str
    updated_at: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfirmMarketOrderResponse:
    """A confirmed order and its payment (released)."""

    order: MarketOrder
    payment: MarketPayment | None = None


@dataclass(frozen=True, slots=True)
class DisputeMarketOrderResponse:
    """A disputed order, its payment (frozen) and the dispute."""

    order: MarketOrder
    dispute: OrderDispute
    payment: MarketPayment | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record."""

    id: str
    actor: str
    type: str
    resource_type: str
    resource_id: str
    created_at: str
    payload: Mapping[str, Any] = field(default_factory=dict)
