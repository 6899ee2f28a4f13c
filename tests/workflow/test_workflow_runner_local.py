"""Runner behaviour that needs no market: the intent check, steps out of order, leases, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import JournalError, Money, PaymentMismatchError, Secret, StateError
from buyer_agent.journal import Journal
from buyer_agent.rails._base import PaymentRequest
from buyer_agent.workflow import OrderSpec, OrderState, PairingSession
from buyer_agent.workflow._payment_facts import check_intent, request_from_json, request_json
from buyer_agent.workflow._runner import Runner

PRICE = Money.parse("0.80 USDC")
CHOICE = {"payee": "0xAbC", "token_address": "0xT0", "chain": "eip155:31337"}


def intent(**over: Any) -> dict[str, Any]:
    rail = {
        "chain": "eip155:31337",
        "token_address": "0xt0",
        "payee_address": "0xabc",
        "token_decimals": 6,
        "raw_amount": "800000",
    }
    rail.update(over.pop("rail", {}))
    return {"amount": "0.8", "currency": "USDC", "rail": rail, **over}


def test_the_intent_must_match_the_quote_before_money_moves() -> None:
    assert check_intent(intent(), CHOICE, PRICE) is None
    cases = [
        (intent(amount="0.81"), "amount"),
        (intent(rail={"raw_amount": "800001"}), "raw_amount"),
        (intent(rail={"payee_address": "0xdef"}), "payee"),
        (intent(rail={"token_address": "0xother"}), "token_address"),
        (intent(rail={"chain": "eip155:1"}), "chain"),
        (intent(currency="USDT"), "amount"),
        (intent(amount=None), "amount"),
    ]
    for bad, field in cases:
        err = check_intent(bad, CHOICE, PRICE)
        assert isinstance(err, PaymentMismatchError) and err.field == field, (bad, err)


def test_payment_request_round_trips() -> None:
    req = PaymentRequest("o", "wallet", "eip155:1", "0xT", "0xA", "0xB", PRICE, None, 10**12)
    assert request_from_json(request_json(req)) == req


def _runner(db: Path) -> Runner:
    journal = Journal(db)
    pairing = PairingSession.with_token(machine_id="m", pairing_id="p", token=Secret("t.t.t"))
    return Runner(market=object(), journal=journal, rails=[], pairing=pairing)  # type: ignore[arg-type]


SPEC = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("2.50 USDC"))


def test_steps_out_of_order_name_the_allowed_ones(tmp_path: Path) -> None:
    runner = _runner(tmp_path / "r.db")
    order_id = asyncio.run(runner.submit(SPEC))
    assert runner.allowed_actions(order_id) == ["pair", "cancel"]
    with pytest.raises(StateError) as info:
        asyncio.run(runner.step(order_id, "pay"))
    assert info.value.state == "created" and info.value.allowed == ["pair", "cancel"]
    summary = asyncio.run(runner.step(order_id, "cancel"))
    assert summary.state is OrderState.CANCELLED
    assert runner.allowed_actions(order_id) == []
    assert runner.journal.verify(order_id) == 2


def test_a_second_runner_cannot_drive_a_leased_order(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    first, second = _runner(db), _runner(db)
    order_id = asyncio.run(first.submit(SPEC))
    assert first.journal.acquire_lease(order_id, first._owner, 60)
    with pytest.raises(StateError, match="another process"):
        asyncio.run(second.drive(order_id))
    # resume() skips it and reports where it stands
    (summary,) = asyncio.run(second.resume())
    assert summary.state is OrderState.CREATED


def test_summary_json_has_the_run_json_keys(tmp_path: Path) -> None:
    runner = _runner(tmp_path / "s.db")
    order_id = asyncio.run(runner.submit(SPEC))
    data = runner.summary(order_id).to_json()
    with pytest.raises(JournalError, match="no order ord_unknown"):
        runner.summary("ord_unknown")
    assert {"order_id", "state", "quote", "candidates", "payment", "journal", "updated_at"} <= set(data)
    assert data["journal"] == str(tmp_path / "s.db")
