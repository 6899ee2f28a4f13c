"""Payment facts: the intent check before money moves, and journal forms of requests and limits."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from buyer_agent._errors import PaymentMismatchError
from buyer_agent._money import Money
from buyer_agent.market import MarketPayment
from buyer_agent.rails._base import PaymentRequest
from buyer_agent.rails._x402_wire import challenge_text
from buyer_agent.workflow._pairing import DelegationPolicyLimits
from buyer_agent.workflow._quotes import meta_value, money_text

__all__ = [
    "check_intent",
    "intent_facts",
    "intent_rail_type",
    "limits_json",
    "policy_from_json",
    "request_from_json",
    "request_json",
]


def policy_from_json(data: Mapping[str, Any]) -> DelegationPolicyLimits:
    def money(v: Any) -> Money | None:
        return Money.from_json(dict(v)) if v else None

    return DelegationPolicyLimits(
        per_transaction_limit=money(data.get("per_transaction_limit")),
        daily_spend_limit=money(data.get("daily_spend_limit")),
        allowed_service_ids=frozenset(data.get("allowed_service_ids") or ()),
        denied_service_ids=frozenset(data.get("denied_service_ids") or ()),
        allowed_skill_keys=frozenset(data.get("allowed_skill_keys") or ()),
        denied_skill_keys=frozenset(data.get("denied_skill_keys") or ()),
    )


def limits_json(limits: Any) -> dict[str, Any]:
    def m(v: Money | None) -> Any:
        return v.to_json() if v is not None else None

    return {
        "order_budget": m(limits.order_budget),
        "per_transaction_limit": m(limits.per_transaction_limit),
        "daily_limit": m(limits.daily_limit),
        "spent_today": m(limits.spent_today),
        "allowed_service_ids": sorted(limits.allowed_service_ids),
        "denied_service_ids": sorted(limits.denied_service_ids),
        "allowed_skill_keys": sorted(limits.allowed_skill_keys),
        "denied_skill_keys": sorted(limits.denied_skill_keys),
    }


def intent_rail_type(rail_type: str, supported_rails: Any) -> str:
    """The rail type to ask the payment intent for, as the official client picks it.

    The quote's default rail, except that ``wallet`` becomes ``wdk-usdt-transfer`` when the quote's
    ``supportedRails`` lists it (the orders reference: the rail a proven wallet payment upgrades to).
    """
    if rail_type == "wallet" and "wdk-usdt-transfer" in (supported_rails or ()):
        return "wdk-usdt-transfer"
    return rail_type


def intent_facts(payment: MarketPayment) -> dict[str, Any]:
    """What the workflow keeps of the market's payment intent (the client's typed answer).

    The rail's free-form ``metadata`` is read as the market wrote it (snake_case or camelCase).
    """
    rail = payment.rail
    meta: Mapping[str, Any] = rail.metadata or {}
    amount = payment.amount
    raw = meta_value(meta, "raw_amount", "rawAmount")
    out: dict[str, Any] = {
        "payment_id": payment.id,
        "status": payment.status,
        "amount": format(Decimal(str(amount)), "f") if amount is not None else None,
        "currency": payment.currency,
        "rail": {
            "type": rail.rail_type,
            "chain": rail.chain,
            "token": rail.token,
            "token_address": rail.token_address,
            "token_mint": rail.token_mint,
            "payer_address": rail.payer_address,
            "payee_address": rail.payee_address,
            "wallet_address": rail.wallet_address,
            "escrow_address": rail.escrow_address,
            "token_decimals": meta_value(meta, "token_decimals", "tokenDecimals"),
            "raw_amount": str(raw) if raw is not None else None,
        },
    }
    challenge = challenge_text(meta)
    if challenge is not None:
        out["challenge"] = challenge
    return out


def _same_address(a: Any, b: Any) -> bool:
    x, y = str(a), str(b)
    return x.lower() == y.lower() if x.startswith("0x") else x == y


def check_intent(
    intent: Mapping[str, Any], choice: Mapping[str, Any], price: Money
) -> PaymentMismatchError | None:
    """Compare the market's payment intent with the quote before any money moves."""
    rail = intent.get("rail") or {}
    if intent.get("amount") is None:
        return PaymentMismatchError("amount", money_text(price), None)
    decimals = int(rail.get("token_decimals") or price.decimals)
    try:
        amount = Money.of(
            Decimal(str(intent["amount"])), str(intent.get("currency") or price.currency), decimals
        )
    except ValueError:
        return PaymentMismatchError("amount", money_text(price), intent["amount"])
    if (amount.currency, amount.decimals, amount.amount) != (price.currency, price.decimals, price.amount):
        return PaymentMismatchError("amount", str(price), str(amount))
    raw = rail.get("raw_amount")
    if raw is not None and int(raw) != price.amount:
        return PaymentMismatchError("raw_amount", price.amount, raw)
    payee = rail.get("payee_address") or rail.get("wallet_address")
    if choice.get("payee") and not (payee and _same_address(payee, choice["payee"])):
        return PaymentMismatchError("payee", choice["payee"], payee)
    for key in ("token_address", "token_mint"):
        if choice.get(key) and rail.get(key) and not _same_address(rail[key], choice[key]):
            return PaymentMismatchError(key, choice[key], rail[key])
    if not (
        rail.get("token_address")
        or rail.get("token_mint")
        or choice.get("token_address")
        or choice.get("token_mint")
    ):
        return PaymentMismatchError("token", "a token address or mint", None)
    if rail.get("chain") and choice.get("chain") and rail["chain"] != choice["chain"]:
        return PaymentMismatchError("chain", choice["chain"], rail["chain"])
    return None


def request_json(req: PaymentRequest) -> dict[str, Any]:
    return {
        "order_id": req.order_id,
        "rail_type": req.rail_type,
        "chain": req.chain,
        "token": req.token,
        "payer": req.payer,
        "payee": req.payee,
        "amount": req.amount.to_json(),
        "escrow_address": req.escrow_address,
        "fee_cap_wei": str(req.fee_cap_wei) if req.fee_cap_wei is not None else None,
    }


def request_from_json(data: Mapping[str, Any]) -> PaymentRequest:
    return PaymentRequest(
        order_id=str(data["order_id"]),
        rail_type=str(data["rail_type"]),
        chain=str(data["chain"]),
        token=str(data["token"]),
        payer=str(data["payer"]),
        payee=str(data["payee"]),
        amount=Money.from_json(dict(data["amount"])),
        escrow_address=data.get("escrow_address"),
        fee_cap_wei=int(data["fee_cap_wei"]) if data.get("fee_cap_wei") is not None else None,
    )
