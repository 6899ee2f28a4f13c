"""The real OrderModel's guards on a real journal: a refusal leaves state, events and ledger as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import Money
from buyer_agent.journal import Journal, LedgerChange, LedgerStatus
from buyer_agent.workflow import OrderSpec, OrderState
from buyer_agent.workflow._machine import build_machine
from buyer_agent.workflow._model import OrderModel

S = OrderState
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PRICE = Money.parse("0.80 USDC")
SPEC = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("2.50 USDC"))
CHOICE = {"quote_id": "q_1", "service_id": "svc_hash_budget"}
FRESH = {"choice": CHOICE, "expires_at": NOW + timedelta(seconds=30), "now": NOW, "eligible": True}
ORDER_OK = {
    "expires_at": NOW + timedelta(seconds=30),
    "now": NOW,
    "eligible": True,
    "approved": True,
    "ledger": LedgerChange(LedgerStatus.COMMITTED, "apr_1", PRICE),
}
PAY_OK = {"rail_available": True, "intent_checked": True, "mismatch": None}

# (what the guard protects, from state, trigger, the facts that pass, the facts that make it refuse)
CASES: list[tuple[str, S, str, dict[str, Any], dict[str, Any]]] = [
    ("no choice", S.SEARCHED, "choose", FRESH, {"choice": None}),
    ("budget", S.SEARCHED, "choose", FRESH, {"eligible": False}),
    ("freshness", S.SEARCHED, "choose", FRESH, {"expires_at": NOW}),
    ("freshness", S.QUOTED, "order", ORDER_OK, {"expires_at": NOW - timedelta(seconds=1)}),
    ("budget", S.QUOTED, "order", ORDER_OK, {"eligible": None}),
    ("policy", S.QUOTED, "order", ORDER_OK, {"approved": False}),
    ("policy", S.QUOTED, "hold", {"over_threshold": True}, {"over_threshold": False}),
    ("rail", S.ORDERED, "pay", PAY_OK, {"rail_available": False}),
    ("rail", S.ORDERED, "pay", PAY_OK, {"mismatch": "payee"}),
    ("rail", S.ORDERED, "pay", PAY_OK, {"intent_checked": False}),
    ("payment", S.PAYING, "paid", {"confirmed": True}, {"confirmed": False}),
    ("rail", S.PAID, "lock_escrow", {"escrow": True}, {"escrow": False}),
    ("rail", S.PAID, "execute", {"escrow": False}, {"escrow": True}),
    ("rail", S.PAID, "hand_off", {"escrow": False}, {}),
    ("rail", S.PAID, "dispute", {"escrow": False}, {"escrow": None}),
]


def _snapshot(journal: Journal, order_id: str) -> tuple[Any, ...]:
    rec = journal.order(order_id)
    events = journal.events(order_id)
    ledger = journal.ledger_entries()
    return (rec.state, dict(rec.context), rec.updated_at, len(events), events[-1].hash, ledger)


@pytest.mark.parametrize(("protects", "state", "trigger", "passing", "refusing"), CASES)
def test_a_refusing_guard_changes_nothing_and_the_passing_facts_move_on(
    tmp_path: Path, protects: str, state: S, trigger: str, passing: dict[str, Any], refusing: dict[str, Any]
) -> None:
    journal = Journal(tmp_path / "guards.db")
    try:
        journal.create_order("ord_g", SPEC.to_json(), state=state.value, context={"machine_id": "m"})
        before = _snapshot(journal, "ord_g")

        model = OrderModel(journal, "ord_g")
        build_machine(model, state.value)
        facts = {**passing, **refusing}
        if not refusing:  # a fact that is missing altogether refuses too
            facts = {k: v for k, v in passing.items() if k != "escrow"}
        assert model.trigger(trigger, payload={"why": protects}, context={"touched": True}, **facts) is False
        assert model.state == state.value and model.last_event is None
        assert _snapshot(journal, "ord_g") == before
        assert journal.verify("ord_g") == 1

        # The same trigger with the passing facts moves: the refusal came from the guard alone.
        model = OrderModel(journal, "ord_g")
        build_machine(model, state.value)
        assert model.trigger(trigger, payload={"why": protects}, context={"touched": True}, **passing) is True
        assert model.state != state.value
        assert journal.order("ord_g").context["touched"] is True
        assert journal.verify("ord_g") == 2
    finally:
        journal.close()
