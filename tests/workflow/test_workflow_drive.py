"""The drive loop: one step table, real guards on the runner's own path, leases, and the observer's hooks."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import BuyerAgent, Money, PolicyError, Secret, load_task
from buyer_agent.journal import Event, Journal
from buyer_agent.journal._canonical import format_at
from buyer_agent.market import ItemResponse, MarketOrder, MarketPaymentRailRecommendation
from buyer_agent.rails import EvmRail, PaymentRequest, SignedTx, TxStatus
from buyer_agent.testing import ScriptedMarket, memory_journal, quote, search
from buyer_agent.testing._market import Call
from buyer_agent.workflow import OrderSpec, OrderState, PairingSession, Runner, crash_after
from buyer_agent.workflow._crashpoint import Crash
from buyer_agent.workflow._pairing import DelegationPolicyLimits
from buyer_agent.workflow._selection import make_limits
from buyer_agent.workflow._table import ACTIONS, ROWS, allowed_actions, hint

S = OrderState
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEC = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("2.50 USDC"))
CHAIN = "eip155:31337"
PAYEE = "0x" + "ab" * 20
TOKEN = "0x" + "cd" * 20
NOW = datetime.now(UTC)


def _runner(market: Any = None, journal: Journal | None = None, **kw: Any) -> Runner:
    pairing = PairingSession.with_token(machine_id="machine_1", pairing_id="pair_1", token=Secret("a.b.c"))
    rails = [EvmRail("http://127.0.0.1:1", "0x" + "11" * 32, chain=CHAIN)]  # never connects here
    return Runner(
        market=market or ScriptedMarket(),
        journal=journal or memory_journal(),
        rails=rails,
        pairing=pairing,
        **kw,
    )


# --- the one table -----------------------------------------------------------------------------


def test_caller_actions_drive_steps_and_hints_all_come_from_the_one_table() -> None:
    # What a caller may ask for, per state: the map the runner and the tools used to spell out.
    assert {a: sorted(s.value for s in states) for a, states in ACTIONS.items()} == {
        "pair": ["created"],
        "search": ["paired", "quoted"],
        "choose": ["searched"],
        "order": ["quoted"],
        "approve": ["awaiting_approval"],
        "pay": ["ordered", "paying"],
        # A person adopts a payment already made (pay ORDER_ID --tx); a free order executes unpaid.
        "adopt": ["ordered"],
        "execute": ["escrow_locked", "ordered", "paid"],
        "confirm": ["executed"],
        "dispute": ["escrow_locked", "executed", "paid"],
        "refund": ["disputed"],
        "cancel": ["awaiting_approval", "created", "paired", "quoted", "searched"],
        "withdraw": ["ordered"],
        "abandon": ["escrow_locked", "executed", "ordered", "paid", "paying"],
    }
    assert allowed_actions(S.CREATED) == ["pair", "cancel"]
    assert allowed_actions(S.ORDERED) == ["pay"]  # withdraw and abandon are a person's, never offered
    assert "approve ord_9" in hint(S.AWAITING_APPROVAL, "ord_9")
    # Every state has a row; every step a row names is one the runner has.
    assert {r.state for r in ROWS} == set(S)
    named = {r.step for r in ROWS if r.step is not None}
    assert named <= set(_runner()._loop.steps)


def test_a_new_flow_is_a_row_and_a_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row whose ``applies`` accepts the order's facts runs its own step instead of the default."""
    from buyer_agent.workflow import _table

    ran: list[str] = []

    async def close_unpaid(run: Any) -> None:
        ran.append(run.state.value)
        await runner._fx.fire(run, "cancel", payload={"reason": "a flow of its own"})

    row = _table.Row(
        S.ORDERED, "close_unpaid", ("pay",), "a flow of its own", applies=lambda f: f.spec is not None
    )
    monkeypatch.setitem(_table._ROWS_OF, S.ORDERED, (row, *_table._ROWS_OF[S.ORDERED]))
    journal = Journal(tmp_path / "flow.db")
    runner = _runner(journal=journal)
    runner.add_step("close_unpaid", close_unpaid)
    try:
        journal.create_order("ord_f", SPEC.to_json(), state="ordered", context={"machine_id": "m"})
        assert asyncio.run(runner.drive("ord_f")).state is S.CANCELLED
        assert ran == ["ordered"]
    finally:
        journal.close()


# --- guards on the runner's path ---------------------------------------------------------------


