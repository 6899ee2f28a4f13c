"""No silent stalls: every wait of the market client is reported, and a refusal is not retried.

Real sockets on loopback: a server that accepts and never answers, one that answers 413 without
reading the body (and closes, as an HTTP server over its size limit does), one that reads it first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import market_support as ms
import pytest

from buyer_agent._errors import (
    OrchestrationApiError,
    OrchestrationNetworkError,
    OrchestrationRequestRefused,
)
from buyer_agent._waits import WAIT_LOGGER
from buyer_agent.market import AsyncMarketClient, RetryPolicy

BIG = {"machine_id": ms.MACHINE, "service_id": ms.SERVICE, "input": {"data": "a" * (2 << 20)}}
REFUSED = (
    b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b'content-length: 70\r\n\r\n{"error":{"code":"VALIDATION_ERROR","message":"body too large"}}      '
)


class RawServer:
    """A loopback TCP server: each connection is handed to ``serve`` on its own thread."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            self._held.append(conn)  # accepted, never answered
            return
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        self.requests += 1
        if self.mode == "drain":
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            left = length - len(head.split(b"\r\n\r\n", 1)[1])
            while left > 0:
                left -= len(conn.recv(1 << 16))
        conn.sendall(REFUSED)
        conn.close()  # with the body unread ("unread" mode) this resets the connection

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    srv = RawServer(request.param)
    try:
        yield srv
    finally:
        srv.stop()


def _create(
    url: str,
    body: dict[str, object],
    timeout: float | None = None,
    attempts: int = 4,
    *,
    intent: bool = False,
) -> BaseException | None:
    """Create an order (or, with ``intent``, ask for a payment intent: documented idempotent, so repeated)."""
    policy = RetryPolicy(attempts=attempts, initial=0.05)

    async def go() -> BaseException | None:
        async with AsyncMarketClient(url, api_key=ms.API_KEY, retry=policy) as client:
            options: dict[str, object] = {"idempotency_key": "order-1"}
            if timeout is not None:
                options["timeout"] = timeout
            try:
                if intent:
                    await client.create_payment_intent(ms.ORDER, body, ms.TOKEN, options=options)  # type: ignore[arg-type]
                else:
                    await client.create_market_order(body, ms.TOKEN, options=options)  # type: ignore[arg-type]
            except Exception as exc:  # inspected by the test
                return exc
            return None

    return asyncio.run(go())


@pytest.mark.parametrize("server", ["unread"], indirect=True)
def test_a_413_sent_before_the_body_was_read_is_one_request_not_retried(server: RawServer) -> None:
    started = time.monotonic()
    exc = _create(server.url, BIG)
    # Whether the 413 still arrives ahead of the reset is a race; either way: one request, final.
    assert isinstance(exc, OrchestrationRequestRefused | OrchestrationApiError), repr(exc)
    assert not exc.retryable
    if isinstance(exc, OrchestrationRequestRefused):
        assert exc.code == "REQUEST_REFUSED" and "request body" in str(exc)
    else:
        assert exc.status_code == 413
    assert server.requests == 1
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("server", ["drain"], indirect=True)
def test_a_413_answered_in_full_is_one_request_not_retried(server: RawServer) -> None:
    exc = _create(server.url, BIG)
    assert isinstance(exc, OrchestrationApiError), repr(exc)
    assert exc.status_code == 413 and not exc.retryable
    assert server.requests == 1


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_a_market_that_never_answers_is_reported_within_seconds(
    server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=WAIT_LOGGER)
    started = time.time()
    # A write the docs call idempotent: the client may repeat it (a create is reconciled instead).
    exc = _create(server.url, {"amount": "1.25"}, timeout=3.0, attempts=2, intent=True)
    assert isinstance(exc, OrchestrationNetworkError)
    waits = [r for r in caplog.records if r.name == WAIT_LOGGER]
    assert waits, "no wait was reported"
    assert waits[0].created - started < 3.0
    text = waits[0].getMessage()
    assert "POST /market/orders" in text and "attempt 1" in text and "no answer after" in text
    # the retries are reported too: attempt n of 4, and when the next try comes
    assert any("attempt 2 of 2" in r.getMessage() and "next try in" in r.getMessage() for r in waits)


def test_a_closed_port_reports_every_retry(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=WAIT_LOGGER)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends
    exc = _create(f"http://127.0.0.1:{port}", {"machine_id": ms.MACHINE})
    assert isinstance(exc, OrchestrationNetworkError)
    lines = [r.getMessage() for r in caplog.records if r.name == WAIT_LOGGER]
    assert [f"attempt {n} of 4" in line for n, line in zip((2, 3, 4), lines, strict=True)] == [True] * 3
    assert all("could not reach the market" in line and "next try in" in line for line in lines)
