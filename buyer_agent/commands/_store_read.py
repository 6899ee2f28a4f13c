"""``--store``: the read-only commands (``orders``, ``show``, ``export``, ``replay``) on any OrderStore.

Without ``--store`` (and without ``$BUYER_AGENT_STORE``) those commands keep their own SQLite code
path byte for byte; with it they read through :func:`~buyer_agent.journal.open_store`. ``--state-dir``
given on the command line wins over ``$BUYER_AGENT_STORE``; ``--store`` and ``--state-dir`` together
are bad usage.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from buyer_agent._errors import JournalError, TaskFileError
from buyer_agent._redact import Secret
from buyer_agent.history import Replay, replay_events
from buyer_agent.journal import DB_NAME, STORE_ENV, OrderStore, open_store
from buyer_agent.journal._canonical import dumps
from buyer_agent.journal._export import header_of
from buyer_agent.journal._signature import signing_key

__all__ = [
    "add_store",
    "export_store_lines",
    "no_journal",
    "reading",
    "replay_store_order",
    "store_export_key",
    "store_target",
]

_MARKET_META = "order_market:"  # what BuyerAgent records per order (agent.py)
_EMBEDDED = "embedded-sandbox"


def add_store(parser: argparse.ArgumentParser) -> None:
    """The ``--store`` flag of the read-only commands."""
    parser.add_argument(
        "--store",
        metavar="STORE",
        default=None,
        help="read the orders from this store: a postgresql:// URL, a state directory or a .db file "
        "(default: $BUYER_AGENT_STORE when set and no --state-dir is given, else the state directory)",
    )


def store_target(args: argparse.Namespace) -> str | None:
    """Where to read through a store, or None for the state directory's own code path.

    Raises:
        TaskFileError: ``--store`` and ``--state-dir`` both given (bad usage).
    """
    explicit = getattr(args, "store", None)
    if explicit and args.state_dir:
        raise TaskFileError("--store", "give --store or --state-dir, not both")
    if explicit:
        return str(explicit)
    if not args.state_dir and os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    return None


@asynccontextmanager
async def reading(target: str) -> AsyncIterator[OrderStore | None]:
    """The store at ``target``, opened for reading and closed after; None for a SQLite place with no journal.

    Raises:
        TaskFileError: ``target`` is no store location (bad usage).
        JournalError: The store cannot be opened.
    """
    if "://" not in target:
        path = Path(target)
        db = path if path.suffix == ".db" or path.is_file() else path / DB_NAME
        if not db.is_file():
            yield None
            return
    store = await open_store(target, create=False, field="--store")
    try:
        yield store
    finally:
        await store.aclose()


def no_journal(target: str) -> JournalError:
    """The error of a reader pointed at a place with no journal."""
    return JournalError(f"no journal in {target} (give --store or --state-dir)")


async def export_store_lines(store: OrderStore, order_id: str, *, key: Secret | None) -> list[str]:
    """The lines of ``order_id``'s export read from ``store`` (as :func:`export_lines` writes them)."""
    rec = await store.order(order_id)
    events = await store.events(order_id)
    return [dumps(header_of(rec, events, key=key)), *(dumps(e.to_json()) for e in events)]


async def store_export_key(store: OrderStore, order_id: str) -> Secret | None:
    """The agent key that signs ``order_id``'s export (the one that paid it), or None."""
    events = [e.to_json() for e in await store.events(order_id)]
    placed = await store.get_meta(_MARKET_META + order_id)
    return signing_key(events, sandbox_order=placed == _EMBEDDED)


async def replay_store_order(store: OrderStore, order_id: str) -> Replay:
    """Replay an order straight from a store (its events and order row), as ``replay ORDER_ID`` does.

    Raises:
        JournalError: No such order.
    """
    rec = await store.order(order_id)
    events = [(None, e.to_json()) for e in await store.events(order_id)]
    result = replay_events(events, order_id=order_id, expected_state=rec.state, source=store.label)
    result.header = {"order_id": order_id, "spec": dict(rec.spec), "final_state": rec.state}
    return result
