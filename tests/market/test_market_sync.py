"""The blocking ``MarketClient`` over real HTTP on loopback, and the packages importing cleanly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import market_support as ms
import pytest

from buyer_agent._errors import OrchestrationApiError, OrchestrationConfigError
from buyer_agent.market import ListResponse, Machine, MarketClient

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    None: ms.page({**ms.MACHINE_ITEM, "id": "m1"}, {**ms.MACHINE_ITEM, "id": "m2"}, next_cursor="p2"),
    "p2": ms.page({**ms.MACHINE_ITEM, "id": "m3"}),
}


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def do_GET(self) -> None:
        """Answer from the canned machines."""
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.seen.append({"path": url.path, "query": query, "api_key": self.headers.get("x-api-key")})
        if url.path == "/api/v1/machines":
            self._answer(200, PAGES[query.get("cursor")])
        elif url.path == f"/api/v1/machines/{ms.MACHINE}":
            self._answer(200, ms.item(ms.MACHINE_ITEM))
        else:
            self._answer(404, {"error": {"code": "NOT_FOUND", "message": "no such machine"}})

    def _answer(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def market() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A tiny market on 127.0.0.1 (free port); yields its URL and the requests it saw."""
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _market_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "market-client" and t.is_alive()]


def test_a_call_and_an_all_iteration_work_and_close_stops_the_thread(
    market: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = market
    seen.clear()
    before = len(_market_threads())
    client = MarketClient(url, api_key=ms.API_KEY)
    assert len(_market_threads()) == before + 1

    machine = client.get_machine(ms.MACHINE).item
    assert isinstance(machine, Machine) and machine.display_name == "Buyer robot"
    page = client.list_machines(limit=2)
    assert isinstance(page, ListResponse) and page.next_cursor == "p2"
    assert [m.id for m in client.list_machines_all(limit=2)] == ["m1", "m2", "m3"]
    assert [r["query"].get("cursor") for r in seen[-2:]] == [None, "p2"]
    assert all(r["api_key"] == ms.API_KEY for r in seen)

    with pytest.raises(OrchestrationApiError) as info:
        client.get_machine("missing")
    assert info.value.code == "NOT_FOUND" and info.value.status_code == 404

    client.close()
    assert len(_market_threads()) == before
    client.close()  # closing twice is harmless
    with pytest.raises(OrchestrationConfigError, match="closed"):
        client.get_machine(ms.MACHINE)


def test_a_with_block_closes_and_the_wrapper_works_inside_a_running_event_loop(
    market: tuple[str, list[dict[str, Any]]],
) -> None:
    url, _seen = market
    before = len(_market_threads())

    async def from_async_code() -> str:
        # Blocking calls from code that runs its own loop: the wrapper's loop is a separate thread.
        with MarketClient(url) as client:
            machine: Machine = client.get_machine(ms.MACHINE).item
            return machine.id

    assert asyncio.run(from_async_code()) == ms.MACHINE
    assert len(_market_threads()) == before


def test_the_wrapper_offers_every_method_of_the_async_client() -> None:
    with MarketClient(ms.BASE) as client:
        for name in (
            "get_market_order",
            "list_market_orders_all",
            "submit_payment_proof",
            "list_audit_events",
        ):
            assert callable(getattr(client, name))
        with pytest.raises(AttributeError):
            client._send  # noqa: B018 - private plumbing is not forwarded
        with pytest.raises(AttributeError):
            client.no_such_method  # noqa: B018


def test_a_bad_url_fails_cleanly_without_leaving_a_thread() -> None:
    before = len(_market_threads())
    with pytest.raises(OrchestrationConfigError):
        MarketClient("ftp://market.example")
    assert len(_market_threads()) == before


def test_the_packages_import_in_a_fresh_interpreter(tmp_path: Path) -> None:
    # Run from an empty directory: the installed packages must import, not files next to the tests.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import buyer_agent, strategies; print(buyer_agent.__name__, strategies.__name__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["buyer_agent", "strategies"]
    assert done.stderr == ""
