"""The one table of which step runs from which state, with the actions a caller may ask for there.

The drive loop takes each order's next step from :data:`ROWS`; ``Runner.step`` checks a caller's
action against it; the tools read their next-step hints from it. A new flow is a row (and a step
registered under its name), never an edit of an if-chain: a row's ``applies`` predicate over the
order's facts picks it before the rows after it for the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from buyer_agent.workflow._facts import OrderFacts
from buyer_agent.workflow._states import OrderState

__all__ = [
    "ACTIONS",
    "HIDDEN_ACTIONS",
    "ROWS",
    "Row",
    "actions_of",
    "allowed_actions",
    "hint",
    "row_for",
]

S = OrderState

#: Every action a caller may ask for, in the order ``allowed_actions`` lists them.
_ACTION_ORDER: tuple[str, ...] = (
    "pair",
    "search",
    "choose",
    "order",
    "approve",
    "pay",
    "adopt",
    "execute",
    "confirm",
    "dispute",
    "refund",
    "cancel",
    "withdraw",
    "abandon",
)

#: A person's decisions, never offered among the next steps (``cancel ORDER_ID [--abandon]``,
#: ``pay ORDER_ID --tx HASH``): cancel an order placed but not paid; close as failed one whose
#: market died with its process; adopt a payment the operator already made.
HIDDEN_ACTIONS = frozenset({"withdraw", "abandon", "adopt"})


@dataclass(frozen=True, slots=True)
class Row:
    """From ``state`` the drive loop runs ``step`` (None: the order waits or is done).

    ``actions`` are what a caller may ask for in ``state`` (``Runner.step``); ``hint`` tells a model
    or a person what to do next (``{order_id}`` is filled in); ``applies`` narrows the row to the
    orders whose facts it accepts (a flow of its own), else the row is the state's default.
    """

    state: OrderState
    step: str | None
    actions: tuple[str, ...]
    hint: str
    applies: Callable[[OrderFacts], bool] | None = None


_BEFORE_ORDER = ("cancel",)


def _free(facts: OrderFacts) -> bool:
    """The order's quote needs no payment (the no-payment flow)."""
    return facts.choice is not None and facts.choice.free


def _x402(facts: OrderFacts) -> bool:
    """The order pays by x402: an authorization the market settles at execute."""
    if facts.request is not None:
        return facts.request.rail_type == "x402"
    return facts.choice is not None and facts.choice.rail == "x402"


ROWS: tuple[Row, ...] = (
    Row(
        S.CREATED,
        "pair",
        ("pair", *_BEFORE_ORDER),
        "the order was not searched yet; start a new one with search_market",
    ),
    Row(
        S.PAIRED,
        "search",
        ("search", *_BEFORE_ORDER),
        "the search did not complete; start a new one with search_market",
    ),
    Row(
        S.SEARCHED,
        "choose",
        ("choose", *_BEFORE_ORDER),
        "call list_candidates to see the quotes, then choose_quote",
    ),
    # From quoted a caller may search again (quotes expired) or order the chosen quote.
    Row(S.QUOTED, "order", ("search", "order", *_BEFORE_ORDER), "call place_order to order the chosen quote"),
    Row(
        S.AWAITING_APPROVAL,
        "approval",
        ("approve", *_BEFORE_ORDER),
        "the price is above the approval threshold: a human must approve it "
        "(python -m buyer_agent approve {order_id}{state_dir}); check order_status (or wait_for "
        "quoted) later, then call place_order",
    ),
    # The no-payment flow: a free quote's order executes straight away (no intent, proof or signature).
    Row(
        S.ORDERED,
        "execute_free",
        ("execute", "withdraw", "abandon"),
        "the quote needs no payment: call execute_order",
        applies=_free,
    ),
    # x402: sign the authorization locally (journaled first), prove it, execute (the market settles),
    # find the settlement on chain, confirm.
    Row(S.ORDERED, "pay_x402", ("pay", "withdraw", "abandon"), "call pay_order", applies=_x402),
    Row(S.ORDERED, "pay", ("pay", "adopt", "withdraw", "abandon"), "call pay_order"),
    Row(
        S.PAYING,
        "prove_x402",
        ("pay", "abandon"),
        "the authorization is signed, not yet recorded by the market; call pay_order again (it signs "
        "no second one while the first can still settle)",
        applies=_x402,
    ),
    Row(
        S.PAYING,
        "settle",
        ("pay", "abandon"),
        "the payment is not confirmed yet; call pay_order again to reconcile (it never pays twice)",
    ),
    Row(
        S.PAID,
        "execute_x402",
        ("execute", "dispute", "abandon"),
        "call execute_order (the market settles the authorization then)",
        applies=_x402,
    ),
    Row(S.PAID, "execute", ("execute", "dispute", "abandon"), "call execute_order"),
    Row(S.ESCROW_LOCKED, "execute", ("execute", "dispute", "abandon"), "call execute_order"),
    Row(
        S.EXECUTED,
        "confirm_x402",
        ("confirm", "dispute", "abandon"),
        "check the outcome, then call confirm_order (the settlement is read from the chain first) or "
        "dispute_order with a reason",
        applies=_x402,
    ),
    Row(
        S.EXECUTED,
        "confirm",
        ("confirm", "dispute", "abandon"),
        "check the outcome, then call confirm_order to accept it or dispute_order with a reason",
    ),
    Row(
        S.DISPUTED,
        None,
        (),
        "nothing was paid, so nothing will be refunded; the dispute is recorded with the market",
        applies=_free,
    ),
    Row(
        S.DISPUTED,
        "refund",
        ("refund",),
        "the payment is frozen until the market refunds it; call wait_for with state refunded, or "
        "order_status later",
    ),
    Row(S.CONFIRMED, None, (), "done: the service was delivered and paid"),
    Row(
        S.REFUNDED,
        None,
        (),
        "the payment was refunded; start again with search_market if the task still needs it",
    ),
    Row(S.HANDED_OFF, None, (), "the market handed execution to an external flow; nothing more to do here"),
    Row(
        S.FAILED,
        None,
        (),
        "the order stopped (see error); start a new one with search_market if it still makes sense",
    ),
    Row(S.CANCELLED, None, (), "the order was cancelled"),
)


