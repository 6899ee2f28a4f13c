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
    carry them; they are put back when the step ends. A part of a step (``broadcast`` inside
    ``settle``) names itself while it runs, and the step it is part of again after.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, list[tuple[str, contextvars.Token[Any], contextvars.Token[Any]]]] = {}

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """Nothing: the step names the order."""

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """Name the order and step in every log line until the step ends."""
        self._tokens.setdefault(order_id, []).append((step, ORDER_ID.set(order_id), STEP.set(step)))

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """Put the names back (those of the step this was a part of, if any)."""
        open_steps = self._tokens.get(order_id, [])
        if any(name == step for name, _, _ in open_steps):
            while open_steps and self._reset(order_id) != step:
                pass

    def event(self, event: Event) -> None:
        """Nothing."""

    def order_finished(self, order_id: str, state: str) -> None:
        """Put the names back (a step the loop never finished)."""
        while self._tokens.get(order_id):
            self._reset(order_id)
        self._tokens.pop(order_id, None)

    def _reset(self, order_id: str) -> str:
        """Undo the innermost step's names; its name."""
        open_steps = self._tokens[order_id]
        step, order_token, step_token = open_steps.pop()
        if not open_steps:
            del self._tokens[order_id]
        try:
            STEP.reset(step_token)
            ORDER_ID.reset(order_token)
        except ValueError:  # set in another task's context; that context ends with its task
            pass
        return step
