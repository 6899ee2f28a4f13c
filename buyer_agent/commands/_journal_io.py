"""What the journal-file commands share: opening the state directory's journal, writing output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent.journal import DB_NAME, Journal, resolve_state_dir

__all__ = ["add_state_dir_arg", "dump_json", "open_state_journal"]


def add_state_dir_arg(parser: argparse.ArgumentParser) -> None:
    """``--state-dir DIR``."""
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="where the journal lives (default: $BUYER_AGENT_STATE_DIR, else ./state)",
    )


@contextmanager
def open_state_journal(state_dir: str | None, *, create: bool = False) -> Iterator[Journal]:
    """The journal of a state directory (closed afterwards).

    Raises:
        JournalError: No journal there and ``create`` is False.
    """
    directory = resolve_state_dir(state_dir)
    if not create and not (directory / DB_NAME).exists():
        raise JournalError(f"no journal in {directory} (give --state-dir or set $BUYER_AGENT_STATE_DIR)")
    journal = Journal.open_dir(directory)
    try:
        yield journal
    finally:
        journal.close()


def dump_json(value: Any, out: str | None = None) -> None:
    """Write ``value`` as JSON to ``out`` (a path) or stdout (None or ``-``)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"
    if out is None or out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    Path(out).write_text(text, encoding="utf-8")
