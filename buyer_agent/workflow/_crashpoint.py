"""Crash points for tests: stop the process right after a chosen journal event commits."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from buyer_agent.journal import Event

__all__ = ["CRASH_ENV", "Crash", "crash_after", "crash_hook_from_env"]

#: ``BUYER_AGENT_CRASH_AFTER=<trigger>`` or ``<trigger>#<n>`` (the n-th such event of the process),
#: or ``seq:<n>`` — the process SIGKILLs itself right after that event is committed.
CRASH_ENV = "BUYER_AGENT_CRASH_AFTER"


class Crash(BaseException):
    """A simulated crash: a BaseException so no ``except Exception`` in the runner swallows it."""


def _matcher(spec: str) -> Callable[[Event], bool]:
    if spec.startswith("seq:"):
        seq = int(spec[4:])
        return lambda ev: ev.seq == seq
    trigger, _, nth = spec.partition("#")
    wanted = int(nth) if nth else 1
    seen = [0]

    def match(ev: Event) -> bool:
        if ev.trigger != trigger:
            return False
        seen[0] += 1
        return seen[0] == wanted

    return match


def crash_after(spec: str, *, kill: bool = False) -> Callable[[Event], None]:
    """A hook that crashes right after the event ``spec`` names is journaled.

    Args:
        spec: ``<trigger>``, ``<trigger>#<n>`` or ``seq:<n>``.
        kill: SIGKILL the process (a real crash) instead of raising :class:`Crash`.
    """
    match = _matcher(spec)

    def hook(ev: Event) -> None:
        if match(ev):
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Crash(f"crash after event {ev.seq} ({ev.trigger})")

    return hook


def crash_hook_from_env() -> Callable[[Event], None] | None:
    """The SIGKILL hook ``$BUYER_AGENT_CRASH_AFTER`` asks for, or None."""
    spec = os.environ.get(CRASH_ENV)
    return crash_after(spec, kill=True) if spec else None
