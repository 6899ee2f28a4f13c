"""Waits said out loud: every retry pause and every slow answer is a line on ``buyer_agent.wait``.

A run that waits must never look like a run that hangs. The market client, its retries and the
runner report each wait here (what it waits for, which attempt, when the next try comes); the
command line shows these lines on stderr at its default verbosity (:func:`show_waits`), a library
user sees them through ordinary logging at ``INFO``.

Repeated reports of one wait (a poll every 0.1 s) are thinned to one line per :data:`EVERY_S`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from typing import IO

from buyer_agent._logformat import JsonFormatter

__all__ = [
    "ATTEMPT",
    "EVERY_S",
    "SLOW_ANSWER_S",
    "WAIT_LOGGER",
    "SlowAnswer",
    "report_wait",
    "show_waits",
]

WAIT_LOGGER = "buyer_agent.wait"
#: A request without an answer after this many seconds is reported (then every :data:`EVERY_S`).
SLOW_ANSWER_S = 2.0
#: At most one line per this many seconds for one repeated wait.
EVERY_S = 5.0

log = logging.getLogger(WAIT_LOGGER)
#: The try of the request being sent (set by the retry loop; 1 = the first).
ATTEMPT: contextvars.ContextVar[int | None] = contextvars.ContextVar("buyer_agent_attempt", default=None)
_last: dict[str, float] = {}
_MAX_TRACKED = 1024


def report_wait(
    what: str,
    *,
    attempt: int | None = None,
    of: int | None = None,
    next_in_s: float | None = None,
    because: str | None = None,
    every_s: float | None = None,
) -> None:
    """One line: ``waiting for WHAT (attempt N of M): BECAUSE; next try in S s``.

    Args:
        what: What is waited for, e.g. ``the market's answer to POST /market/orders``.
        attempt: Which try this is (1 = the first).
        of: How many tries there are at most, when known.
        next_in_s: Seconds until the next try, when one is scheduled.
        because: Why the last try did not do (an error's text).
        every_s: Thin repeats of this ``what`` to one per that many seconds (first and last always show
            when they are far enough apart); None reports every call.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    if every_s is not None:
        now = time.monotonic()
        last = _last.get(what)
        if last is not None and now - last < every_s:
            return
        if len(_last) >= _MAX_TRACKED:
            _last.clear()
        _last[what] = now
    text = f"waiting for {what}"
    if attempt is not None:
        text += f" (attempt {attempt}" + (f" of {of}" if of else "") + ")"
    if because:
        text += f": {because}"
    if next_in_s is not None:
        text += f"; next try in {next_in_s:.1f} s"
    log.info("%s", text)


def show_waits(stream: IO[str] | None = None, *, fmt: str = "text") -> logging.Handler:
    """Print wait lines on ``stream`` (stderr), whatever the root logger's level.

    Args:
        stream: Where to write; ``sys.stderr`` by default.
        fmt: ``text``: ``wait: …`` lines; ``json``: one JSON log object per wait
            (:class:`buyer_agent._logformat.JsonFormatter`).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("wait: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


class SlowAnswer:
    """Reports a request still without an answer after :data:`SLOW_ANSWER_S`, then every :data:`EVERY_S`.

    Timer callbacks on the running loop (no task per request); :meth:`done` cancels them.
    """

    __slots__ = ("_attempt", "_handle", "_limit_s", "_loop", "_started", "_what")

    def __init__(self, what: str, limit_s: float, first_s: float = SLOW_ANSWER_S) -> None:
        self._what = what
        self._limit_s = limit_s
        self._attempt = ATTEMPT.get()
        self._handle: asyncio.TimerHandle | None = None
        if not log.isEnabledFor(logging.INFO):
            return
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._handle = self._loop.call_later(first_s, self._tick)

    def _tick(self) -> None:
        elapsed = self._loop.time() - self._started
        report_wait(
            self._what,
            attempt=self._attempt,
            because=f"no answer after {elapsed:.0f} s (this try gives up at {self._limit_s:g} s)",
        )
        self._handle = self._loop.call_later(EVERY_S, self._tick)

    def done(self) -> None:
        """The answer came (or the request failed): no more reports."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
