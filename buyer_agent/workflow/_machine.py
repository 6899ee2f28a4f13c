"""The order state machine as data: the transition table, its machine, and its diagram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transitions import Machine, State

from buyer_agent.workflow._states import TERMINAL, OrderState

__all__ = [
    "EFFECT_PREFIXES",
    "SUBMIT",
    "TRANSITIONS",
    "Transition",
    "build_machine",
    "is_legal",
    "mermaid_diagram",
    "next_triggers",
]

S = OrderState

#: The trigger of an order's first event (``created → created``).
SUBMIT = "submit"

#: Event triggers that record a side effect without changing state (``src == dst``).
EFFECT_PREFIXES = ("intent:", "result:", "note:")


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: ``trigger`` moves ``source`` to ``dest`` when every condition holds.

    Conditions name methods of the model (``guard_<name>``) that receive the event data; the
    replay builds the machine without them (``guards=False``) since it re-checks recorded facts.
    """

    trigger: str
    source: OrderState
    dest: OrderState
    conditions: tuple[str, ...] = ()


_BEFORE_PAYMENT = (S.CREATED, S.PAIRED, S.SEARCHED, S.QUOTED, S.AWAITING_APPROVAL)
_NON_TERMINAL_FAILABLE = (*_BEFORE_PAYMENT, S.ORDERED, S.PAYING, S.PAID, S.ESCROW_LOCKED, S.EXECUTED)

TRANSITIONS: tuple[Transition, ...] = (
    Transition("pair", S.CREATED, S.PAIRED),
    Transition("search", S.PAIRED, S.SEARCHED),
    # Quotes expired or every fallback was rejected: search again within the quote deadline.
    Transition("search", S.QUOTED, S.SEARCHED),
    Transition("search", S.SEARCHED, S.SEARCHED),
    Transition("choose", S.SEARCHED, S.QUOTED, ("has_choice", "quote_fresh", "within_limits")),
    Transition("hold", S.QUOTED, S.AWAITING_APPROVAL, ("over_threshold",)),
    Transition("approve", S.AWAITING_APPROVAL, S.QUOTED),
    Transition("order", S.QUOTED, S.ORDERED, ("quote_fresh", "within_limits", "approved")),
    Transition("pay", S.ORDERED, S.PAYING, ("rail_available", "intent_matches")),
    Transition("paid", S.PAYING, S.PAID, ("payment_confirmed",)),
    # x402: the market holds the payment once it recorded the authorization (it settles at execute).
    Transition("paid", S.PAYING, S.PAID, ("authorization_held",)),
    Transition("lock_escrow", S.PAID, S.ESCROW_LOCKED, ("escrow_rail",)),
    Transition("execute", S.PAID, S.EXECUTED, ("direct_rail",)),
    Transition("execute", S.ESCROW_LOCKED, S.EXECUTED),
    Transition("hand_off", S.PAID, S.HANDED_OFF, ("direct_rail",)),
    Transition("hand_off", S.ESCROW_LOCKED, S.HANDED_OFF),
    Transition("confirm", S.EXECUTED, S.CONFIRMED),
    Transition("dispute", S.EXECUTED, S.DISPUTED),
    # Execution timed out after the money moved.
    Transition("dispute", S.PAID, S.DISPUTED, ("direct_rail",)),
    Transition("dispute", S.ESCROW_LOCKED, S.DISPUTED),
    Transition("refund", S.DISPUTED, S.REFUNDED),
    # The no-payment flow (reference §4.8): a free quote's order runs without paying, never as a
    # paid order that skipped its payment (``no_payment`` judges the quote and the market order).
    Transition("execute_free", S.ORDERED, S.EXECUTED, ("no_payment",)),
    Transition("hand_off", S.ORDERED, S.HANDED_OFF, ("no_payment",)),
    Transition("dispute", S.ORDERED, S.DISPUTED, ("no_payment",)),
    *(Transition("fail", src, S.FAILED) for src in _NON_TERMINAL_FAILABLE),
    *(Transition("cancel", src, S.CANCELLED) for src in _BEFORE_PAYMENT),
    # Ordered but not paid: a person may still close it (no money moved; the ledger is released).
    Transition("cancel", S.ORDERED, S.CANCELLED),
)

_LEGAL: frozenset[tuple[str, str, str]] = frozenset(
    (t.source.value, t.trigger, t.dest.value) for t in TRANSITIONS
)


def is_legal(src: str, trigger: str, dst: str) -> bool:
    """True when a journal event ``src --trigger--> dst`` is allowed by the table.

    Besides the table: the first event (``submit``, ``created → created``) and effect records
    (``intent:…``, ``result:…``, ``note:…``) that leave a non-terminal state unchanged.
    """
    if trigger == SUBMIT:
        return src == dst == S.CREATED.value
    if trigger.startswith(EFFECT_PREFIXES):
        return src == dst and src in _OPEN_VALUES
    return (src, trigger, dst) in _LEGAL


# The states an effect record may be written in (every state but the terminal ones).
_OPEN_VALUES = frozenset(s.value for s in OrderState if s not in TERMINAL)


def next_triggers(state: str) -> list[str]:
    """The triggers the table allows from ``state``, in table order, without duplicates."""
    seen: list[str] = []
    for t in TRANSITIONS:
        if t.source.value == state and t.trigger not in seen:
            seen.append(t.trigger)
    return seen


def build_machine(model: Any, initial: str | OrderState, *, guards: bool = True) -> Machine:
    """A ``transitions`` machine over ``model`` from the table, starting in ``initial``.

    Args:
        model: The object whose ``state`` the machine manages. With ``guards`` it must have a
            ``guard_<name>(event)`` method per condition; a ``journal_transition(event)`` method, if
            present, runs before every state change (it journals; an error there aborts the change).
        initial: The state to start in (a resumed order starts where the journal says).
        guards: False drops the conditions (replay checks legality only).

    Returns:
        The machine. Fire triggers with ``model.trigger(name, **kwargs)``; it returns False when a
        condition refuses and raises ``MachineError`` for a trigger the state does not allow.
    """
    states = [State(s.value, final=s in TERMINAL) for s in OrderState]
    table = [
        {
            "trigger": t.trigger,
            "source": t.source.value,
            "dest": t.dest.value,
            "conditions": [f"guard_{c}" for c in t.conditions] if guards else [],
        }
        for t in TRANSITIONS
    ]
    before = "journal_transition" if callable(getattr(model, "journal_transition", None)) else None
    return Machine(
        model=model,
        states=states,
        transitions=table,
        initial=OrderState(initial).value,
        send_event=True,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        before_state_change=before,
    )


def mermaid_diagram() -> str:
    """The machine as Mermaid ``stateDiagram-v2`` text, generated from the table."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.CREATED.value}"]
    grouped: dict[tuple[str, str], list[str]] = {}
    for t in TRANSITIONS:
        key = (t.source.value, t.dest.value)
        label = t.trigger + (f" [{', '.join(t.conditions)}]" if t.conditions else "")
        if label not in grouped.setdefault(key, []):
            grouped[key].append(label)
    for (src, dst), labels in grouped.items():
        lines.append(f"    {src} --> {dst}: {' / '.join(labels)}")
    for s in OrderState:
        if s in TERMINAL:
            lines.append(f"    {s.value} --> [*]")
    return "\n".join(lines) + "\n"
