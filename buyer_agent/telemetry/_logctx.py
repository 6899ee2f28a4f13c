"""LogContextObserver: log lines written while a step runs name its order and step (JSON logs)."""

from __future__ import annotations

import contextvars
from typing import Any

from buyer_agent._logformat import ORDER_ID, STEP
from buyer_agent.journal import Event

__all__ = ["LogContextObserver"]


class LogContextObserver:
    """Sets :data:`buyer_agent._logformat.ORDER_ID` / ``STEP`` around each step (a :class:`DriveObserver`).

    The variables are set in the drive loop's own context, so only the lines of that order's task
    carry them; they are put back when the step ends.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[contextvars.Token[Any], contextvars.Token[Any]]] = {}

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """Nothing: the step names the order."""

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """Name the order and step in every log line until the step ends."""
        self._reset(order_id)
        self._tokens[order_id] = (ORDER_ID.set(order_id), STEP.set(step))

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """Put the names back."""
        self._reset(order_id)

    def event(self, event: Event) -> None:
        """Nothing."""

    def order_finished(self, order_id: str, state: str) -> None:
        """Put the names back (a step the loop never finished)."""
        self._reset(order_id)

    def _reset(self, order_id: str) -> None:
        tokens = self._tokens.pop(order_id, None)
        if tokens is None:
            return
        try:
            STEP.reset(tokens[1])
            ORDER_ID.reset(tokens[0])
        except ValueError:  # set in another task's context; that context ends with its task
            pass
