"""The real OrderModel's guards on a real journal: a refusal leaves state, events and ledger as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair

from buyer_agent import Money
from buyer_agent.journal import Journal, LedgerChange, LedgerStatus
from buyer_agent.journal._canonical import format_at
from buyer_agent.rails import EvmRail, PaymentRequest, SignedTx, SolanaRail, TxStatus
from buyer_agent.workflow import OrderSpec, OrderState
from buyer_agent.workflow._machine import build_machine
from buyer_agent.workflow._model import OrderModel
from buyer_agent.workflow._selection import make_limits

S = OrderState
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PRICE = Money.parse("0.80 USDC")
SPEC = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("2.50 USDC"))
# The same order with an approval threshold below the price.
HELD = OrderSpec(
    service_type="compute.marketplace",
    operation="sha256",
    budget=Money.parse("2.50 USDC"),
    approval_threshold=Money.parse("0.50 USDC"),
)
CHAIN = "eip155:31337"
PAYEE = "0x" + "ab" * 20
TOKEN = "0x" + "cd" * 20


def _quote(price: str = "0.80", expires_in_s: float = 30) -> dict[str, Any]:
    return {
        "quote_id": "q_1",
        "service_id": "svc_hash_budget",
        "provider_key": "p",
        "skill_key": "s",
        "price": Money.parse(f"{price} USDC").to_json(),
        "score": "0.9",
        "execution_mode": "native",
        "rail": "wallet",
        "supported_rails": ["wallet"],
        "chain": CHAIN,
        "token": "USDC",
        "token_address": TOKEN,
        "token_mint": None,
        "payee": PAYEE,
        "expires_at": format_at(NOW + timedelta(seconds=expires_in_s)),
        "latency_ms": None,
        "reputation": None,
        "reasons": [],
    }


def _limits(spent: str = "0") -> Any:
    return make_limits(
        order_budget=SPEC.budget,
        per_transaction_limit=None,
        daily_limit=Money.parse("1.00 USDC"),
        spent_today=Money.parse(f"{spent} USDC"),
    )


def _intent(payee: str = PAYEE) -> dict[str, Any]:
    rail = {"type": "wallet", "chain": CHAIN, "token_address": TOKEN, "payee_address": payee}
    return {"amount": "0.80", "currency": "USDC", "rail": rail}


def _request(rail_type: str = "wallet") -> PaymentRequest:
    escrow = "0x" + "ee" * 20 if rail_type == "onchain-escrow" else None
    return PaymentRequest("mo_1", rail_type, CHAIN, TOKEN, "0x" + "11" * 20, PAYEE, PRICE, escrow)


RAIL = EvmRail(
    "http://127.0.0.1:1", "0x" + "11" * 32, chain=CHAIN
)  # never connects: it only says what it pays
TX = SignedTx(CHAIN, "0x" + "01" * 32, b"\x00", "transfer")

# What the runner hands a transition: the quote, the clock's reading, the limits it recomputed from
# the store's ledger, the spec, which rails can pay.
FRESH = {"quote": _quote(), "now": NOW, "spec": SPEC, "limits": _limits(), "can_pay": lambda r, c: True}
ORDER_OK = {**FRESH, "ledger": LedgerChange(LedgerStatus.COMMITTED, "apr_1", PRICE)}
PAY_OK = {"request": _request(), "rails": [RAIL], "intent": _intent(), "quote": _quote()}

# (what the guard protects, from state, trigger, the facts that pass, the facts that make it refuse)
CASES: list[tuple[str, S, str, dict[str, Any], dict[str, Any]]] = [
    ("no choice", S.SEARCHED, "choose", FRESH, {"quote": None}),
    ("budget", S.SEARCHED, "choose", FRESH, {"quote": _quote(price="3.00")}),
    ("freshness", S.SEARCHED, "choose", FRESH, {"now": NOW + timedelta(seconds=30)}),
    ("freshness", S.QUOTED, "order", ORDER_OK, {"now": NOW + timedelta(seconds=31)}),
    ("budget", S.QUOTED, "order", ORDER_OK, {"limits": _limits(spent="0.50")}),
    ("policy", S.QUOTED, "order", ORDER_OK, {"spec": HELD}),
    ("policy", S.QUOTED, "hold", {"quote": _quote(), "spec": HELD}, {"spec": SPEC}),
    (
        "rail",
        S.ORDERED,
        "pay",
        PAY_OK,
        {"rails": [SolanaRail("http://127.0.0.1:1", str(Keypair()), chain="solana:x")]},
    ),
    ("rail", S.ORDERED, "pay", PAY_OK, {"intent": _intent(payee="0x" + "99" * 20)}),
    ("rail", S.ORDERED, "pay", PAY_OK, {"intent": None}),
    (
        "payment",
        S.PAYING,
        "paid",
        {"statuses": [TxStatus.CONFIRMED], "txs": [TX]},
        {"statuses": [TxStatus.PENDING]},
    ),
    ("rail", S.PAID, "lock_escrow", {"request": _request("onchain-escrow")}, {"request": _request()}),
    ("rail", S.PAID, "execute", {"request": _request()}, {"request": _request("onchain-escrow")}),
    ("rail", S.PAID, "hand_off", {"request": _request()}, {}),
    ("rail", S.PAID, "dispute", {"request": _request()}, {"request": None}),
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
            facts = {k: v for k, v in passing.items() if k != "request"}
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
