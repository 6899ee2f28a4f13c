"""What a tool call returns: JSON-safe results and the structured errors a model can recover from."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from buyer_agent._errors import (
    BudgetExceeded,
    BuyerAgentError,
    JournalError,
    OrchestrationApiError,
    OrchestrationConfigError,
    OrchestrationNetworkError,
    OrchestrationValidationError,
    PolicyError,
    RailError,
    StateError,
    TaskFileError,
)
from buyer_agent._money import Money
from buyer_agent._redact import Secret, redact

__all__ = ["ERROR_CODES", "STEP_TOOLS", "error_from_exception", "jsonable", "tool_error", "tools_for"]

log = logging.getLogger("buyer_agent.tools")

#: Every ``error.code`` a tool call can return, with what it means.
ERROR_CODES: dict[str, str] = {
    "UNKNOWN_TOOL": "no tool by that name; error.tools lists them",
    "INVALID_ARGUMENTS": "the arguments break the tool's schema (error.field names where)",
    "ARGUMENT_REFUSED": "an argument the model may not set (amounts, payees, tokens, rails, extra keys)",
    "NOT_ELIGIBLE": "the quote is not one of the order's eligible quotes (error.eligible lists them)",
    "STEP_OUT_OF_ORDER": "the order's state does not allow this step (error.state, error.allowed)",
    "UNKNOWN_ORDER": "no order with that id in the journal",
    "OTHER_MARKET": "the order was placed on another market; it can be read, not driven, here",
    "ORDER_BUSY": "another process is driving the order; try again shortly",
    "NOT_CONFIGURED": "the agent lacks configuration (a task with a budget, keys, a market)",
    "POLICY_REFUSED": "the delegation policy or a guard refused",
    "BUDGET_EXCEEDED": "the amount would exceed the budget, a per-transaction or the daily limit",
    "MARKET_ERROR": "the market answered with an error (error.market_code)",
    "MARKET_UNREACHABLE": "the market did not answer; retry later",
    "PAYMENT_ERROR": "a payment rail or chain failed",
    "FRAMEWORK_ERROR": "another framework error",
    "INTERNAL_ERROR": "an unexpected error; it was logged",
}

#: Which tool runs which workflow step action (steps without a tool are not the model's to take).
STEP_TOOLS: dict[str, str] = {
    "choose": "choose_quote",
    "order": "place_order",
    "pay": "pay_order",
    "execute": "execute_order",
    "confirm": "confirm_order",
    "dispute": "dispute_order",
    "cancel": "cancel_order",
}


def tools_for(actions: list[str]) -> list[str]:
    """The tools a model may call next, given the workflow's allowed actions (status always)."""
    tools = [STEP_TOOLS[a] for a in actions if a in STEP_TOOLS]
    return [*tools, "order_status"]


def tool_error(code: str, message: str, hint: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {"code", "message", "hint", ...}}`` — what the model reads instead of an exception."""
    assert code in ERROR_CODES, code
    return {"error": {"code": code, "message": message, "hint": hint, **jsonable(extra)}}


def _text(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def error_from_exception(exc: BaseException, tool: str) -> dict[str, Any]:
    """The structured error for an exception raised while running ``tool`` (never re-raised)."""
    if isinstance(exc, StateError):
        if not exc.allowed and "another process" in exc.message:
            return tool_error("ORDER_BUSY", exc.message, "call order_status in a moment", retryable=True)
        return tool_error(
            "STEP_OUT_OF_ORDER",
            exc.message,
            "call one of the allowed tools (order_status shows where the order stands)",
            state=exc.state,
            allowed=tools_for(exc.allowed),
        )
    if isinstance(exc, BudgetExceeded):
        return tool_error("BUDGET_EXCEEDED", exc.message, "the budget is fixed by configuration; stop")
    if isinstance(exc, PolicyError):
        return tool_error("POLICY_REFUSED", exc.message, "pick another quote or stop", rule=exc.rule)
    if isinstance(exc, TaskFileError | OrchestrationConfigError):
        return tool_error("NOT_CONFIGURED", exc.message, "the agent's operator must fix its configuration")
    if isinstance(exc, OrchestrationValidationError):
        return tool_error("INVALID_ARGUMENTS", exc.message, "fix the argument and retry", field=exc.field)
    if isinstance(exc, OrchestrationApiError):
        return tool_error(
            "MARKET_ERROR",
            exc.message,
            "retry later" if exc.retryable else "this request will not succeed as is",
            market_code=exc.code,
            retryable=exc.retryable,
        )
    if isinstance(exc, OrchestrationNetworkError):
        return tool_error("MARKET_UNREACHABLE", exc.message, "retry in a moment", retryable=True)
    if isinstance(exc, RailError):
        return tool_error(
            "PAYMENT_ERROR",
            exc.message,
            "call order_status; a payment is never signed twice",
            retryable=exc.retryable,
        )
    if isinstance(exc, JournalError):
        if exc.message.startswith("no order "):
            return tool_error(
                "UNKNOWN_ORDER", exc.message, "use an order_id from search_market or list_orders"
            )
        return tool_error("FRAMEWORK_ERROR", exc.message, "stop and report the error")
    if isinstance(exc, BuyerAgentError):
        return tool_error(
            "FRAMEWORK_ERROR", exc.message, "stop and report the error", retryable=exc.retryable
        )
    log.error("tool %s raised %s", tool, type(exc).__name__, exc_info=exc)
    return tool_error(
        "INTERNAL_ERROR",
        f"{type(exc).__name__}: {_text(exc)}"[:500],
        "stop and report the error; it was logged",
    )


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: Decimals and Money as strings, secrets redacted, tuples as lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # Never produced by the framework; kept readable rather than lossy.
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in redact(dict(value)).items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    to_json = getattr(value, "to_json", None)
    if callable(to_json) and is_dataclass(value):
        return jsonable(to_json())
    return str(value)
