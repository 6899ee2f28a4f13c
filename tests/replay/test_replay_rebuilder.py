"""The replay's machine: every answer is the real machine's, asked once per (state, trigger)."""

from __future__ import annotations

from buyer_agent.history._replay import Rebuilder
from buyer_agent.workflow._machine import TRANSITIONS, next_triggers
from buyer_agent.workflow._states import OrderState


def test_every_table_row_lands_where_the_table_says_and_other_triggers_are_refused() -> None:
    rb = Rebuilder()
    for _ in range(2):  # the second pass is answered from memory and must say the same
        for t in TRANSITIONS:
            assert rb.fire(t.source.value, t.trigger, t.dest.value) is None
            wrong = OrderState.FAILED.value if t.dest is not OrderState.FAILED else OrderState.CREATED.value
            assert rb.fire(t.source.value, t.trigger, wrong) == (
                f"the machine moves {t.trigger} to {t.dest.value}, the journal says {wrong}"
            )
        for state in OrderState:
            allowed = set(next_triggers(state.value))
            for trigger in {t.trigger for t in TRANSITIONS} - allowed:
                why = rb.fire(state.value, trigger, OrderState.FAILED.value)
                assert why is not None and why.startswith(f"the machine refuses {trigger}")
            assert (rb.fire(state.value, "no_such_trigger", state.value) or "").startswith("unknown trigger")


def test_the_machine_is_asked_once_per_state_and_trigger() -> None:
    rb = Rebuilder()
    asked: list[tuple[str, str]] = []
    real = rb._ask

    def counting(src: str, trigger: str) -> tuple[bool, str]:
        asked.append((src, trigger))
        return real(src, trigger)

    rb._ask = counting  # type: ignore[method-assign]
    for _ in range(100):
        assert rb.fire("paid", "execute", "executed") is None
        assert rb.fire("created", "pair", "paired") is None
    assert asked == [("paid", "execute"), ("created", "pair")]
