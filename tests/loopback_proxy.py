"""A stdlib HTTP server on 127.0.0.1 that forwards to an upstream, for tests that bend what passes through.

The server runs in a daemon thread of the test process on a port chosen by the system (kept across
:meth:`LoopbackProxy.stop` / :meth:`LoopbackProxy.start`); subclasses override :meth:`handle` and use
:meth:`forward` and :meth:`reply`. :class:`CommitThenDrop` lets the upstream commit a request and then
loses its answer, the fault a market that deduplicates nothing turns into a second order.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = ["CommitThenDrop", "Drop", "LoopbackProxy"]


class LoopbackProxy:
    """Forwards every request to ``upstream`` unchanged until a subclass decides otherwise."""

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        self._host, self._port = split.hostname or "127.0.0.1", split.port or 80
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def address(self) -> str:
        """``http://127.0.0.1:<port>``, the same across a stop and a start."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve (again, on the same port)."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the port (connections are refused until :meth:`start`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        """Stop serving."""
        self.stop()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        """Answer one request: by default, the upstream's answer as it is."""
        self.reply(req, *self.forward(req.command, req.path, self.body(req), dict(req.headers.items())))

    @staticmethod
    def body(req: BaseHTTPRequestHandler) -> bytes | None:
        """The request's body, if it has one."""
        length = int(req.headers.get("Content-Length") or 0)
        return req.rfile.read(length) if length else None

    def forward(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        """Send the request upstream; its ``(status, content type, body)``."""
        sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "application/json", resp.read()
        finally:
            conn.close()

    @staticmethod
    def reply(req: BaseHTTPRequestHandler, status: int, ctype: str, data: bytes) -> None:
        """Answer ``req``."""
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)


#: How an answer is lost: the connection closed unanswered, held past the client's timeout and then
#: closed, or a gateway's 502 page (no JSON envelope) in place of the market's answer.
Drop = Literal["close", "timeout", "502"]


@dataclass
class _Armed:
    method: str
    path: re.Pattern[str]
    how: Drop
    times: int


class CommitThenDrop(LoopbackProxy):
    """Forwards every request; an armed one reaches the upstream, which commits it, and its answer is lost.

    ``arm("POST", r"/market/orders$", "close")`` drops the answer to the next create (``times`` more
    with ``times=``). Every request is counted (:meth:`count`), so a test can tell how often the agent
    really sent a write. ``hold_s`` is how long a ``timeout`` drop holds the connection before closing
    it (set the client's timeout below it).
    """

    def __init__(self, upstream: str, *, hold_s: float = 3.0) -> None:
        self.hold_s = hold_s
        self.seen: list[tuple[str, str]] = []
        self.dropped: list[tuple[str, str, Drop]] = []
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()
        super().__init__(upstream)

    def arm(self, method: str, path: str, how: Drop = "close", *, times: int = 1) -> None:
        """Drop the answers to the next ``times`` requests ``method`` whose path (under /api/v1) matches."""
        with self._lock:
            self._armed.append(_Armed(method, re.compile(path), how, times))

    def count(self, method: str, path: str) -> int:
        """How many ``method`` requests whose path matches ``path`` came through (dropped ones too)."""
        pattern = re.compile(path)
        with self._lock:
            return sum(1 for m, p in self.seen if m == method and pattern.search(p))

    def _take(self, method: str, path: str) -> Drop | None:
        with self._lock:
            self.seen.append((method, path))
            for armed in self._armed:
                if armed.times > 0 and armed.method == method and armed.path.search(path):
                    armed.times -= 1
                    self.dropped.append((method, path, armed.how))
                    return armed.how
        return None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        """Forward; then answer, or lose the answer as armed."""
        body = self.body(req)
        path = urlsplit(req.path).path.removeprefix("/api/v1")
        how = self._take(req.command, path)
        status, ctype, data = self.forward(req.command, req.path, body, dict(req.headers.items()))
        if how is None:
            self.reply(req, status, ctype, data)
            return
        # The upstream has committed the request: its answer is lost on the way back.
        if how == "502":
            self.reply(req, 502, "text/html", b"<html><body>502 Bad Gateway</body></html>")
            return
        if how == "timeout":
            time.sleep(self.hold_s)
        req.close_connection = True  # closed without a byte of the answer
