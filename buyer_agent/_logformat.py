"""Log lines on stderr as text (the default) or one JSON object each (``--log-format json``).

In JSON mode every line the command line writes on stderr is one object
``{"time", "level", "logger", "order_id", "step", "message", "fields"}``: log records (through
:class:`JsonFormatter`), the ``wait:`` lines, the ``error:`` lines and the progress lines. A line
printed as plain text anywhere else is turned into such an object on its way out
(:class:`JsonLines`), so a log collector never meets a line it cannot parse. ``fields`` go through
:func:`buyer_agent._redact.redact`, the one rule for secrets.

The order and step a line belongs to come from the record's ``order_id`` / ``step`` extras, else
from :data:`ORDER_ID` / :data:`STEP`, which the drive loop's log observer sets around each step.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from buyer_agent._redact import redact

__all__ = [
    "LOG_FORMATS",
    "ORDER_ID",
    "STEP",
    "JsonFormatter",
    "JsonLines",
    "configure_logging",
    "json_line",
    "log_format",
    "say",
]

#: The values ``--log-format`` takes.
LOG_FORMATS = ("text", "json")
#: The order the current code works on (set by the drive loop's log observer).
ORDER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("buyer_agent_log_order", default=None)
#: The step the current code runs (``pay``, ``execute``, …).
STEP: contextvars.ContextVar[str | None] = contextvars.ContextVar("buyer_agent_log_step", default=None)

_format = "text"

# Attributes every LogRecord has; anything else on a record came in through ``extra=`` (fields).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def log_format() -> str:
    """``text`` or ``json``: how this process writes its stderr lines."""
    return _format


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_line(
    message: str,
    *,
    level: str = "info",
    logger: str = "buyer_agent",
    order_id: str | None = None,
    step: str | None = None,
    fields: Mapping[str, Any] | None = None,
    time: str | None = None,
) -> str:
    """One log object as a JSON line (no newline); ``fields`` are redacted."""
    doc = {
        "time": time or _now(),
        "level": level,
        "logger": logger,
        "order_id": order_id if order_id is not None else ORDER_ID.get(),
        "step": step if step is not None else STEP.get(),
        "message": message,
        "fields": redact(dict(fields or {})),
    }
    return json.dumps(doc, ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """Formats a log record as one JSON object (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line; extras become ``fields`` (redacted), an exception its type and text."""
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        order_id = extras.pop("order_id", None)
        step = extras.pop("step", None)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            extras["exception"] = {"type": type(exc).__name__, "message": str(exc)}
        return json_line(
            record.getMessage(),
            level=record.levelname.lower(),
            logger=record.name,
            order_id=None if order_id is None else str(order_id),
            step=None if step is None else str(step),
            fields=extras,
            time=datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        )


class JsonLines(io.TextIOBase):
    """A text stream that writes each line it is given as a JSON log object on ``raw``.

    A line that already is a JSON object passes as it is; ``error: X`` becomes an ``error`` object
    with the message ``X``; anything else an ``info`` object.
    """

    def __init__(self, raw: IO[str]) -> None:
        super().__init__()
        self.raw = raw
        self._pending = ""

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, text: str) -> int:
        """Buffer ``text``; write each completed line as a JSON object."""
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        """Flush the underlying stream (a partial line waits for its newline)."""
        self.raw.flush()

    def isatty(self) -> bool:
        """False: JSON lines are never coloured."""
        return False

    def close_pending(self) -> None:
        """Write a last line that never got its newline."""
        if self._pending:
            line, self._pending = self._pending, ""
            self._emit(line)

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        if line.startswith("{") and line.endswith("}"):
            self.raw.write(line + "\n")
        elif line.startswith("error: "):
            self.raw.write(json_line(line[len("error: ") :], level="error", logger="buyer_agent.cli") + "\n")
        elif ": error: " in line:  # argparse's usage error: ``buyer-agent run: error: …``
            self.raw.write(json_line(line, level="error", logger="buyer_agent.cli") + "\n")
        else:
            self.raw.write(json_line(line, logger="buyer_agent.cli") + "\n")
        self.raw.flush()


def say(message: str, *, level: str = "info", fields: Mapping[str, Any] | None = None) -> None:
    """One line for people on stderr: ``message`` as it is in text mode, a JSON object in JSON mode.

    ``error`` lines read ``error: message`` in text mode.
    """
    if _format == "json":
        print(json_line(message, level=level, logger="buyer_agent.cli", fields=fields), file=sys.stderr)
    else:
        print(f"error: {message}" if level == "error" else message, file=sys.stderr)


def configure_logging(fmt: str = "text", *, verbose: bool = False) -> Callable[[], None]:
    """Set up the root logger and stderr for ``fmt``; returns the function that undoes it.

    Text: ``LEVEL name: message`` (the format the command line always had). JSON: one object per
    line for every log record, and :class:`JsonLines` in place of ``sys.stderr`` for everything
    printed there.
    """
    global _format
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    _format = fmt
    level = logging.DEBUG if verbose else logging.WARNING
    if fmt == "text":
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")

        def undo_text() -> None:
            global _format
            _format = "text"

        return undo_text
    raw = sys.stderr
    handler = logging.StreamHandler(raw)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    wrapper = JsonLines(raw)
    sys.stderr = wrapper

    def undo() -> None:
        global _format
        wrapper.close_pending()
        if sys.stderr is wrapper:
            sys.stderr = raw
        root.removeHandler(handler)
        _format = "text"

    return undo
