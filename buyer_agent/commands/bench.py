"""``bench [--quick] [--json]``: measure overhead, journal, replay, resume and concurrency side by side."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from buyer_agent.commands._common import guarded, print_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``bench`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run the benchmarks (the figures in BENCHMARKS.md)",
        description=(
            "Measure, side by side in one run on a local sandbox served by a separate process: "
            "per-order overhead (BuyerAgent vs the same calls made raw), journal commits vs raw "
            "SQLite, replay speed over a synthetic journal, resume of interrupted orders vs reading "
            "their journals, and orders/s at several levels in flight vs the sandbox alone. "
            "Prints a table (progress on stderr)."
        ),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="the same measurements at a size that runs in about a minute"
    )
    # Minimal sizes for the test suite's shape check; the figures mean nothing at this size.
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from buyer_agent.bench import FULL, QUICK, TINY, run_benchmarks

    sizes = TINY if args.tiny else QUICK if args.quick else FULL

    def progress(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    report = run_benchmarks(sizes, progress)
    if args.json:
        print_json(report.to_json())
    else:
        print(report.table())
    return 0