def _quote(price: str = "0.80", expires_in_s: float = 60) -> dict[str, Any]:
    return {
        "quote_id": "q_1",
        "service_id": "svc_1",
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


def _request(rail_type: str = "wallet") -> PaymentRequest:
    return PaymentRequest("mo_1", rail_type, CHAIN, TOKEN, "0x" + "11" * 20, PAYEE, Money.parse("0.80 USDC"))


LIMITS = make_limits(
    order_budget=SPEC.budget, per_transaction_limit=None, daily_limit=None, spent_today=Money.parse("0 USDC")
)
CHOOSE = {"now": NOW, "spec": SPEC, "limits": LIMITS, "can_pay": lambda r, c: True}
TX = SignedTx(CHAIN, "0x" + "01" * 32, b"\x00", "transfer")

# (state, trigger, the event data the runner would hand over, made wrong in one fact)
REFUSED: list[tuple[S, str, dict[str, Any]]] = [
    (S.SEARCHED, "choose", {**CHOOSE, "quote": _quote(expires_in_s=-1)}),  # stale against the clock
    (S.SEARCHED, "choose", {**CHOOSE, "quote": _quote(price="2.60")}),  # over the order budget
    (S.QUOTED, "order", {**CHOOSE, "quote": _quote(price="9.00")}),  # limits recomputed: over
    (
        S.ORDERED,
        "pay",
        {
            "request": _request(),
            "rails": _runner()._env.rails,
            "quote": _quote(),
            "intent": {"amount": "0.79", "currency": "USDC", "rail": {"payee_address": PAYEE}},
        },
    ),  # the intent asks for another amount than the quote's
    (S.PAYING, "paid", {"statuses": [TxStatus.PENDING], "txs": [TX]}),  # not confirmed
    (S.PAID, "lock_escrow", {"request": _request()}),  # a direct payment has no escrow
]


@pytest.mark.parametrize(("state", "trigger", "data"), REFUSED)
def test_a_guard_on_the_runners_path_refuses_bad_facts_and_journals_nothing(
    tmp_path: Path, state: S, trigger: str, data: dict[str, Any]
) -> None:
    journal = Journal(tmp_path / "g.db")
    runner = _runner(journal=journal)

    async def go() -> None:
        async with runner._loop.holding("ord_g") as run:
            with pytest.raises(PolicyError, match=f"guard refused {trigger}"):
                await runner._fx.fire(run, trigger, payload={"x": 1}, context={"touched": True}, **data)
            assert run.state is state and run.folder.seq == 1

    try:
        journal.create_order("ord_g", SPEC.to_json(), state=state.value, context={"machine_id": "m"})
        before = journal.order("ord_g")
        asyncio.run(go())
        after = journal.order("ord_g")
        assert (after.state, after.context, after.updated_at) == (
            before.state,
            before.context,
            before.updated_at,
        )
        assert journal.verify("ord_g") == 1 and journal.ledger_entries() == []
    finally:
        journal.close()


# --- the daily limit, enforced by the store ------------------------------------------------------


def _market_order() -> ItemResponse[MarketOrder]:
    return ItemResponse(
        MarketOrder(
            id="mo_1",
            machine_id="machine_1",
            agent_pairing_id="pair_1",
            service_id="svc_1",
            skill_key="s",
            provider_key="p",
            service_type="compute.marketplace",
            operation="sha256",
            execution_mode="native",
            integration_status="live",
            status="created",
            payment=MarketPaymentRailRecommendation(default_rail="wallet", chain=CHAIN),
            created_at=format_at(NOW),
            updated_at=format_at(NOW),
        )
    )


def test_the_store_refuses_an_overspend_committed_meanwhile_and_the_order_fails_cleanly(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "limit.db")

    def raced(call: Call) -> Any:
        # While our order is being created, another order of the same pairing commits 0.50 USDC of
        # today's 1.00: the eligibility check made before cannot have seen it.
        journal._conn.execute(
            "INSERT INTO ledger (order_id, pairing_id, day, amount, currency, decimals, status, updated_at) "
            "VALUES ('ord_other', 'pair_1', ?, '500000', 'USDC', 6, 'committed', 'now')",
            [datetime.now(UTC).date().isoformat()],
        )
        return _market_order()

    market = ScriptedMarket(search_market=[search(quote("qt_1", price="0.80"))], create_market_order=[raced])
    runner = _runner(market, journal)
    runner._env.pairing._policy = DelegationPolicyLimits(daily_spend_limit=Money.parse("1.00 USDC"))
    try:
        summary = asyncio.run(runner.buy(SPEC))
        assert summary.state is S.FAILED
        assert summary.error is not None and "daily limit is 1.00 USDC" in summary.error["message"]
        assert journal.ledger_entry(summary.order_id) is None  # nothing committed for this order
        assert journal.verify(summary.order_id) == len(journal.events(summary.order_id))
    finally:
        journal.close()


# --- leases --------------------------------------------------------------------------------------


def test_a_lease_lost_mid_step_stops_driving_cleanly_with_nothing_half_done(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "lease.db")

    def taken_over(call: Call) -> Any:
        # While the market answers, another process takes the order over (our lease ran out).
        journal.db.execute("UPDATE orders SET lease_until = '2000-01-01T00:00:00.000000Z'")
        assert journal.acquire_lease(order_id, "otherhost:1:x", 600.0) is not None
        return search(quote("qt_1"))

    market = ScriptedMarket(search_market=[taken_over])
    runner = _runner(market, journal)
    order_id = asyncio.run(runner.submit(SPEC))
    try:
        summary = asyncio.run(runner.drive(order_id))  # returns: no traceback
        assert summary.state is S.PAIRED
        events = journal.events(order_id)
        assert [e.trigger for e in events] == ["submit", "pair", "intent:search_market"]
        rec = journal.order(order_id)
        assert rec.state == "paired" and rec.lease_owner == "otherhost:1:x"  # still the new driver's
    finally:
        journal.close()


# --- the observer --------------------------------------------------------------------------------


class Recorder:
    """Keeps every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        self.calls.append(("order_started", order_id, state, resumed))

    def step_started(self, order_id: str, step: str, state: str) -> None:
        self.calls.append(("step_started", order_id, step, state))

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        self.calls.append(("step_finished", order_id, step, state, error))

    def event(self, event: Event) -> None:
        self.calls.append(("event", event.order_id, event.seq, event.trigger))

    def order_finished(self, order_id: str, state: str) -> None:
        self.calls.append(("order_finished", order_id, state))


def _well_nested(calls: list[tuple[Any, ...]]) -> list[str]:
    """The steps started, checking each finishes after the steps started inside it (a stack)."""
    stack: list[str] = []
    started: list[str] = []
    for c in calls:
        if c[0] == "step_started":
            stack.append(c[2])
            started.append(c[2])
        elif c[0] == "step_finished":
            assert stack and stack.pop() == c[2], c
    assert stack == []
    return started


def _assert_drive(
    calls: list[tuple[Any, ...]], journal: Journal, order_id: str, first: str, resumed: bool
) -> None:
    mine = [c for c in calls if c[1] == order_id]
    if mine[0][0] == "event":  # submitting journals the first event before the order is driven
        assert mine[0][3] == "submit"
        mine = mine[1:]
    assert mine[0] == ("order_started", order_id, first, resumed)
    assert mine[-1] == ("order_finished", order_id, "confirmed")
    seqs = [c[2] for c in mine if c[0] == "event"]
    assert seqs == sorted(seqs) and seqs[-1] == len(journal.events(order_id))
    # Every event appended while driving reached the observer, in order.
    assert seqs == list(range(seqs[0], seqs[-1] + 1))


@pytest.mark.chains
def test_the_observer_hears_an_order_and_a_resumed_one_in_order_on_the_sandbox(tmp_path: Path) -> None:
    rec = Recorder()
    task = load_task(EXAMPLES / "task.yaml", env={})

    async def go() -> None:
        async with BuyerAgent.from_task(task, state_dir=tmp_path, observer=rec) as agent:
            summary = await agent.buy()
            assert summary.state is S.CONFIRMED, summary.error
            order_id = summary.order_id
            _assert_drive(rec.calls, agent.journal, order_id, "created", resumed=False)
            steps = _well_nested(rec.calls)
            assert steps == [
                "pair",
                "search",
                "choose",
                "order",
                "pay",
                "settle",
                "broadcast",
                "prove",
                "execute",
                "confirm",
                # Confirm leaves the direct payment release_pending; the buyer's release closes it.
                "release",
            ]
            assert next(c[3] for c in rec.calls if c[0] == "event") == "submit"

            # Crash right after the payment is signed and journaled; a resume takes the order up again.
            second = await agent.submit(task)
            runner = await agent._runner()
            runner._crash_hook = crash_after("pay")
            with contextlib.suppress(Crash):
                await agent.drive(second)
            runner._crash_hook = None
            rec.calls.clear()
            (resumed,) = await runner.resume(second)
            assert resumed.state is S.CONFIRMED, resumed.error
            _assert_drive(rec.calls, agent.journal, second, "paying", resumed=True)
            assert _well_nested(rec.calls)[:3] == ["settle", "broadcast", "prove"]

    asyncio.run(go())


class Raising(Recorder):
    """An observer whose every hook fails."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("order_started", "step_started", "step_finished", "event", "order_finished"):

            def boom(*a: Any, **k: Any) -> None:
                raise RuntimeError("observer down")

            return boom
        return super().__getattribute__(name)


def test_an_observer_that_raises_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    runner = _runner(observer=Raising())

    async def go() -> None:
        order_id = await runner.submit(SPEC)
        assert (await runner.step(order_id, "pair")).state is S.PAIRED
        assert (await runner.step(order_id, "cancel")).state is S.CANCELLED

    asyncio.run(go())
    assert "the drive observer failed" in caplog.text
    assert runner._loop._locks == {}  # an order let go leaves no lock behind
