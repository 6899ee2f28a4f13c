"""The runner's pure parts: spec round trip, acceptance, quote facts, pairing in token mode, crash hook."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import types
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from buyer_agent import Money, OrchestrationConfigError, Secret
from buyer_agent.journal import Journal
from buyer_agent.workflow import Acceptance, Deadlines, OrderSpec
from buyer_agent.workflow._acceptance import check_acceptance
from buyer_agent.workflow._crashpoint import Crash, crash_after
from buyer_agent.workflow._evidence import dispute_evidence
from buyer_agent.workflow._pairing import DelegationPolicyLimits, PairingSession
from buyer_agent.workflow._quotes import money_text, quote_facts


def test_spec_round_trips_through_json() -> None:
    spec = OrderSpec(
        service_type="compute.marketplace",
        operation="sha256",
        input={"data": "hello"},
        capabilities=("sha256",),
        budget=Money.parse("2.50 USDC"),
        strategy={"name": "weighted", "params": {"price": "1"}},
        rail="wallet",
        chain="evm",
        acceptance=Acceptance(json_schema={"type": "object"}),
        approval_threshold=Money.parse("2 USDC"),
        deadlines=Deadlines(quote=30, execution=0.5),
        fee_cap_wei=10**10,
    )
    text = json.dumps(spec.to_json())
    assert OrderSpec.from_json(json.loads(text)) == spec
    with pytest.raises(ValueError, match="above zero"):
        OrderSpec(service_type="x", budget=Money.zero("USDC"))


def test_acceptance_outcome_schema_and_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = {"status": "completed", "result": {"sha256": "ab" * 32}}
    assert check_acceptance(Acceptance(), done) is None
    assert "is not 'completed'" in (check_acceptance(Acceptance(), {"status": "failed"}) or "")
    schema = {
        "type": "object",
        "required": ["sha256"],
        "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
    }
    assert check_acceptance(Acceptance(json_schema=schema), done) is None
    bad = {"status": "completed", "result": {"sha256": "not-a-hash"}}
    reason = check_acceptance(Acceptance(json_schema=schema), bad)
    assert reason is not None and "sha256" in reason
    module = types.ModuleType("accept_mod")
    module.ok = lambda result, outcome: result.get("sha256") == "ab" * 32  # type: ignore[attr-defined]
    module.why = lambda result, outcome: "too short"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "accept_mod", module)
    assert check_acceptance(Acceptance(callable_path="accept_mod:ok"), done) is None
    assert check_acceptance(Acceptance(callable_path="accept_mod:ok"), bad) == "refused by accept_mod:ok"
    assert check_acceptance(Acceptance(callable_path="accept_mod:why"), done) == "too short"
    assert "cannot be loaded" in (check_acceptance(Acceptance(callable_path="accept_mod:nope"), done) or "")


def test_quote_facts_are_exact_and_camel_or_snake() -> None:
    quote = {
        "id": "q1",
        "serviceId": "svc_a",
        "providerKey": "p",
        "skillKey": "s",
        "score": Decimal("0.92"),
        "executionMode": "native",
        "pricing": {"mode": "fixed", "amount": Decimal("1.2"), "currency": "USDC"},
        "payment": {
            "defaultRail": "wallet",
            "chain": "eip155:31337",
            "tokenAddress": "0xT",
            "walletAddress": "0xPayee",
        },
        "expiresAt": "2026-01-01T00:05:00Z",
        "metadata": {"latencyMs": 40},
    }
    facts = quote_facts(quote)
    assert facts["price"] == Money.parse("1.20 USDC").to_json()
    assert facts["payee"] == "0xPayee" and facts["rail"] == "wallet" and facts["latency_ms"] == 40
    assert facts["score"] == "0.92"
    assert money_text(Money.parse("0.8 USDC")) == "0.80"
    json.dumps(facts)  # JSON-able as is


def _jwt(exp: datetime) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'HS256'})}.{b64({'exp': int(exp.timestamp())})}.sig"


def test_token_mode_fails_clearly_once_the_token_expires() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    token = _jwt(now[0] + timedelta(minutes=10))
    session = PairingSession.with_token(
        machine_id="m", pairing_id="pair_1", token=Secret(token), clock=lambda: now[0]
    )
    assert asyncio.run(session.token()).reveal() == token
    assert session.policy() is None
    now[0] += timedelta(minutes=11)
    with pytest.raises(OrchestrationConfigError, match="PEAQOS_AGENT_PAIRING_TOKEN") as info:
        asyncio.run(session.token())
    assert token not in str(info.value) and token not in repr(session)
    with pytest.raises(OrchestrationConfigError, match="rejected"):
        asyncio.run(session.refresh("AGENT_AUTH_EXPIRED"))


def test_delegation_policy_limits_are_money() -> None:
    limits = DelegationPolicyLimits.from_policy(
        {
            "perTransactionLimit": Decimal("5"),
            "dailySpendLimit": "20",
            "currency": "USDC",
            "deniedServiceIds": ["x"],
        }
    )
    assert limits.per_transaction_limit == Money.parse("5 USDC")
    assert limits.daily_spend_limit == Money.parse("20 USDC")
    assert limits.denied_service_ids == frozenset({"x"})


def test_crash_hook_matches_trigger_occurrence_and_seq() -> None:
    j = Journal()
    j.create_order("o", {})
    ev1 = j.record("o", "intent:x", "created", "created", {})
    ev2 = j.record("o", "intent:x", "created", "created", {})
    hook = crash_after("intent:x#2")
    hook(ev1)
    with pytest.raises(Crash):
        hook(ev2)
    with pytest.raises(Crash):
        crash_after("seq:2")(ev1)
    assert not isinstance(Crash(), Exception)


def test_dispute_evidence_binds_journal_hashes() -> None:
    j = Journal()
    j.create_order("o", {})
    choose = j.record("o", "choose", "created", "created", {"q": 1})
    paid = j.record("o", "paid", "created", "created", {"tx": "0xabc"})
    ctx = {"choice": {"quote_id": "q1"}, "paid_tx": "0xabc", "outcome": {"status": "completed"}}
    ev = dispute_evidence(j.events("o"), ctx, "bad result")
    assert ev["journal"]["quote"] == {"seq": choose.seq, "hash": choose.hash}
    assert ev["journal"]["payment"] == {"seq": paid.seq, "hash": paid.hash}
    assert ev["payment"]["tx"] == "0xabc" and ev["acceptance_failure"] == "bad result"


def test_no_eligible_quote_says_why_in_one_short_line() -> None:
    from buyer_agent.workflow._runner import _why_not

    refused = [
        {"service_id": f"svc_{i}", "eligible": False, "reasons": [f"price {i} over budget", "denied", "x"]}
        for i in range(8)
    ]
    line = _why_not([{"service_id": "svc_ok", "eligible": True, "reasons": ["eligible"]}, *refused])
    assert line.startswith("svc_0: price 0 over budget (+2 more); svc_1: price 1 over budget (+2 more)")
    assert "svc_4: price 4 over budget (+2 more); and 3 more quotes" in line
    assert "svc_ok" not in line and "svc_5" not in line and "denied" not in line
    assert _why_not([{"service_id": "s", "eligible": False, "reasons": ["expired"]}]) == "s: expired"
