"""The typed parts of an order's facts: quotes, candidates, the decision, intent, outcome, errors.

Each part reads the JSON the runner journals (``from_json``) and writes exactly that JSON back
(``to_json``), so facts folded from events can stand in for the order row's context byte for byte.
Amounts are :class:`Money` where the journal holds base units, and exact ``Decimal`` where it holds
the text a person reads (a candidate's ``0.80``), never a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from buyer_agent._money import Money
from buyer_agent.workflow._eligibility import Limits

__all__ = [
    "Candidate",
    "Decision",
    "Dispute",
    "EffectKey",
    "ErrorFact",
    "Handoff",
    "IntentFacts",
    "IntentRail",
    "Outcome",
    "Pick",
    "QuoteFacts",
    "ShownPrice",
    "TxRef",
    "canonical",
    "limits_from_json",
    "limits_to_json",
]


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order, as the journal stores and hands back JSON."""
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _money(v: Any) -> Money | None:
    return Money.from_json(dict(v)) if v else None


def _money_json(m: Money | None) -> dict[str, Any] | None:
    return m.to_json() if m is not None else None


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def _dec_text(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


@dataclass(frozen=True, slots=True)
class QuoteFacts:
    """What the workflow keeps of one market quote (``quote_facts``); ``price`` None = no fixed price."""

    quote_id: str
    service_id: str
    provider_key: str
    skill_key: str
    price: Money | None
    score: Decimal
    execution_mode: str
    rail: str
    supported_rails: tuple[str, ...]
    chain: str | None
    token: str | None
    token_address: str | None
    token_mint: str | None
    payee: str | None
    expires_at: str
    """The market's own text (ISO-8601), kept as given."""
    latency_ms: int | None
    reputation: Decimal | None
    reasons: tuple[str, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> QuoteFacts:
        """From journaled quote facts."""
        latency = d.get("latency_ms")
        return cls(
            quote_id=str(d["quote_id"]),
            service_id=str(d.get("service_id")),
            provider_key=str(d.get("provider_key") or ""),
            skill_key=str(d.get("skill_key") or ""),
            price=_money(d.get("price")),
            score=Decimal(str(d.get("score") or "0")),
            execution_mode=str(d.get("execution_mode") or "native"),
            rail=str(d.get("rail") or ""),
            supported_rails=tuple(str(r) for r in d.get("supported_rails") or ()),
            chain=_opt_str(d.get("chain")),
            token=_opt_str(d.get("token")),
            token_address=_opt_str(d.get("token_address")),
            token_mint=_opt_str(d.get("token_mint")),
            payee=_opt_str(d.get("payee")),
            expires_at=str(d.get("expires_at")),
            latency_ms=int(latency) if latency is not None else None,
            reputation=_dec(d.get("reputation")),
            reasons=tuple(str(r) for r in d.get("reasons") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        return {
            "quote_id": self.quote_id,
            "service_id": self.service_id,
            "provider_key": self.provider_key,
            "skill_key": self.skill_key,
            "price": _money_json(self.price),
            "score": format(self.score, "f"),
            "execution_mode": self.execution_mode,
            "rail": self.rail,
            "supported_rails": list(self.supported_rails),
            "chain": self.chain,
            "token": self.token,
            "token_address": self.token_address,
            "token_mint": self.token_mint,
            "payee": self.payee,
            "expires_at": self.expires_at,
            "latency_ms": self.latency_ms,
            "reputation": _dec_text(self.reputation),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class ShownPrice:
    """A price as shown to people (``{"amount": "0.80", "currency"}``): the exact decimal text kept."""

    amount: Decimal
    currency: str

    @classmethod
    def from_json(cls, d: Any) -> ShownPrice | None:
        """From ``{"amount", "currency"}`` (None stays None)."""
        if not isinstance(d, Mapping) or d.get("amount") is None:
            return None
        return cls(Decimal(str(d["amount"])), str(d.get("currency") or ""))

    def to_json(self) -> dict[str, str]:
        """``{"amount": "0.80", "currency": "USDC"}``."""
        return {"amount": format(self.amount, "f"), "currency": self.currency}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One quote as the eligibility guard and the strategy judged it."""

    service_id: str
    quote_id: str
    price: ShownPrice | None
    score: Decimal
    eligible: bool
    reasons: tuple[str, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Candidate:
        """From a journaled candidate."""
        return cls(
            service_id=str(d.get("service_id")),
            quote_id=str(d.get("quote_id")),
            price=ShownPrice.from_json(d.get("price")),
            score=Decimal(str(d.get("score") or "0")),
            eligible=bool(d.get("eligible")),
            reasons=tuple(str(r) for r in d.get("reasons") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        return {
            "service_id": self.service_id,
            "quote_id": self.quote_id,
            "price": self.price.to_json() if self.price is not None else None,
            "score": format(self.score, "f"),
            "eligible": self.eligible,
            "reasons": list(self.reasons),
        }


def limits_to_json(limits: Limits) -> dict[str, Any]:
    """The journaled form of the eligibility limits (lists sorted)."""
    return {
        "order_budget": _money_json(limits.order_budget),
        "per_transaction_limit": _money_json(limits.per_transaction_limit),
        "daily_limit": _money_json(limits.daily_limit),
        "spent_today": _money_json(limits.spent_today),
        "allowed_service_ids": sorted(limits.allowed_service_ids),
        "denied_service_ids": sorted(limits.denied_service_ids),
        "allowed_skill_keys": sorted(limits.allowed_skill_keys),
        "denied_skill_keys": sorted(limits.denied_skill_keys),
    }


def limits_from_json(doc: Mapping[str, Any]) -> Limits | None:
    """The eligibility limits recorded with a decision; None when they name no order budget."""
    budget = _money(doc.get("order_budget"))
    if budget is None:
        return None
    spent = _money(doc.get("spent_today"))
    return Limits(
        order_budget=budget,
        per_transaction_limit=_money(doc.get("per_transaction_limit")),
        daily_limit=_money(doc.get("daily_limit")),
        spent_today=spent if spent is not None else Money(0, budget.decimals, budget.currency),
        allowed_service_ids=frozenset(doc.get("allowed_service_ids") or ()),
        denied_service_ids=frozenset(doc.get("denied_service_ids") or ()),
        allowed_skill_keys=frozenset(doc.get("allowed_skill_keys") or ()),
        denied_skill_keys=frozenset(doc.get("denied_skill_keys") or ()),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """The last recorded ``choose``: the quote, why, the ranking, every candidate, by which strategy, when."""

    quote_id: str | None
    reason: str | None
    ranking: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    quotes: tuple[QuoteFacts, ...]
    """The quotes the decision chose among."""
    limits: Limits | None
    """The limits the eligibility guard applied."""
    strategy: str | Mapping[str, Any] | None
    """The order's strategy spec as recorded (a name, or ``{name, params}``)."""
    decided_at: str | None
    """The decision time the eligibility guard used (the ``choose`` payload's ``now``)."""


@dataclass(frozen=True, slots=True)
class Pick:
    """The quote the order last picked, by its strategy (``choose``) or as a fallback, and why."""

    quote_id: str
    quote: QuoteFacts | None
    why: str
    rejected: str | None = None
    """For a fallback: the quote that was refused."""


@dataclass(frozen=True, slots=True)
class IntentRail:
    """The rail part of the market's payment intent."""

    type: str | None
    chain: str | None
    token: str | None
    token_address: str | None
    token_mint: str | None
    payer_address: str | None
    payee_address: str | None
    wallet_address: str | None
    escrow_address: str | None
    token_decimals: int | None
    raw_amount: str | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IntentRail:
        """From the journaled intent's ``rail``."""
        decimals = d.get("token_decimals")
        return cls(
            type=_opt_str(d.get("type")),
            chain=_opt_str(d.get("chain")),
            token=_opt_str(d.get("token")),
            token_address=_opt_str(d.get("token_address")),
            token_mint=_opt_str(d.get("token_mint")),
            payer_address=_opt_str(d.get("payer_address")),
            payee_address=_opt_str(d.get("payee_address")),
            wallet_address=_opt_str(d.get("wallet_address")),
            escrow_address=_opt_str(d.get("escrow_address")),
            token_decimals=int(decimals) if decimals is not None else None,
            raw_amount=_opt_str(d.get("raw_amount")),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        return {
            "type": self.type,
            "chain": self.chain,
            "token": self.token,
            "token_address": self.token_address,
            "token_mint": self.token_mint,
            "payer_address": self.payer_address,
            "payee_address": self.payee_address,
            "wallet_address": self.wallet_address,
            "escrow_address": self.escrow_address,
            "token_decimals": self.token_decimals,
            "raw_amount": self.raw_amount,
        }


@dataclass(frozen=True, slots=True)
class IntentFacts:
    """The market's payment intent (``intent_facts``): its id, status, amount (the market's decimal), rail."""

    payment_id: str | None
    status: str | None
    amount: Decimal | None
    currency: str | None
    rail: IntentRail

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IntentFacts:
        """From the journaled intent."""
        return cls(
            payment_id=_opt_str(d.get("payment_id")),
            status=_opt_str(d.get("status")),
            amount=_dec(d.get("amount")),
            currency=_opt_str(d.get("currency")),
            rail=IntentRail.from_json(d.get("rail") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        return {
            "payment_id": self.payment_id,
            "status": self.status,
            "amount": _dec_text(self.amount),
            "currency": self.currency,
            "rail": self.rail.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the service delivered: its status, result (the service's own JSON), error and id."""

    status: str | None
    result: Any
    error_message: str | None
    id: str | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Outcome:
        """From the journaled outcome."""
        return cls(
            _opt_str(d.get("status")),
            d.get("result"),
            _opt_str(d.get("error_message")),
            _opt_str(d.get("id")),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        return {
            "status": self.status,
            "result": self.result,
            "error_message": self.error_message,
            "id": self.id,
        }


@dataclass(frozen=True, slots=True)
class Handoff:
    """Where an external-handoff service continues (``202``): a label, a URL, notes."""

    label: str | None
    url: str | None
    notes: tuple[str, ...] | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Handoff:
        """From the journaled handoff."""
        notes = d.get("notes")
        return cls(
            _opt_str(d.get("label")),
            _opt_str(d.get("url")),
            None if notes is None else tuple(str(n) for n in notes),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        notes = None if self.notes is None else list(self.notes)
        return {"label": self.label, "url": self.url, "notes": notes}


@dataclass(frozen=True, slots=True)
class Dispute:
    """The order's dispute: why, the market's dispute id, the evidence sent, the event that recorded it."""

    reason: str | None
    id: str | None
    evidence: Mapping[str, Any] | None = None
    """The evidence bundle attached to the dispute, as sent to the market."""
    seq: int = 0
    hash: str = ""


@dataclass(frozen=True, slots=True)
class ErrorFact:
    """An error the order recorded: ``{code, message}``."""

    code: str | None
    message: str | None

    def to_json(self) -> dict[str, Any]:
        """``{"code", "message"}``."""
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class TxRef:
    """A transaction the order signed or proved, and what for (``transfer``, ``payment``, ``release``, …)."""

    tx_id: str
    purpose: str


@dataclass(frozen=True, slots=True)
class EffectKey:
    """The idempotency key of one side effect and when it was asked for (its intent's time).

    ``key`` is None once the effect's key was given up (a new search, a refused order); ``asked_at``
    stays, as the runner keeps it.
    """

    key: str | None
    asked_at: str
