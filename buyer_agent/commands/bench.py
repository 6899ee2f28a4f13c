"""``bench [--quick] [--json]``: measure overhead, journal, replay, resume and concurrency side by side."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from buyer_agent.commands._common import EXIT_OK, EXIT_USAGE, guarded, print_json

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
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="also measure a fleet on this PostgreSQL store: orders/s with 1, 2 and 4 worker processes, "
        "and one worker on SQLite, each as a ratio to one PostgreSQL worker (bench orders are left in "
        "the store; give it a database of its own)",
    )
    parser.add_argument(
        "--in-flight",
        metavar="N,N,...",
        default=None,
        help="override the concurrency levels (default 1,10,100,1000; --quick 1,10,20)",
    )
    parser.add_argument(
        "--resume-orders",
        metavar="N",
        type=int,
        default=None,
        help="override how many interrupted orders are resumed (default 1000; --quick 20)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from buyer_agent.bench import FULL, QUICK, TINY, run_benchmarks

    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    if args.store is not None and not args.store.startswith(("postgresql://", "postgres://")):
        print(f"error: --store: give a postgresql:// URL, not {args.store!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.in_flight or args.resume_orders:
        try:
            levels = tuple(int(n) for n in args.in_flight.split(",")) if args.in_flight else sizes.in_flight
        except ValueError:
            print(f"error: --in-flight: not a list of integers: {args.in_flight!r}", file=sys.stderr)
            return EXIT_USAGE
        if any(n < 1 for n in levels) or (args.resume_orders is not None and args.resume_orders < 1):
            print("error: --in-flight and --resume-orders take positive integers", file=sys.stderr)
            return EXIT_USAGE
        resume = args.resume_orders or sizes.resume_orders
        name = f"{sizes.name} (in flight {','.join(map(str, levels))}; resume {resume})"
        sizes = replace(sizes, name=name, in_flight=levels, resume_orders=resume)

    def progress(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    report = run_benchmarks(sizes, progress, store=args.store)
    if args.json:
        print_json(report.to_json())
    else:
        print(report.table())
    return EXIT_OK
