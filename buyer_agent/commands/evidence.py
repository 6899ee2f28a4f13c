"""``evidence ORDER_ID``: write an order's dispute evidence bundle, bound to its journal hashes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from buyer_agent.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_state_dir,
    dump_json,
    guarded,
    open_state_journal,
)
from buyer_agent.commands._output import OutputError, json_text, write_atomically
from buyer_agent.history import build_evidence, replay_file
from buyer_agent.journal._export import JournalFileError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``evidence`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evidence",
        help="write an order's dispute evidence bundle",
        description=(
            "Write the dispute evidence bundle of an order: the quote, the policy decision, the payment "
            "transaction and proof, the execution outcome and the acceptance failure, with the journal "
            "hashes that bind them; the same bundle the workflow attaches when it disputes. ORDER_ID may "
            "also be an exported journal file."
        ),
    )
    parser.add_argument("order_id", metavar="ORDER_ID", help="the order (or an exported journal file)")
    parser.add_argument("-o", "--output", metavar="FILE", default=None, help="output file (default stdout)")
    add_state_dir(parser)


def run(args: argparse.Namespace) -> int:
    """Run the command: 0 written, 1 no such order or a broken journal, 2 bad input or output path."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    try:
        return _evidence(args)
    except (OutputError, JournalFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _evidence(args: argparse.Namespace) -> int:
    if Path(args.order_id).is_file():
        result = replay_file(args.order_id)
        if result.breakage is not None:
            print(f"error: event {result.breakage.seq}: {result.breakage.reason}", file=sys.stderr)
            return EXIT_FAILED
        events: list[Any] = result.events
    else:
        with open_state_journal(args.state_dir) as journal:
            journal.order(args.order_id)
            events = list(journal.events(args.order_id))
    bundle = build_evidence(events)
    if args.output is None or args.output == "-":
        dump_json(bundle)
    else:
        write_atomically(Path(args.output), lambda fh: fh.write(json_text(bundle)))
    return EXIT_OK
