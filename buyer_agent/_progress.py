"""Progress lines on stderr: one line per state change with its timing (rich on a TTY, else plain)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import IO, Any

from buyer_agent._logformat import json_line, log_format
from buyer_agent.workflow import TERMINAL, OrderState, ProgressEvent

__all__ = ["format_progress", "progress_printer"]

_GOOD = frozenset({OrderState.CONFIRMED, OrderState.HANDED_OFF})
_BAD = frozenset({OrderState.FAILED, OrderState.CANCELLED, OrderState.DISPUTED, OrderState.REFUNDED})


def format_progress(event: ProgressEvent) -> str:
    """``[  1.23s] ord_…  searched → quoted  (choose)``: one plain line."""
    previous = event.previous.value if event.previous is not None else "-"
    return f"[{event.elapsed_s:7.2f}s] {event.order_id}  {previous} → {event.state.value}" + (
        f"  ({event.detail})" if event.detail else ""
    )


def _style(state: OrderState) -> str:
    if state in _GOOD:
        return "bold green"
    if state in _BAD:
        return "bold red"
    return "bold" if state in TERMINAL else "cyan"


def progress_printer(
    stream: IO[str] | None = None, *, rich: bool | None = None
) -> Callable[[ProgressEvent], None]:
    """A ``on_progress`` callback writing one line per state change to ``stream`` (stderr).

    Args:
        stream: Where to write; ``sys.stderr`` by default.
        rich: Colour with ``rich`` (when installed); default: when the stream is a TTY.
    """
    out = stream if stream is not None else sys.stderr
    use_rich = (out.isatty() and log_format() == "text") if rich is None else rich
    console: Any = None
    if use_rich:
        try:  # optional: rich is never a hard dependency
            rich_console: Any = importlib.import_module("rich.console")
        except ImportError:
            console = None
        else:
            console = rich_console.Console(file=out, highlight=False)

    def emit(event: ProgressEvent) -> None:
        if log_format() == "json":
            previous = event.previous.value if event.previous is not None else None
            fields = {
                "previous": previous,
                "state": event.state.value,
                "elapsed_s": round(event.elapsed_s, 3),
                "detail": event.detail or None,
            }
            text = f"{previous or '-'} → {event.state.value}"
            step = event.detail or None
            line = json_line(
                text, logger="buyer_agent.progress", order_id=event.order_id, step=step, fields=fields
            )
            print(line, file=out, flush=True)
        elif console is not None:
            previous = event.previous.value if event.previous is not None else "-"
            console.print(
                f"[dim]{event.elapsed_s:7.2f}s[/dim] {event.order_id}  {previous} → "
                f"[{_style(event.state)}]{event.state.value}[/]"
                + (f"  [dim]({event.detail})[/dim]" if event.detail else "")
            )
        else:
            print(format_progress(event), file=out, flush=True)

    return emit
