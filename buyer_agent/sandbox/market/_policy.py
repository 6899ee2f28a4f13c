"""Delegation policies: the demo default, parsing, and the checks that fire on order create."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._wire import opt_number, opt_str, opt_str_list, raw_units

__all__ = ["DEFAULT_POLICY", "check_order", "parse_policy"]

#: Applied when a pairing is created without a policy.
DEFAULT_POLICY: dict[str, Any] = {
    "allowedSkillKeys": [],
    "deniedSkillKeys": [],
    "allowedServiceIds": [],
    # One cheap, tempting service per example's rail (catalogue): strategies must never get it.
    "deniedServiceIds": [
        "svc_hash_denied",
        "svc_hash_escrow_denied",
        "svc_hash_sol_denied",
        "svc_hash_faulty_denied",
    ],
    "perTransactionLimit": Decimal(5),
    "dailySpendLimit": Decimal(20),
    "currency": "USDC",
}
# USD limits are read as USDC: the sandbox has no FX and USDC is pegged to USD.
_SAME_CURRENCY = {"USD", "USDC"}


def parse_policy(body: dict[str, Any] | None, where: str = "delegationPolicy.") -> dict[str, Any]:
    """A validated wire ``DelegationPolicy`` (missing lists become ``[]``)."""
    if body is None:
        return dict(DEFAULT_POLICY)
    policy: dict[str, Any] = {}
    for key in ("allowedSkillKeys", "deniedSkillKeys", "allowedServiceIds", "deniedServiceIds"):
        policy[key] = opt_str_list(body, key, where) or []
    for key in ("perTransactionLimit", "dailySpendLimit"):
        value = opt_number(body, key, where)
        if value is not None:
            raw_units(value, where + key)
        policy[key] = value
    currency = opt_str(body, "currency", where)
    if currency is not None and currency.upper() not in _SAME_CURRENCY:
        raise invalid(where + "currency", "the sandbox settles in USDC; use USDC or USD")
    policy["currency"] = currency
    return policy


def _limit(policy: dict[str, Any], key: str) -> int | None:
    value = policy.get(key)
    return None if value is None else raw_units(value, key)


def check_order(
    policy: dict[str, Any], *, service_id: str, skill_key: str, price_raw: int, spent_today_raw: int
) -> None:
    """Raise when the policy forbids this order.

    Denied lists win over allowed lists; an empty allowed list allows everything. The price is the
    quote's price; the daily total counts the pairing's orders created since 00:00 UTC.

    Raises:
        ApiError: ``AGENT_POLICY_DENIED`` (403), ``AGENT_SPEND_LIMIT_EXCEEDED`` (403),
            ``AGENT_DAILY_LIMIT_EXCEEDED`` (403).
    """

    def denied(items: Iterable[str], value: str) -> bool:
        return value in set(items)

    if denied(policy.get("deniedServiceIds") or [], service_id):
        raise ApiError(403, "AGENT_POLICY_DENIED", f"service {service_id} is denied by the delegation policy")
    if denied(policy.get("deniedSkillKeys") or [], skill_key):
        raise ApiError(403, "AGENT_POLICY_DENIED", f"skill {skill_key} is denied by the delegation policy")
    allowed_services = policy.get("allowedServiceIds") or []
    if allowed_services and service_id not in allowed_services:
        raise ApiError(403, "AGENT_POLICY_DENIED", f"service {service_id} is not in allowedServiceIds")
    allowed_skills = policy.get("allowedSkillKeys") or []
    if allowed_skills and skill_key not in allowed_skills:
        raise ApiError(403, "AGENT_POLICY_DENIED", f"skill {skill_key} is not in allowedSkillKeys")
    per_tx = _limit(policy, "perTransactionLimit")
    if per_tx is not None and price_raw > per_tx:
        raise ApiError(
            403,
            "AGENT_SPEND_LIMIT_EXCEEDED",
            "the quote's price exceeds the pairing's perTransactionLimit",
            {"limitRaw": str(per_tx), "priceRaw": str(price_raw)},
        )
    daily = _limit(policy, "dailySpendLimit")
    if daily is not None and spent_today_raw + price_raw > daily:
        raise ApiError(
            403,
            "AGENT_DAILY_LIMIT_EXCEEDED",
            "the pairing's dailySpendLimit would be exceeded; it resets at 00:00 UTC",
            {"limitRaw": str(daily), "spentTodayRaw": str(spent_today_raw), "priceRaw": str(price_raw)},
        )
