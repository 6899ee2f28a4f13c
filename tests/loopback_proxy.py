"""A stdlib HTTP server on 127.0.0.1 that forwards to an upstream, for tests that bend what passes through.

The server runs in a daemon thread of the test process on a port chosen by the system (kept across
:meth:`LoopbackProxy.stop` / :meth:`LoopbackProxy.start`); subclasses override :meth:`handle` and use
:meth:`forward` and :meth:`reply`.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LoopbackProxy"]


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
