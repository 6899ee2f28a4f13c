"""The typed facts of quoting: market quotes, the candidates as judged, the decision, the pick.

Each reads the JSON the runner journals (``from_json``) and writes exactly that JSON back
(``to_json``). Amounts are :class:`Money` where the journal holds base units, and an exact
``Decimal`` where it holds the text a person reads (a candidate's ``0.80``), never a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from buyer_agent._money import Money
from buyer_agent.workflow._eligibility import Limits
from buyer_agent.workflow._fact_parts import opt_str

__all__ = [
    "NOT_REQUIRED",
    "Candidate",
    "Decision",
    "Pick",
    "QuoteFacts",
    "ShownPrice",
    "limits_from_json",
    "limits_to_json",
]


#: The rail type of a quote that needs no payment (reference §4.1; statuses spell it ``not_required``).
NOT_REQUIRED = "not-required"


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
    payment_required: bool = True
    """False when the quote's ``payment.required`` is false (written only then)."""

    @property
    def free(self) -> bool:
        """The no-payment flow: ``defaultRail`` ``not-required`` and ``required`` false (reference §4.8)."""
        return self.rail == NOT_REQUIRED and not self.payment_required

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
            chain=opt_str(d.get("chain")),
            token=opt_str(d.get("token")),
            token_address=opt_str(d.get("token_address")),
            token_mint=opt_str(d.get("token_mint")),
            payee=opt_str(d.get("payee")),
            expires_at=str(d.get("expires_at")),
            latency_ms=int(latency) if latency is not None else None,
            reputation=_dec(d.get("reputation")),
            reasons=tuple(str(r) for r in d.get("reasons") or ()),
            payment_required=d.get("payment_required") is not False,
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        out: dict[str, Any] = {
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
        if not self.payment_required:
            out["payment_required"] = False
        return out


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
