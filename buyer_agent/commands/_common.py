"""What the order commands share: the ``--state-dir`` flag, exit codes by state, one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from buyer_agent._errors import BuyerAgentError, OrchestrationConfigError, TaskFileError
from buyer_agent.workflow import OrderState, OrderSummary

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUNDED",
    "EXIT_USAGE",
    "add_state_dir",
    "exit_code",
    "guarded",
    "print_json",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUNDED = 3

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
    """One JSON document on stdout (Decimals as strings)."""
    print(json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False))


def guarded(body: Callable[[], int]) -> int:
    """Run a command body; any error becomes one line on stderr and an exit code, never a traceback."""
    try:
        return body()
    except (TaskFileError, OrchestrationConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BuyerAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): nothing is wrong with the work, stop writing quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the promise is: never a traceback on the command line
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: {type(exc).__name__}: {text}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILED
