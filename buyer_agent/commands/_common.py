"""What every sub-command shares: the ``--state-dir`` flag, opening its journal, exit codes, output.

The one place for the command line's contracts: the exit codes (0 confirmed, 1 failed, 2 bad usage
or bad task file, 3 disputed or refunded), the ``--state-dir`` flag, the "no journal in …" error
and the one-line error every failure becomes instead of a traceback (:func:`guarded`, which
``cli.main`` wraps around every command).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from buyer_agent._errors import BuyerAgentError, JournalError, OrchestrationConfigError, TaskFileError
from buyer_agent._json import dumps as exact_dumps
from buyer_agent._logformat import say
from buyer_agent.journal import DB_NAME, Journal, resolve_state_dir
from buyer_agent.workflow import OrderState, OrderSummary

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUNDED",
    "EXIT_USAGE",
    "add_state_dir",
    "dump_json",
    "exit_code",
    "guarded",
    "open_state_journal",
    "print_json",
    "require_journal",
    "strategy_arg",
    "worst",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUNDED = 3
#: Stopped by Ctrl-C (the shell's convention, 128 + SIGINT).
EXIT_INTERRUPTED = 130

_CODES = {
    OrderState.CONFIRMED: EXIT_OK,
    # A handoff is the market taking execution to an external flow, not a failure of the agent.
    OrderState.HANDED_OFF: EXIT_OK,
    OrderState.DISPUTED: EXIT_REFUNDED,
    OrderState.REFUNDED: EXIT_REFUNDED,
}

EXIT_CODES_HELP = (
    "exit codes: 0 confirmed (or handed off to an external flow), 1 failed or stopped, "
    "2 bad usage or bad task file, 3 disputed or refunded"
)


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--state-dir`` flag every command takes."""
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="where the journal lives (default: $BUYER_AGENT_STATE_DIR, else ./state)",
    )


def require_journal(state_dir: str | Path | None) -> Path:
    """The state directory (``--state-dir`` > ``$BUYER_AGENT_STATE_DIR`` > ``./state``), if it has a journal.

    Raises:
        JournalError: There is no journal there (looking creates none).
    """
    directory = resolve_state_dir(state_dir)
    if not (directory / DB_NAME).exists():
        raise JournalError(f"no journal in {directory} (give --state-dir or set $BUYER_AGENT_STATE_DIR)")
    return directory


@contextmanager
def open_state_journal(state_dir: str | Path | None, *, create: bool = False) -> Iterator[Journal]:
    """The journal of a state directory (closed afterwards).

    Raises:
        JournalError: No journal there and ``create`` is False.
    """
    directory = resolve_state_dir(state_dir) if create else require_journal(state_dir)
    journal = Journal.open_dir(directory)
    try:
        yield journal
    finally:
        journal.close()


def strategy_arg(text: str | None) -> str | dict[str, Any] | None:
    """A ``--strategy`` value: a name, or its JSON form ``{"name": …, "params": {…}}`` (numbers exact).

    ``run`` and ``replay`` take the same forms. The strategy itself is checked where it is used.

    Raises:
        TaskFileError: The JSON form is not valid JSON, or not an object (a usage error, exit 2).
    """
    if text is None or not text.lstrip().startswith("{"):
        return text
    try:
        value = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise TaskFileError("--strategy", f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TaskFileError("--strategy", "must be a name or a JSON object {name, params}")
    return value


def exit_code(summary: OrderSummary) -> int:
    """0 confirmed / handed off, 3 disputed or refunded, 1 anything else (failed, cancelled, stopped)."""
    return _CODES.get(summary.state, EXIT_FAILED)


def worst(codes: list[int]) -> int:
    """One exit code for many orders: failed beats disputed beats confirmed."""
    for code in (EXIT_FAILED, EXIT_REFUNDED):
        if code in codes:
            return code
    return EXIT_OK


def print_json(value: Any) -> None:
    """One JSON document on stdout (a Decimal is an exact number; other non-JSON values are text)."""
    print(exact_dumps(value, indent=2, default=str))


def dump_json(value: Any, out: str | None = None) -> None:
    """Write ``value`` as JSON to ``out`` (a path) or stdout (None or ``-``)."""
    text = exact_dumps(value, indent=2, default=str) + "\n"
    if out is None or out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    Path(out).write_text(text, encoding="utf-8")


def guarded(body: Callable[[], int]) -> int:
    """Run a command body; any error becomes one line on stderr and an exit code, never a traceback.

    2 for bad usage, a bad task file or configuration; 1 for any other failure; 130 on Ctrl-C; 0 when
    the reader of stdout went away (``| head``).
    """
    try:
        return body()
    except (TaskFileError, OrchestrationConfigError) as exc:
        say(str(exc), level="error", fields={"exit_code": EXIT_USAGE, "error_type": type(exc).__name__})
        return EXIT_USAGE
    except BuyerAgentError as exc:
        say(str(exc), level="error", fields={"exit_code": EXIT_FAILED, "error_type": type(exc).__name__})
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted", level="warning", fields={"exit_code": EXIT_INTERRUPTED})
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): nothing is wrong with the work, stop writing quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the promise is: never a traceback on the command line
        text = str(exc).splitlines()[0] if str(exc) else ""
        fields = {"exit_code": EXIT_FAILED, "error_type": type(exc).__name__}
        say(f"{type(exc).__name__}: {text}".rstrip(": "), level="error", fields=fields)
        return EXIT_FAILED
