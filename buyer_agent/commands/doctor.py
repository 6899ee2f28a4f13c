"""``doctor [TASK.yaml]``: check, before going live, everything a run needs; PASS / WARN / FAIL each."""

from __future__ import annotations

import argparse
from typing import Any

from buyer_agent.commands._common import guarded, print_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``doctor`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check a task's setup before going live (read-only): keys, RPCs, balances, market, policy",
        description=(
            "Check, in order and without signing or ordering anything: the task file; the keys (their "
            "addresses shown, never a key); each RPC reachable and on the profile's chain; the gas "
            "balance for a payment; the token balance against the budget; the market reachable, the "
            "platform key or pairing token accepted and the pairing active; the delegation policy's "
            "limits against the budget; this clock against the market's Date header. Each check is "
            "PASS, WARN or FAIL with one line saying how to fix it."
        ),
        epilog=(
            "exit codes: 0 nothing failed (warnings allowed), 1 a check failed, "
            "2 the task file cannot be read"
        ),
    )
    parser.add_argument("task", metavar="TASK.yaml", nargs="?", default=None, help="the task file to check")
    parser.add_argument("--json", action="store_true", help="print the checks as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from buyer_agent.doctor import diagnose, exit_code
    from buyer_agent.doctor._report import render_check, render_totals

    if args.json:
        checks = diagnose(args.task)
        code = exit_code(checks)
        print_json({"ok": code == 0, "checks": [c.to_json() for c in checks]})
        return code
    # Each check is printed as soon as it is made: a slow node or market shows where the doctor is.
    checks = diagnose(args.task, on_check=lambda c: print(render_check(c), flush=True))
    print(render_totals(checks))
    return exit_code(checks)
