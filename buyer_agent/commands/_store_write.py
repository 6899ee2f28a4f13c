"""``--store`` on the commands that place and drive orders (``submit``, ``worker``, ``run``, ``resume``).

The store is the ``--store`` value, else ``$BUYER_AGENT_STORE`` (when no ``--state-dir`` is given),
else the state directory's SQLite journal: ``submit`` and ``worker`` use that default, ``run`` and
``resume`` keep their own state-directory code path unless a store is named. A shared store's orders
need a market that outlives a process (:data:`~buyer_agent.fleet.SANDBOX_REFUSED`).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from buyer_agent._errors import TaskFileError
from buyer_agent.commands._store_read import store_target
from buyer_agent.journal import OrderStore, open_store, resolve_state_dir

__all__ = ["add_write_store", "number", "opened", "whole_number", "write_target"]


def add_write_store(parser: argparse.ArgumentParser) -> None:
    """The ``--store`` flag of the commands that place or drive orders."""
    parser.add_argument(
        "--store",
        metavar="STORE",
        default=None,
        help="where the orders live: a postgresql:// URL (a fleet's shared store), a state directory or "
        "a .db file (default: $BUYER_AGENT_STORE when set and no --state-dir is given, else the state "
        "directory); its orders need a market that outlives this process (a URL, not the embedded "
        "sandbox)",
    )


def write_target(args: argparse.Namespace) -> str:
    """The store ``submit`` and ``worker`` use: ``--store``, ``$BUYER_AGENT_STORE``, else the state directory.

    Raises:
        TaskFileError: ``--store`` and ``--state-dir`` both given (bad usage).
    """
    return store_target(args) or str(resolve_state_dir(args.state_dir))


@asynccontextmanager
async def opened(target: str) -> AsyncIterator[OrderStore]:
    """The store at ``target`` (created or migrated as needed), closed after the block."""
    store = await open_store(target, create=True, field="--store")
    try:
        yield store
    finally:
        await store.aclose()


def whole_number(text: str, flag: str, low: int, high: int) -> int:
    """A flag's whole number within ``low..high`` (checked here: bad usage is one line, exit 2).

    Raises:
        TaskFileError: Not a whole number, or out of range.
    """
    try:
        value = int(text)
    except ValueError:
        raise TaskFileError(flag, f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise TaskFileError(flag, f"give {low} to {high}, not {value}")
    return value


def number(text: str, flag: str, low: float, high: float) -> float:
    """A flag's number of seconds within ``low..high``.

    Raises:
        TaskFileError: Not a number, or out of range.
    """
    try:
        value = float(text)
    except ValueError:
        raise TaskFileError(flag, f"{text!r} is not a number") from None
    if not low <= value <= high:
        raise TaskFileError(flag, f"give {low:g} to {high:g}, not {text}")
    return value