def _by_state() -> dict[OrderState, tuple[Row, ...]]:
    out: dict[OrderState, list[Row]] = {}
    for row in ROWS:
        out.setdefault(row.state, []).append(row)
    missing = [s.value for s in OrderState if s not in out]
    if missing:  # pragma: no cover - a table edit that forgot a state fails at import
        raise AssertionError(f"the step table has no row for {missing}")
    return {s: tuple(rows) for s, rows in out.items()}


_ROWS_OF = _by_state()


def _actions() -> dict[str, frozenset[OrderState]]:
    acts: dict[str, set[OrderState]] = {a: set() for a in _ACTION_ORDER}
    for row in ROWS:
        for action in row.actions:
            acts[action].add(row.state)
    return {a: frozenset(states) for a, states in acts.items()}


#: Which states each caller action runs from (derived from :data:`ROWS`).
ACTIONS: Mapping[str, frozenset[OrderState]] = _actions()


def row_for(state: OrderState, facts: Callable[[], OrderFacts] | None = None) -> Row:
    """The row that drives an order in ``state``: the first whose ``applies`` accepts its facts.

    ``facts`` is asked for only when a row of ``state`` has a condition.
    """
    rows = _ROWS_OF[state]
    if len(rows) == 1:
        return rows[0]
    known = facts() if facts is not None else None
    for row in rows:
        if row.applies is None or (known is not None and row.applies(known)):
            return row
    return rows[-1]


def actions_of(state: OrderState, facts: Callable[[], OrderFacts] | None = None) -> tuple[str, ...]:
    """Every action (hidden ones too) a caller may ask for on an order: its row's actions.

    Without ``facts`` the state's default row answers (the paid flow's).
    """
    return row_for(state, facts).actions if facts is not None else _ROWS_OF[state][-1].actions


def allowed_actions(state: OrderState, facts: Callable[[], OrderFacts] | None = None) -> list[str]:
    """The actions a caller may ask for on an order in ``state``, hidden ones left out.

    Those of the row its ``facts`` pick (the default row's without them), in the table's order.
    """
    mine = actions_of(state, facts)
    return [a for a in _ACTION_ORDER if a in mine and a not in HIDDEN_ACTIONS]


def hint(
    state: OrderState,
    order_id: str,
    *,
    state_dir: str = "",
    facts: Callable[[], OrderFacts] | None = None,
) -> str:
    """What to do next with an order in ``state`` (the hint of the row its ``facts`` pick).

    ``state_dir``, when the journal is not the default one, is named in commands the hint gives
    (`` --state-dir DIR``), so a person can run them as written.
    """
    row = row_for(state, facts) if facts is not None else _ROWS_OF[state][-1]
    return row.hint.format(order_id=order_id, state_dir=state_dir)
