"""The state machine is data: its table, legality, guards, terminal states and diagram."""

from __future__ import annotations

from typing import Any

import pytest
from transitions import MachineError

from buyer_agent.workflow._machine import (
    TRANSITIONS,
    build_machine,
    is_legal,
    mermaid_diagram,
    next_triggers,
)
from buyer_agent.workflow._states import TERMINAL, OrderState

S = OrderState


class Model:
    state: str
    trigger: Any

    def __init__(self) -> None:
        self.journaled: list[tuple[str, str, str]] = []
        self.allow = True

    def journal_transition(self, event: Any) -> None:
        self.journaled.append((event.transition.source, event.event.name, event.transition.dest))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("guard_"):
            return lambda event: self.allow
        raise AttributeError(name)


def test_happy_paths_direct_and_escrow() -> None:
    direct = ["pair", "search", "choose", "order", "pay", "paid", "execute", "confirm"]
    m = Model()
    build_machine(m, S.CREATED)
    for t in direct:
        assert m.trigger(t)
    assert m.state == S.CONFIRMED
    assert [j[1] for j in m.journaled] == direct
    escrow = [
        "pair",
        "search",
        "choose",
        "order",
        "pay",
        "paid",
        "lock_escrow",
        "execute",
        "dispute",
        "refund",
    ]
    src = S.CREATED.value
    for t in escrow:
        nxt = {tr.dest.value for tr in TRANSITIONS if tr.source.value == src and tr.trigger == t}
        assert len(nxt) == 1
        dst = nxt.pop()
        assert is_legal(src, t, dst)
        src = dst
    assert src == S.REFUNDED


def test_a_refusing_guard_keeps_the_state_and_journals_nothing() -> None:
    m = Model()
    build_machine(m, S.SEARCHED)
    m.allow = False
    assert m.trigger("choose") is False
    assert m.state == S.SEARCHED and m.journaled == []


def test_terminal_states_are_final_and_have_no_way_out() -> None:
    for state in TERMINAL:
        assert next_triggers(state.value) == []
        m = Model()
        machine = build_machine(m, state)
        assert machine.get_state(state.value).final
        with pytest.raises(MachineError):
            m.trigger("fail")


def test_no_money_state_can_be_cancelled_and_paying_cannot() -> None:
    assert is_legal("quoted", "cancel", "cancelled")
    assert not is_legal("paying", "cancel", "cancelled")
    assert not is_legal("paid", "cancel", "cancelled")
    # Escrow is skipped on direct rails: paid → executed is in the table (guarded by direct_rail).
    assert is_legal("paid", "execute", "executed")
    assert not is_legal("ordered", "execute", "executed")
    assert not is_legal("created", "pay", "paying")


def test_effect_records_and_the_first_event() -> None:
    assert is_legal("created", "submit", "created")
    assert not is_legal("paired", "submit", "paired")
    assert is_legal("paying", "intent:broadcast", "paying")
    assert is_legal("ordered", "result:create_payment_intent", "ordered")
    assert not is_legal("ordered", "result:x", "paying")
    assert not is_legal("confirmed", "note:x", "confirmed")
    assert not is_legal("no_such_state", "note:x", "no_such_state")


def test_every_state_is_reachable_and_every_non_terminal_state_has_an_exit() -> None:
    reached = {S.CREATED.value}
    frontier = [S.CREATED.value]
    while frontier:
        src = frontier.pop()
        for t in TRANSITIONS:
            if t.source.value == src and t.dest.value not in reached:
                reached.add(t.dest.value)
                frontier.append(t.dest.value)
    assert reached == {s.value for s in OrderState}
    for s in OrderState:
        if s not in TERMINAL:
            assert next_triggers(s.value), s


def test_mermaid_is_generated_from_the_table() -> None:
    text = mermaid_diagram()
    assert text.startswith("stateDiagram-v2\n    [*] --> created\n")
    for t in TRANSITIONS:
        assert f"{t.source.value} --> {t.dest.value}: " in text
    for s in TERMINAL:
        assert f"    {s.value} --> [*]" in text
