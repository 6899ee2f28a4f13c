"""Serving the dashboard on 127.0.0.1 until told to stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from aiohttp import web

from buyer_agent.dashboard._app import build_app
from buyer_agent.dashboard._data import DashboardData
from buyer_agent.journal import OrderStore

__all__ = ["HOST", "serve_dashboard"]

#: The one address the dashboard listens on: it shows what a machine spends, to this machine only.
HOST = "127.0.0.1"


async def serve_dashboard(
    store: OrderStore,
    port: int,
    *,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the dashboard over ``store`` on ``http://127.0.0.1:<port>/`` until ``stop`` is set.

    SIGINT and SIGTERM set ``stop`` too (where the loop can take signal handlers).

    Args:
        store: Where the orders live (read only).
        port: The TCP port (0: any free one).
        ready: Called with the URL once it answers.
        stop: Set it to stop serving.

    Raises:
        OSError: The port is taken.
    """
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    runner = web.AppRunner(build_app(DashboardData(store)), access_log=None, shutdown_timeout=2)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port, reuse_address=False)
        await site.start()
        # The bound port (port 0 picks a free one): aiohttp shows it only on the runner's server.
        bound = port
        for address in runner.addresses:
            bound = int(address[1])
        if ready is not None:
            ready(f"http://{HOST}:{bound}/")
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
