"""The market checks: reachable, the platform key, the pairing, the policy's limits, the clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from buyer_agent._money import _plain
from buyer_agent.doctor._report import Check, Status
from buyer_agent.doctor._setup import Setup
from buyer_agent.workflow._pairing import _jwt_expiry

__all__ = ["clock_checks", "market_checks", "pairing_checks", "policy_checks"]

_CLOCK_WARN_S = 5.0


# --- market ------------------------------------------------------------------------------------------


def _api(s: Setup, path: str) -> str:
    return f"{str(s.market).rstrip('/')}/api/v1{path}"


def market_checks(s: Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    sent = time.time()
    try:
        resp = client.get(_api(s, "/health"))
    except httpx.HTTPError as exc:
        return [
            Check(
                "market",
                Status.FAIL,
                f"cannot reach the market at {s.market}: {type(exc).__name__}",
                "check market: in the task / PEAQOS_ORCHESTRATION_URL, or the network",
            )
        ]
    received = time.time()
    date = resp.headers.get("date")
    if date:
        try:
            theirs = parsedate_to_datetime(date).timestamp()
            s.date_skew_s = (sent + received) / 2 - theirs
        except (TypeError, ValueError):
            s.date_skew_s = None
    if resp.status_code >= 500:
        return [
            Check(
                "market",
                Status.FAIL,
                f"the market at {s.market} answers HTTP {resp.status_code}",
                "try again later, or check the URL",
            )
        ]
    out.append(Check("market", Status.PASS, f"{s.market} reachable (HTTP {resp.status_code})"))
    if s.api_key is None:
        if s.pairing_token is None:
            out.append(
                Check(
                    "auth",
                    Status.FAIL,
                    "no platform key and no pairing token",
                    "set PEAQOS_API_KEY (or PEAQOS_AGENT_PAIRING_ID and PEAQOS_AGENT_PAIRING_TOKEN)",
                )
            )
        return out
    if not s.machine_id:
        out.append(
            Check("auth", Status.FAIL, "no machine id", "set PEAQOS_MACHINE_ID (or machine_id: in the task)")
        )
        return out
    try:
        resp = client.get(_api(s, f"/machines/{s.machine_id}"), headers={"x-api-key": s.api_key.reveal()})
    except httpx.HTTPError as exc:
        out.append(
            Check("auth", Status.FAIL, f"the market stopped answering: {type(exc).__name__}", "try again")
        )
        return out
    if resp.status_code in (401, 403):
        out.append(
            Check(
                "auth",
                Status.FAIL,
                f"the platform key was refused (HTTP {resp.status_code})",
                "check PEAQOS_API_KEY",
            )
        )
    elif resp.status_code == 404:
        out.append(
            Check(
                "auth",
                Status.FAIL,
                f"machine {s.machine_id} is unknown to the market",
                "check PEAQOS_MACHINE_ID",
            )
        )
    elif resp.status_code >= 400:
        out.append(
            Check(
                "auth",
                Status.FAIL,
                f"reading machine {s.machine_id} failed: HTTP {resp.status_code}",
                "check the key and machine id",
            )
        )
    else:
        out.append(Check("auth", Status.PASS, f"platform key accepted for machine {s.machine_id}"))
    return out


def _pairings(s: Setup, client: httpx.Client) -> list[dict[str, Any]] | None:
    if s.api_key is None or not s.machine_id:
        return None
    try:
        resp = client.get(
            _api(s, f"/machines/{s.machine_id}/agent-pairings"),
            headers={"x-api-key": s.api_key.reveal()},
            params={"limit": 100},
        )
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    items = resp.json().get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else None


def pairing_checks(s: Setup, client: httpx.Client) -> list[Check]:
    pairings = _pairings(s, client)
    if s.pairing_id and s.pairing_token is not None:
        expiry = _jwt_expiry(s.pairing_token)
        if expiry is not None and expiry <= datetime.now(UTC):
            return [
                Check(
                    "pairing",
                    Status.FAIL,
                    f"the pairing token of {s.pairing_id} expired at {expiry:%Y-%m-%d %H:%M} UTC",
                    "ask the operator for a fresh session token",
                )
            ]
        if pairings is None:
            return [
                Check(
                    "pairing",
                    Status.WARN,
                    f"pairing {s.pairing_id}: its status is not readable without the platform key",
                    "set PEAQOS_API_KEY too, to have the pairing checked",
                )
            ]
        found = next((p for p in pairings if p.get("id") == s.pairing_id), None)
        if found is None:
            return [
                Check(
                    "pairing",
                    Status.FAIL,
                    f"pairing {s.pairing_id} is unknown on machine {s.machine_id}",
                    "check PEAQOS_AGENT_PAIRING_ID",
                )
            ]
        if found.get("status") != "active":
            return [
                Check(
                    "pairing",
                    Status.FAIL,
                    f"pairing {s.pairing_id} is {found.get('status')}",
                    "ask the operator for a new pairing, or unset PEAQOS_AGENT_PAIRING_ID "
                    "to pair with the platform key",
                )
            ]
        s.pairing_policy = found.get("delegationPolicy") or None
        return [Check("pairing", Status.PASS, f"pairing {s.pairing_id} active")]
    if pairings is None:
        return []
    mine = [
        p
        for p in pairings
        if s.evm_address and str(p.get("agentAddress", "")).lower() == s.evm_address.lower()
    ]
    active = [p for p in mine if p.get("status") == "active"]
    if active:
        s.pairing_policy = active[-1].get("delegationPolicy") or None
        return [Check("pairing", Status.PASS, f"pairing {active[-1].get('id')} of {s.evm_address} active")]
    if mine:
        statuses = ", ".join(sorted({str(p.get("status")) for p in mine}))
        return [
            Check(
                "pairing",
                Status.WARN,
                f"the pairings of {s.evm_address} are {statuses}",
                "nothing to do: a run pairs anew with the platform key (and the task's policy)",
            )
        ]
    return [
        Check("pairing", Status.PASS, f"no pairing of {s.evm_address} yet: a run pairs with the platform key")
    ]


# --- policy ------------------------------------------------------------------------------------------


def policy_checks(s: Setup) -> list[Check]:
    budget = s.budget
    if budget is None:
        return []
    if s.pairing_policy is not None:
        p = s.pairing_policy
        limits = {"per-transaction": p.get("perTransactionLimit"), "daily": p.get("dailySpendLimit")}
        currency, source = p.get("currency"), "the active pairing's policy"
        who = "ask the operator to raise the pairing's"
    elif s.task is not None and s.task.policy:
        p = s.task.policy
        limits = {"per-transaction": p.get("per_transaction_limit"), "daily": p.get("daily_spend_limit")}
        currency, source = p.get("currency"), "the task's policy (requested at pairing)"
        who = "raise the task's policy."
    else:
        return [Check("policy", Status.PASS, "no delegation policy limits to compare with the budget")]
    out: list[Check] = []
    budget_value = budget.to_decimal()
    if currency and str(currency).upper() not in (budget.currency.upper(), "USD"):
        return [
            Check(
                "policy",
                Status.WARN,
                f"{source} is in {currency}, the budget in {budget.currency}",
                "state both in one currency",
            )
        ]
    for label, value in limits.items():
        if value is None:
            continue
        limit = Decimal(str(value))
        shown = _plain(limit, min_places=2)
        key = "per_transaction_limit" if label == "per-transaction" else "daily_spend_limit"
        if limit < budget_value:
            out.append(
                Check(
                    "policy",
                    Status.FAIL,
                    f"{source}: the {label} limit {shown} is below the budget {budget}",
                    f"{who} {key}, or lower the budget",
                )
            )
        else:
            out.append(
                Check("policy", Status.PASS, f"{source}: {label} limit {shown} covers the budget {budget}")
            )
    return out or [Check("policy", Status.PASS, f"{source} sets no spend limits")]


# --- clock -------------------------------------------------------------------------------------------


def clock_checks(s: Setup) -> list[Check]:
    if s.date_skew_s is None:
        return [
            Check(
                "clock",
                Status.WARN,
                "the market sent no Date header: the clock is not compared",
                "make sure NTP runs",
            )
        ]
    deadline = s.task.spec.deadlines.quote if s.task is not None else 60.0
    skew = s.date_skew_s
    side = "ahead of" if skew > 0 else "behind"
    text = f"this clock is {abs(skew):.1f} s {side} the market's (quote deadline {deadline:g} s)"
    if abs(skew) > deadline:
        return [
            Check(
                "clock",
                Status.FAIL,
                text,
                "set the clock (enable NTP): quotes would look expired or fresh when they are not",
            )
        ]
    if abs(skew) > _CLOCK_WARN_S:
        return [Check("clock", Status.WARN, text, "enable NTP")]
    return [Check("clock", Status.PASS, text)]
