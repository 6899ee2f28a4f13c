"""The typed facts of paying and delivering: the payment intent, outcome, handoff, dispute, errors, keys.

Each reads the JSON the runner journals (``from_json``) and writes exactly that JSON back
(``to_json``), so facts folded from events stand in for the order row's context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "Dispute",
    "EffectKey",
    "ErrorFact",
    "Handoff",
    "IntentFacts",
    "IntentRail",
    "Outcome",
    "TxRef",
    "canonical",
    "opt_str",
]


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order, as the journal stores and hands back JSON."""
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def opt_str(v: Any) -> str | None:
    """``str(v)``, or None for None."""
    return None if v is None else str(v)


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def _dec_text(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


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
            type=opt_str(d.get("type")),
            chain=opt_str(d.get("chain")),
            token=opt_str(d.get("token")),
            token_address=opt_str(d.get("token_address")),
            token_mint=opt_str(d.get("token_mint")),
            payer_address=opt_str(d.get("payer_address")),
            payee_address=opt_str(d.get("payee_address")),
            wallet_address=opt_str(d.get("wallet_address")),
            escrow_address=opt_str(d.get("escrow_address")),
            token_decimals=int(decimals) if decimals is not None else None,
            raw_amount=opt_str(d.get("raw_amount")),
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
    challenge: str | None = None
    """x402 only: the provider's ``PAYMENT-REQUIRED`` challenge, base64 JSON, as the market sent it."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IntentFacts:
        """From the journaled intent."""
        return cls(
            payment_id=opt_str(d.get("payment_id")),
            status=opt_str(d.get("status")),
            amount=_dec(d.get("amount")),
            currency=opt_str(d.get("currency")),
            rail=IntentRail.from_json(d.get("rail") or {}),
            challenge=opt_str(d.get("challenge")),
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form (``challenge`` only on an x402 intent)."""
        out = {
            "payment_id": self.payment_id,
            "status": self.status,
            "amount": _dec_text(self.amount),
            "currency": self.currency,
            "rail": self.rail.to_json(),
        }
        if self.challenge is not None:
            out["challenge"] = self.challenge
        return out


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
            opt_str(d.get("status")),
            d.get("result"),
            opt_str(d.get("error_message")),
            opt_str(d.get("id")),
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
            opt_str(d.get("label")),
            opt_str(d.get("url")),
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
