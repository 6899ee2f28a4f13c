"""The dispatcher: one tool call from a model in, a JSON-safe answer or a structured error out.

The model proposes, the framework decides: arguments are checked against closed schemas, a step
is only run when the order's state allows it, a chosen quote must be one the eligibility guard
passed, and the budget, payee, amount, token and rail never come from the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from buyer_agent._errors import StateError
from buyer_agent._spans import tool_span
from buyer_agent._urls import same_market
from buyer_agent.tools._formats import tool_definitions
from buyer_agent.tools._guard import check_arguments
from buyer_agent.tools._results import error_from_exception, jsonable, tool_error, tools_for
from buyer_agent.tools._schemas import MAX_WAIT_S, TOOLS, tool_spec
from buyer_agent.workflow import TERMINAL, OrderState, OrderSummary, fold
from buyer_agent.workflow._table import actions_of, hint

if TYPE_CHECKING:
    from buyer_agent.agent import BuyerAgent

__all__ = ["AgentTools"]

log = logging.getLogger("buyer_agent.tools")
S = OrderState
_EMBEDDED = "embedded-sandbox"
#: ``wait_for``: its default bound, and how often it rereads an order another process moves.
_WAIT_DEFAULT_S = 30
_WAIT_POLL_S = 0.5
_REFUND_RETRY_S = 2.0
#: ``order_status`` of a disputed order asks the market this long at most whether it has refunded.
_STATUS_REFUND_CHECK_S = 2.0


class AgentTools:
    """The buyer's tools bound to one :class:`BuyerAgent` (``agent.call_tool`` uses one).

    Args:
        agent: The agent whose journal, market and configuration the tools use. Its ``spec``
            (the task's) supplies the budget, strategy, rail, acceptance and approval threshold.
    """

    def __init__(self, agent: BuyerAgent) -> None:
        self._agent = agent
        # Orders started through these tools: on the embedded sandbox only these can be driven,
        # since an earlier process's sandbox (and its orders) died with it.
        self._mine: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "search_market": self._search_market,
            "list_candidates": self._list_candidates,
            "choose_quote": self._choose_quote,
            "place_order": self._step_tool("order", self._agent.place_order),
            "pay_order": self._step_tool("pay", self._agent.pay),
            "adopt_payment": self._adopt_payment,
            "execute_order": self._step_tool("execute", self._agent.execute),
            "order_status": self._order_status,
            "wait_for": self._wait_for,
            "confirm_order": self._step_tool("confirm", self._agent.confirm),
            "dispute_order": self._dispute_order,
            "cancel_order": self._cancel_order,
            "list_orders": self._list_orders,
        }
        assert set(self._handlers) == {t.name for t in TOOLS}

    def definitions(self, format: str = "openai") -> list[dict[str, Any]]:
        """The tool definitions (see :func:`tool_definitions`)."""
        return tool_definitions(format)

    async def call(self, name: Any, arguments: Any = None) -> dict[str, Any]:
        """Run one tool call; always a JSON-safe dict, never an exception (cancellation aside).

        Args:
            name: The tool's name.
            arguments: A mapping, a JSON object as text (as OpenAI sends it), or None.
        """
        known = tool_spec(name) if isinstance(name, str) else None
        # A GenAI ``execute_tool`` span when tracing is on (an unknown name is not echoed into it).
        with tool_span(known.name if known is not None else "unknown") as span:
            out = await self._call(name, arguments)
            error = out.get("error")
            if isinstance(error, Mapping):
                span.fail(str(error.get("code") or "tool_error"))
            return out

    async def _call(self, name: Any, arguments: Any) -> dict[str, Any]:
        tool = str(name) if isinstance(name, str) else repr(name)
        try:
            spec = tool_spec(name) if isinstance(name, str) else None
            if spec is None:
                names = [t.name for t in TOOLS]
                return tool_error(
                    "UNKNOWN_TOOL",
                    f"there is no tool {tool[:80]!r}",
                    f"call one of: {', '.join(names)}",
                    tools=names,
                )
            args, refused = check_arguments(spec, arguments)
            if refused is not None:
                log.info("tool %s refused: %s", spec.name, refused["error"]["code"])
                return refused
            result = await self._handlers[spec.name](args)
            out: dict[str, Any] = jsonable(result)
            return out
        except (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError):
            raise
        except BaseException as exc:  # a tool error never raises into the loop (incl. PanicException)
            return error_from_exception(exc, tool)

    # --- guards ---------------------------------------------------------------------------------

    def _refuse_order(self, order_id: str, action: str) -> dict[str, Any] | None:
        """An error when ``order_id`` cannot take ``action`` here (unknown, other market, state)."""
        agent = self._agent
        summary = agent.order(order_id)  # JournalError for an unknown order → UNKNOWN_ORDER
        other = self._other_market(order_id)
        if other is not None:
            return tool_error(
                "OTHER_MARKET", other, "read it with order_status; start a new order with search_market",
                state=summary.state.value,
            )  # fmt: skip
        allowed = agent.allowed_actions(order_id)
        if action not in allowed:
            state = summary.state
            return tool_error(
                "STEP_OUT_OF_ORDER",
                f"cannot {action} order {order_id}: it is {state.value}",
                self._hint(state, order_id),
                state=state.value,
                allowed=tools_for(allowed),
            )
        return None

    def _other_market(self, order_id: str) -> str | None:
        """Why ``order_id`` cannot be driven from here (placed elsewhere), or None when it can."""
        if order_id in self._mine:
            return None
        placed = self._agent.order_market(order_id)
        if placed is None:
            return None
        here = self._agent.market_label
        if placed == _EMBEDDED:
            # Its market and chains lived in the process that placed it, and died with it.
            return (
                f"order {order_id} was placed on the embedded sandbox of an earlier process, whose market "
                "and chains ended with it; it can be read, not driven"
            )
        if same_market(placed, here):
            return None
        where = "this agent's embedded sandbox" if here == _EMBEDDED else here
        return f"order {order_id} was placed on {placed}, not on {where}"

    def _hint(self, state: OrderState, order_id: str) -> str:
        journal = getattr(self._agent.journal, "path", None)
        state_dir = f" --state-dir {self._agent.state_dir}" if journal not in (None, ":memory:") else ""
        # The order's facts pick its row's hint (a free order in ``ordered`` executes, it never pays).
        events = self._agent.journal.events
        return hint(state, order_id, state_dir=state_dir, facts=lambda: fold(events(order_id)))

    # --- results --------------------------------------------------------------------------------

    def _view(self, summary: OrderSummary) -> dict[str, Any]:
        # ``order_error`` (what stopped the order), not ``error``: a top-level ``error`` means the
        # call itself was refused.
        allowed = [] if summary.state in TERMINAL else self._agent.allowed_actions(summary.order_id)
        return {
            "order_id": summary.order_id,
            "state": summary.state.value,
            "market_order_id": summary.market_order_id,
            "quote": summary.quote,
            "payment": summary.payment,
            "outcome": summary.outcome,
            "order_error": summary.error,
            "next": tools_for(allowed),
            "hint": self._hint(summary.state, summary.order_id),
        }

    @staticmethod
    def _candidates(preview: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "candidates": [
                {
                    "quote_id": c.get("quote_id"),
                    "service_id": c.get("service_id"),
                    "price": c.get("price"),
                    "score": c.get("score"),
                    "eligible": c.get("eligible"),
                    "reasons": c.get("reasons"),
                }
                for c in preview.get("candidates") or ()
            ],
            "recommended": preview.get("recommended"),
            "strategy_reason": preview.get("reason"),
        }

    # --- tools ----------------------------------------------------------------------------------

    async def _search_market(self, args: dict[str, Any]) -> dict[str, Any]:
        agent = self._agent
        base = agent.spec
        if base is None:
            return tool_error(
                "NOT_CONFIGURED",
                "the agent has no order configuration (budget, strategy, rail)",
                "the operator must start the agent from a task file (BuyerAgent.from_task, mcp --task FILE)",
            )
        overrides: dict[str, Any] = {k: args[k] for k in ("service_type", "operation", "region") if k in args}
        if "input" in args:
            overrides["input"] = dict(args["input"])
        if "capabilities" in args:
            overrides["capabilities"] = tuple(args["capabilities"])
        order_id = await agent.submit(replace(base, **overrides))
        self._mine.add(order_id)
        summary = await agent.pair(order_id)
        if summary.state is not S.PAIRED:
            error = dict(summary.error or {})
            await self._abandon(order_id, "pairing failed")
            return tool_error(
                "MARKET_ERROR",
                f"could not pair with the market: {error.get('message') or summary.state.value}",
                "retry search_market later",
                market_code=error.get("code"),
                order_id=order_id,
            )
        try:
            summary = await agent.search(order_id)
        except Exception:
            # The abandoned order must not be bought later by a resume.
            await self._abandon(order_id, "the search failed")
            raise
        if summary.state is not S.SEARCHED:
            return self._view(summary)
        preview = await agent.candidates(order_id)
        return {**self._view(summary), **self._candidates(preview)}

    async def _abandon(self, order_id: str, reason: str) -> None:
        try:
            if self._agent.order(order_id).state not in TERMINAL:
                await self._agent.cancel(order_id, reason)
        except Exception:
            log.warning("could not cancel the abandoned order %s", order_id, exc_info=True)

    async def _list_candidates(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = str(args["order_id"])
        summary = self._agent.order(order_id)
        head = {"order_id": order_id, "state": summary.state.value}
        if summary.state is S.SEARCHED:
            refused = self._refuse_order(order_id, "choose")
            if refused is not None:
                return refused
            preview = await self._agent.candidates(order_id)
            return {
                **head,
                **self._candidates(preview),
                "next": ["choose_quote", "cancel_order", "order_status"],
            }
        if summary.candidates:
            chosen = (summary.quote or {}).get("quote_id")
            # The recorded decision line: the strategy's, or "chosen by the caller: …" for a pick by quote id.
            reason = fold(self._agent.journal.events(order_id)).decision_reason
            listed = self._candidates(
                {"candidates": summary.candidates, "recommended": chosen, "reason": reason}
            )
            return {**head, **listed, "chosen": chosen, "next": self._view(summary)["next"]}
        return {
            **head,
            "candidates": [],
            "recommended": None,
            "hint": self._hint(summary.state, order_id),
        }

    async def _choose_quote(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = str(args["order_id"])
        refused = self._refuse_order(order_id, "choose")
        if refused is not None:
            return refused
        quote_id = args.get("quote_id")
        if quote_id is not None:
            preview = await self._agent.candidates(order_id)
            cands = {str(c.get("quote_id")): c for c in preview.get("candidates") or ()}
            eligible = [q for q, c in cands.items() if c.get("eligible")]
            if quote_id not in eligible:
                known = cands.get(str(quote_id))
                why = "; ".join(known.get("reasons") or ()) if known else "no quote of this order has that id"
                return tool_error(
                    "NOT_ELIGIBLE",
                    f"quote {str(quote_id)[:128]!r} is not eligible: {why}",
                    "choose one of the eligible quote ids, or leave quote_id out to take the recommendation",
                    eligible=eligible,
                    recommended=preview.get("recommended"),
                )
        summary = await self._agent.choose(order_id, quote_id)
        return self._view(summary)

    def _step_tool(
        self, action: str, run: Callable[[str], Awaitable[OrderSummary]]
    ) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def handler(args: dict[str, Any]) -> dict[str, Any]:
            order_id = str(args["order_id"])
            refused = self._refuse_order(order_id, action)
            if refused is not None:
                return refused
            return self._view(await run(order_id))

        return handler

    async def _order_status(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = str(args["order_id"])
        if self._agent.order(order_id).state is S.DISPUTED:
            # A refund arrives at the market, not in the journal: ask it once, briefly.
            await self._check_refund(order_id, _STATUS_REFUND_CHECK_S)
        return self._view(self._agent.order(order_id))

    async def _wait_for(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = str(args["order_id"])
        want = OrderState(str(args["state"]))
        bound = float(min(int(args.get("timeout_s", _WAIT_DEFAULT_S)), MAX_WAIT_S))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while True:
            summary = self._agent.order(order_id)
            left = deadline - loop.time()
            if summary.state is want or summary.state in TERMINAL or left <= 0:
                break
            if summary.state is S.DISPUTED:
                await self._check_refund(order_id, left)
                left = deadline - loop.time()
                if self._agent.order(order_id).state is S.DISPUTED and left > 0:
                    # The refund step gave up (its own deadline passed): ask again a little later.
                    await asyncio.sleep(min(_REFUND_RETRY_S, left))
            else:  # another process (a person's approve, a resume) moves it: read the journal again
                await asyncio.sleep(min(_WAIT_POLL_S, left))
        summary = self._agent.order(order_id)
        reached = summary.state is want
        out = {**self._view(summary), "reached": reached, "waited_for": want.value}
        if not reached:
            out["hint"] = (
                f"the order is {summary.state.value}, not {want.value}"
                + ("" if summary.state in TERMINAL else f", after {bound:g} s; call wait_for again later")
                + f"; {out['hint']}"
            )
        return out

    async def _check_refund(self, order_id: str, seconds: float) -> None:
        """Ask the market, for at most ``seconds``, whether a disputed order's refund has arrived."""
        if self._other_market(order_id) is not None:
            return  # read-only here: its market is elsewhere
        # Driving a disputed order only polls the market's payment until it is refunded (a read,
        # then one journaled move): safe to stop at any await.
        with contextlib.suppress(TimeoutError, StateError):  # StateError: another process drives it
            await asyncio.wait_for(self._agent.drive(order_id), timeout=max(seconds, 0.01))

    async def _adopt_payment(self, args: dict[str, Any]) -> dict[str, Any]:
        # A person's action (never offered among the next steps): the operator paid, the model relays
        # the hash; the chain, not the model, says whether it pays this order (amount, payee, token).
        order_id = str(args["order_id"])
        summary = self._agent.order(order_id)
        other = self._other_market(order_id)
        if other is not None:
            return tool_error("OTHER_MARKET", other, "read it with order_status", state=summary.state.value)
        if "adopt" not in actions_of(summary.state, lambda: fold(self._agent.journal.events(order_id))):
            return tool_error(
                "STEP_OUT_OF_ORDER",
                f"cannot adopt a payment for order {order_id}: it is {summary.state.value} (only a placed, "
                "unpaid order on a wallet or escrow rail takes one)",
                self._hint(summary.state, order_id),
                state=summary.state.value,
                allowed=tools_for(self._agent.allowed_actions(order_id)),
            )
        return self._view(await self._agent.adopt_payment(order_id, str(args["tx_hash"])))

    async def _dispute_order(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = str(args["order_id"])
        refused = self._refuse_order(order_id, "dispute")
        if refused is not None:
            return refused
        return self._view(await self._agent.dispute(order_id, str(args["reason"])))

    async def _cancel_order(self, args: dict[str, Any]) -> dict[str, Any]:
        order_id = str(args["order_id"])
        refused = self._refuse_order(order_id, "cancel")
        if refused is not None:
            return refused
        reason = str(args.get("reason") or "cancelled by the model")
        return self._view(await self._agent.cancel(order_id, reason))

    async def _list_orders(self, args: dict[str, Any]) -> dict[str, Any]:
        limit = int(args.get("limit", 20))
        orders = self._agent.orders(args.get("state"))
        newest = list(reversed(orders))[:limit]
        return {
            "orders": [
                {
                    "order_id": o.order_id,
                    "state": o.state.value,
                    "quote": o.quote,
                    "payment": o.payment,
                    "updated_at": o.updated_at,
                }
                for o in newest
            ],
            "count": len(newest),
            "total": len(orders),
        }
