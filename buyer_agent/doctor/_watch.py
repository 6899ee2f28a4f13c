"""The doctor's HTTP transport: a slow answer is said on stderr, an endless one is read only up to a limit.

Every call the doctor makes (RPC nodes, the market) goes through one ``httpx.Client`` with this
transport. A request still without an answer after 2 s is reported as a ``wait:`` line (then every
5 s, as the agent's own waits are), so a silent node never looks like a hung doctor; an answer larger
than :data:`~buyer_agent._limits.MAX_MARKET_ANSWER_BYTES` ends in a ``ReadError`` naming the limit
instead of filling the memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx

from buyer_agent._limits import MAX_MARKET_ANSWER_BYTES, human
from buyer_agent._tls import tls_context
from buyer_agent._waits import EVERY_S, SLOW_ANSWER_S, report_wait

__all__ = ["WatchedTransport"]


class _Notice:
    """Reports, from a timer thread, a request that has no answer yet."""

    def __init__(self, what: str, limit_s: float) -> None:
        self._what = what
        self._limit_s = limit_s
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = SLOW_ANSWER_S
        while not self._done.wait(wait):
            elapsed = time.monotonic() - self._started
            report_wait(
                self._what,
                because=f"no answer after {elapsed:.0f} s (the doctor gives up at {self._limit_s:g} s)",
            )
            wait = EVERY_S

    def done(self) -> None:
        self._done.set()


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, request: httpx.Request, limit: int) -> None:
        self._inner = inner
        self._request = request
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise httpx.ReadError(
                    f"the answer of {self._request.url.host} is larger than the limit of "
                    f"{human(self._limit)}; not read further",
                    request=self._request,
                )
            yield chunk

    def close(self) -> None:
        self._inner.close()


class WatchedTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport`` with slow answers reported and answers bounded in size."""

    def __init__(self, timeout_s: float, limit: int = MAX_MARKET_ANSWER_BYTES) -> None:
        self._inner = httpx.HTTPTransport(verify=tls_context())
        self._timeout_s = timeout_s
        self._limit = limit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; its answer's body is read at most up to the limit."""
        notice = _Notice(f"{request.url.scheme}://{request.url.netloc.decode()} to answer", self._timeout_s)
        try:
            response = self._inner.handle_request(request)
        finally:
            notice.done()
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_BoundedStream(response.stream, request, self._limit),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        """Close the connections."""
        self._inner.close()
