"""An order's typed facts (:class:`OrderFacts`): what the one fold of its events (``_fold``) makes.

Each field is None (``errors``: empty) until the journal records the fact. :meth:`OrderFacts.to_context`
writes the facts back as the order row's context, key for key as the runner keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buyer_agent.rails._base import EscrowProof, PaymentRequest, SignedTx
from buyer_agent.rails._x402_wire import Authorization
from buyer_agent.workflow._eligibility import Limits
from buyer_agent.workflow._fact_parts import (
    Dispute,
    EffectKey,
    ErrorFact,
    Handoff,
    IntentFacts,
    Outcome,
    TxRef,
    canonical,
)
from buyer_agent.workflow._fact_quotes import Candidate, Decision, Pick, QuoteFacts, limits_to_json
from buyer_agent.workflow._pairing import DelegationPolicyLimits
from buyer_agent.workflow._payment_facts import request_json
from buyer_agent.workflow._spec import OrderSpec

__all__ = ["EFFECT_KEYS", "OrderFacts"]

#: The context name of each side effect's idempotency key (``<name>`` and ``<name>_at``).
EFFECT_KEYS: Mapping[str, str] = {
    "search_market": "search_key",
    "create_market_order": "order_key",
    "create_payment_intent": "intent_key",
    "submit_payment_proof": "proof_key",
    "lock_escrow_payment": "escrow_key",
    "execute_market_order": "execute_key",
    "confirm_market_order": "confirm_key",
    "release_payment": "release_key",
    "dispute_market_order": "dispute_key",
}


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """The typed state of one order, folded from its events.

    None (or an empty tuple for ``errors``) means the journal has not recorded the fact yet.
    """

    order_id: str
    state: str
    seq: int
    created_at: str | None
    updated_at: str | None
    spec: OrderSpec | None
    machine_id: str | None
    """The spec's machine id; None when the order was submitted for the pairing's machine."""
    pairing_id: str | None
    policy: DelegationPolicyLimits | None
    search_id: str | None
    quotes: tuple[QuoteFacts, ...] | None
    candidates: tuple[Candidate, ...] | None
    limits: Limits | None
    decision: Decision | None
    ranking: tuple[str, ...] | None
    """The ranking the order falls back along (cleared by a new search)."""
    choice: QuoteFacts | None
    """The quote the order orders now (cleared by a new search)."""
    pick: Pick | None
    """The quote last picked and why (kept across searches, for the timeline)."""
    tried: tuple[str, ...] | None
    approved: bool
    market_order_id: str | None
    market_order_status: str | None
    market_order_payment: Mapping[str, Any] | None
    """What the market order said of its payment (``required``, ``default_rail``, ``amount``); kept for
    the no-payment flow only."""
    keys: Mapping[str, EffectKey]
    """Effect name (``create_market_order``, …) -> its idempotency key and when it was asked."""
    intent: IntentFacts | None
    request: PaymentRequest | None
    txs: tuple[SignedTx, ...] | None
    release_txs: tuple[SignedTx, ...] | None
    release_tx: str | None
    paid_tx: str | None
    proof: Mapping[str, Any] | None
    """The payment-proof body the rail made for the market (the market's JSON)."""
    escrow_proof: EscrowProof | None
    transactions: tuple[TxRef, ...]
    """Every transaction id the order journaled (signed for payment or release, proved, locked), first
    seen first; a re-signed replacement of a dropped one is in ``txs``/``release_txs`` only."""
    payment_status: str | None
    authorization: Authorization | None
    """x402: the signed authorization the order pays with (the latest, after a replacement)."""
    settlement: Mapping[str, Any] | None
    """x402: the settlement found on chain before confirming (``{tx, block}``)."""
    outcome: Outcome | None
    handoff: Handoff | None
    accepted: bool
    acceptance_failure: str | None
    market_confirmed: bool
    dispute: Dispute | None
    error: ErrorFact | None
    """The error the order stands on (cleared when a later step succeeds)."""
    errors: tuple[ErrorFact, ...]
    """Every error the order recorded (``fail``, ``note:error``), oldest first."""
    quote_window_start: str | None
    payment_started_at: str | None
    paid_at: str | None
    release_started_at: str | None
    disputed_at: str | None

    def key(self, effect: str) -> str | None:
        """The live idempotency key of ``effect`` (e.g. ``create_market_order``), or None."""
        k = self.keys.get(effect)
        return k.key if k is not None else None

    @property
    def decision_reason(self) -> str | None:
        """Why the strategy chose the quote (the last ``choose``)."""
        return self.decision.reason if self.decision is not None else None

    def to_context(self) -> dict[str, Any]:
        """The order row's context as the runner keeps it (keys whose value is None are absent)."""
        ctx: dict[str, Any] = {}

        def put(name: str, value: Any) -> None:
            if value is not None:
                ctx[name] = value

        put("machine_id", self.machine_id)
        put("pairing_id", self.pairing_id)
        put("policy", self.policy.to_json() if self.policy is not None else None)
        put("search_id", self.search_id)
        put("quotes", None if self.quotes is None else [q.to_json() for q in self.quotes])
        put("quote_window_start", self.quote_window_start)
        put("tried", None if self.tried is None else list(self.tried))
        put("choice", self.choice.to_json() if self.choice is not None else None)
        put("ranking", None if self.ranking is None else list(self.ranking))
        put("candidates", None if self.candidates is None else [c.to_json() for c in self.candidates])
        put("decision_reason", self.decision_reason)
        put("limits", limits_to_json(self.limits) if self.limits is not None else None)
        put("approved", True if self.approved else None)
        for effect, k in self.keys.items():
            name = EFFECT_KEYS[effect]
            put(name, k.key)
            put(f"{name}_at", k.asked_at)
        put("market_order_id", self.market_order_id)
        put("market_order_status", self.market_order_status)
        put("intent", self.intent.to_json() if self.intent is not None else None)
        put("request", request_json(self.request) if self.request is not None else None)
        put("txs", None if self.txs is None else [t.to_json() for t in self.txs])
        put("payment_started_at", self.payment_started_at)
        put("paid_tx", self.paid_tx)
        if self.escrow_proof is not None:
            p = self.escrow_proof
            put(
                "proof",
                {
                    "transaction_hash": p.transaction_hash,
                    "chain": p.chain,
                    "escrow_address": p.escrow_address,
                },
            )
        else:
            put("proof", None if self.proof is None else dict(self.proof))
        put("paid_at", self.paid_at)
        put("payment_status", self.payment_status)
        put("authorization", self.authorization.to_json() if self.authorization is not None else None)
        put("settlement", dict(self.settlement) if self.settlement is not None else None)
        put("outcome", self.outcome.to_json() if self.outcome is not None else None)
        put("handoff", self.handoff.to_json() if self.handoff is not None else None)
        put("accepted", True if self.accepted else None)
        put("acceptance_failure", self.acceptance_failure)
        put("market_confirmed", True if self.market_confirmed else None)
        put("release_txs", None if self.release_txs is None else [t.to_json() for t in self.release_txs])
        put("release_started_at", self.release_started_at)
        put("release_tx", self.release_tx)
        if self.dispute is not None:
            ctx["dispute"] = {"reason": self.dispute.reason, "id": self.dispute.id}
        put("disputed_at", self.disputed_at)
        put("error", self.error.to_json() if self.error is not None else None)
        return {k: canonical(ctx[k]) for k in sorted(ctx)}
