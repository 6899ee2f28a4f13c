"""``ui``: the read-only local dashboard over a journal or any order store (``--store``), on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from buyer_agent._errors import OrchestrationConfigError
from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded, require_journal
from buyer_agent.commands._store_read import add_store, no_journal, reading, store_target
from buyer_agent.journal import Journal, OrderStore, SqliteStore

__all__ = ["DEFAULT_PORT", "register", "run"]

#: The dashboard's port unless ``--port`` says otherwise.
DEFAULT_PORT = 8787
_LOOPBACK = ("127.0.0.1", "localhost")


def register(subparsers: Any) -> None:
    """Add ``ui`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ui",
        help="serve a read-only dashboard of the journal on http://127.0.0.1",
        description=(
            "Serve a read-only local web page over the journal (or the store --store names, a "
            "PostgreSQL database of a fleet): the orders (filter by state and day, "
            "live while orders run), each order's timeline with its event hashes, the chosen quote "
            "against the other candidates with the strategy's reasons, the payment with an explorer "
            "link, the dispute evidence, spend per day against the daily limit, and the state machine. "
            "It listens on 127.0.0.1 only and loads nothing from the internet. Prints one JSON line "
            '{"url": …} on stdout when it answers; Ctrl-C or SIGTERM stops it.'
        ),
    )
    add_state_dir(parser)
    add_store(parser)
    parser.add_argument(
        "--port",
        metavar="N",
        type=int,
        default=DEFAULT_PORT,
        help=f"the TCP port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--host",
        metavar="HOST",
        default="127.0.0.1",
        help="where to listen: 127.0.0.1 (or localhost) only; any other address is refused",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.host not in _LOOPBACK:
        raise OrchestrationConfigError(
            f"--host {args.host}: the dashboard listens on 127.0.0.1 only (it shows what a machine spends)"
        )
    if not 0 <= args.port <= 65535:
        raise OrchestrationConfigError(f"--port {args.port}: a port is 0..65535")
    target = store_target(args)
    directory = require_journal(args.state_dir) if target is None else None
    from buyer_agent.dashboard import serve_dashboard  # the web stack loads only for this command

    def ready(url: str) -> None:
        print(json.dumps({"url": url}), flush=True)
        print(f"dashboard on {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)

    async def go() -> None:
        async with _opened(directory, target) as store:
            await serve_dashboard(store, args.port, ready=ready)

    try:
        asyncio.run(go())
    except OSError as exc:
        raise OrchestrationConfigError(
            f"--port {args.port}: cannot listen on 127.0.0.1 ({exc.strerror or exc})"
        ) from None
    return EXIT_OK


@asynccontextmanager
async def _opened(directory: Path | None, target: str | None) -> AsyncIterator[OrderStore]:
    """The state directory's journal, or the store ``--store`` / ``$BUYER_AGENT_STORE`` names."""
    if directory is not None:
        store = SqliteStore(Journal.open_dir(directory))
        try:
            yield store
        finally:
            await store.aclose()
        return
    assert target is not None
    async with reading(target) as found:
        if found is None:
            raise no_journal(target)
        yield found
