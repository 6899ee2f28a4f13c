"""The HTTP server: stdlib ThreadingHTTPServer, a small router under ``/api/v1``, faults, idempotency.

The ``Idempotency-Key`` header is honoured only when the server is started with ``idempotency=True``:
peaq's docs promise no such header, so by default a repeated write meets the endpoint's own rules
(the sandbox README lists them), as it would on a market that deduplicates nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from buyer_agent.sandbox.market import _agents, _execute, _intent, _orders, _payments, _search, _settle
from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, envelope
from buyer_agent.sandbox.market._faults import FaultConfig, FaultInjector
from buyer_agent.sandbox.market._paging import list_page
from buyer_agent.sandbox.market._wire import dumps, iso, loads_body

__all__ = ["API_BASE", "MarketServer"]

_log = logging.getLogger("buyer_agent.sandbox.market")
API_BASE = "/api/v1"
Handler = Callable[[MarketContext, Call], Answer]
_MAX_BODY = 1 << 20
# A body over the limit is read and dropped up to this size before the 413 goes out: closing on
# unread bytes resets the connection, and the client would see a lost answer instead of the 413.
_DRAIN_MAX = 64 << 20


def _health(ctx: MarketContext, call: Call) -> Answer:
    return 200, {"status": "ok", "service": "buyer-agent sandbox market", "time": iso(ctx.clock())}


def _machines(ctx: MarketContext, call: Call) -> Answer:
    """``GET /machines?limit&cursor`` (platform): the sandbox has one machine, the demo machine."""
    ctx.require_api_key(call)
    return 200, list_page([(0, machine_record(ctx, ctx.settings.machine_id))], call.query)


def _machine(ctx: MarketContext, call: Call) -> Answer:
    ctx.require_api_key(call)
    machine_id = ctx.check_machine(call.params["machineId"])
    return 200, {"item": machine_record(ctx, machine_id)}


_DEMO_CONTROLLER = "0x000000000000000000000000000000000000dEaD"


def machine_record(ctx: MarketContext, machine_id: str) -> dict[str, Any]:
    """The demo machine: active, identity verified."""
    return {
        "id": machine_id,
        "displayName": "Sandbox demo machine",
        "status": "active",
        "ownerId": "owner_sandbox",
        "identityRef": ctx.settings.machine_identity_ref,
        # The documented MachineIdentityProof shape; the sandbox's "controller" is a fixed demo address.
        "identityProof": {
            "method": "eip191",
            "identityRef": ctx.settings.machine_identity_ref,
            "signerAddress": _DEMO_CONTROLLER,
            "challengeId": "chal_sandbox_identity",
            "verifiedAt": "2026-01-01T00:00:00.000Z",
            "challengeExpiresAt": "2026-01-01T00:05:00.000Z",
            "controllerAddresses": [_DEMO_CONTROLLER],
            "resolutionSource": "peaqos-mcr",
        },
        "machineType": "virtual",
        "runtimeProfile": "sandbox",
        "capabilities": ["market.buyer"],
        "labels": {"sandbox": "true"},
        "policyIds": [],
        "skillKeys": [],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
    }


#: Where the record an audit event is about lives, to find its machine.
_AUDITED = {"agent-pairing": "pairings", "market-order": "orders", "market-payment": "payments"}


def _event_machine(ctx: MarketContext, event: dict[str, Any]) -> str | None:
    collection = _AUDITED.get(event["resourceType"])
    record = ctx.store.get(collection, event["resourceId"]) if collection else None
    return None if record is None else record.get("machineId")


def _audit(ctx: MarketContext, call: Call) -> Answer:
    """``GET /audit-events?type&resourceType&resourceId&machineId&limit&cursor``, oldest first."""
    ctx.require_api_key(call)
    wanted = {k: call.query.get(k) for k in ("type", "resourceType", "resourceId")}
    machine = call.query.get("machineId")
    with ctx.store.lock:
        entries = [
            (position, {k: v for k, v in event.items() if not k.startswith("_")})
            for position, event in enumerate(ctx.store.audit)
            if all(v is None or event[k] == v for k, v in wanted.items())
            and (machine is None or _event_machine(ctx, event) == machine)
        ]
    return 200, list_page(entries, call.query)


_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/health", _health),
    ("GET", "/machines", _machines),
    ("GET", "/machines/:machineId", _machine),
    ("POST", "/machines/:machineId/agent-pairings/challenges", _agents.create_challenge),
    ("POST", "/machines/:machineId/agent-pairings", _agents.create_pairing),
    ("GET", "/machines/:machineId/agent-pairings", _agents.list_pairings),
    ("POST", "/machines/:machineId/agent-pairings/:pairingId/sessions", _agents.rotate_session),
    ("PATCH", "/machines/:machineId/agent-pairings/:pairingId", _agents.update_pairing),
    ("DELETE", "/machines/:machineId/agent-pairings/:pairingId", _agents.revoke_pairing),
    ("GET", "/market/services", _search.list_services),
    ("GET", "/market/services/:serviceId", _search.get_service),
    ("POST", "/market/search", _search.search),
    ("GET", "/market/searches/:searchId", _search.get_search),
    ("POST", "/market/orders", _orders.create_order),
    ("GET", "/market/orders", _orders.list_orders),
    ("GET", "/market/orders/:orderId", _orders.get_order),
    ("POST", "/market/orders/:orderId/payment-intent", _intent.create_intent),
    ("POST", "/market/orders/:orderId/payment-proof", _payments.submit_proof),
    ("GET", "/market/orders/:orderId/payment", _payments.get_payment),
    ("POST", "/market/orders/:orderId/payment/escrow-lock", _payments.escrow_lock),
    ("POST", "/market/orders/:orderId/payment/release", _payments.release),
    ("POST", "/market/orders/:orderId/payment/refund", _payments.refund),
    ("POST", "/market/orders/:orderId/execute", _execute.execute),
    ("POST", "/market/orders/:orderId/confirm", _settle.confirm),
    ("POST", "/market/orders/:orderId/dispute", _settle.dispute),
    ("GET", "/audit-events", _audit),
]


def _compile(pattern: str) -> re.Pattern[str]:
    parts = [f"(?P<{p[1:]}>[^/]+)" if p.startswith(":") else re.escape(p) for p in pattern.split("/")]
    return re.compile("^" + "/".join(parts) + "$")


_COMPILED = [(method, _compile(pattern), handler) for method, pattern, handler in _ROUTES]


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler and path parameters for a request under the API base.

    Raises:
        ApiError: ``NOT_FOUND`` (404) or ``METHOD_NOT_ALLOWED`` (405).
    """
    allowed = []
    for verb, regex, handler in _COMPILED:
        match = regex.match(path)
        if match is None:
            continue
        if verb == method:
            return handler, {k: unquote(v) for k, v in match.groupdict().items()}
        allowed.append(verb)
    if allowed:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here; use {', '.join(allowed)}")
    raise ApiError(404, "NOT_FOUND", f"no route {method} {API_BASE}{path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: socketserver's default of 5 resets connections as soon as a hundred agents
    # (or one agent with a hundred orders in flight) connect at once.
    request_queue_size = 1024
    market: MarketServer


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this every small answer waits for the peer's delayed ACK (~40 ms per request).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _read_body(self) -> bytes:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ApiError(
                411, "VALIDATION_ERROR", "body: send Content-Length, not chunked encoding", {"field": "body"}
            )
        if not length_text:
            return b""
        if not length_text.isdigit() or int(length_text) > _MAX_BODY:
            self.close_connection = True
            if length_text.isdigit() and int(length_text) <= _DRAIN_MAX:
                left = int(length_text)
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            raise ApiError(
                413, "VALIDATION_ERROR", "body: bad or too large Content-Length", {"field": "body"}
            )
        return self.rfile.read(int(length_text))

    def _serve(self, method: str) -> None:
        market = self.server.market
        try:
            raw = self._read_body()
        except ApiError as exc:
            self._send(exc.status, exc.body())
            return
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        if path.startswith(API_BASE + "/") or path == API_BASE:
            path = path[len(API_BASE) :] or "/"
        extension = path.startswith("/sandbox/") or path == "/sandbox"
        if not extension:
            fault, latency = market.faults.decide()
            if latency:
                time.sleep(latency / 1000)
            if fault == "5xx":
                self._send(503, envelope("SERVICE_UNAVAILABLE", "injected fault: try again"))
                return
            if fault == "429":
                retry = str(market.faults.config.retry_after_s)
                self._send(429, envelope("RATE_LIMITED", "injected fault: slow down"), {"Retry-After": retry})
                return
            if fault == "timeout":
                time.sleep(market.faults.config.timeout_s)
                self.close_connection = True
                return
        else:
            fault = "none"
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(split.query))
        status, body, extra = market.handle(method, path, query, raw, headers)
        if fault == "drop_after_commit":
            _log.info("injected fault: dropping the answer to %s %s after commit", method, path)
            self.close_connection = True
            return
        self._send(status, body, extra)

    def _send(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = b"" if status == 204 or body is None else dumps(body)
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)


class MarketServer:
    """The market served over HTTP on ``host:port`` (port 0: the OS picks one).

    ``idempotency`` (default off, as the docs promise no header): when on, a POST repeated with the
    same ``Idempotency-Key`` on the same path gets the first successful answer back unprocessed. It
    may be switched at run time (tests of either mode share one server).
    """

    def __init__(
        self,
        ctx: MarketContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        idempotency: bool = False,
    ) -> None:
        self.ctx = ctx
        self.faults = FaultInjector(faults)
        self.idempotency = idempotency
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timers: set[threading.Timer] = set()
        self._timers_lock = threading.Lock()
        ctx.background = self._later

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the API lives under ``/api/v1``)."""
        if self._server is None:
            raise RuntimeError("market server not started")
        return f"http://{self._host}:{int(self._server.server_address[1])}"

    def start(self) -> MarketServer:
        """Bind and serve in a background thread; returns ``self``."""
        server = _Server((self._host, self._port), _RequestHandler)
        server.market = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="sandbox-market", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cancel pending background jobs and close the socket."""
        with self._timers_lock:
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _later(self, job: Callable[[], None], delay_s: float) -> None:
        def run() -> None:
            with self._timers_lock:
                self._timers.discard(timer)
            try:
                job()
            except Exception:
                _log.exception("background job failed")

        timer = threading.Timer(delay_s, run)
        timer.daemon = True
        with self._timers_lock:
            self._timers.add(timer)
        timer.start()

    # --- request handling ------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: (status, JSON body or None, extra headers). Never raises."""
        try:
            if path.startswith("/sandbox/") or path == "/sandbox":
                return (*self._extension(method, path, raw, headers), {})
            handler, params = route(method, path)
            body = loads_body(raw) if method in ("POST", "PATCH", "PUT") else {}
            call = Call(params=params, query=query, body=body, headers=headers)
            key = headers.get("idempotency-key") if method == "POST" and self.idempotency else None
            if key is None:
                status, answer = handler(self.ctx, call)
                return status, answer, {}
            return (*self._idempotent(key, method, path, handler, call), {})
        except ApiError as exc:
            return exc.status, exc.body(), {}
        except Exception:
            _log.exception("unexpected error on %s %s", method, path)
            return 500, envelope("INTERNAL_ERROR", "the sandbox hit an unexpected error (logged)"), {}

    def _idempotent(self, key: str, method: str, path: str, handler: Handler, call: Call) -> tuple[int, Any]:
        """The same key on the same path returns the stored first (successful) answer."""
        store = self.ctx.store
        slot = f"{method} {path} {key}"
        with store.lock:
            stored = store.get("idempotency", slot)
            if stored is not None:
                return int(stored["status"]), stored["body"]
            status, answer = handler(self.ctx, call)
            # Only successes are kept: an error such as PAYMENT_NOT_MINED must be re-checked on retry.
            if status < 400:
                with store.transaction():
                    store.put("idempotency", slot, {"status": status, "body": answer})
            return status, answer

    def _extension(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        call = Call(params={}, query={}, body={}, headers=headers)
        if path == "/sandbox/faults":
            self.ctx.require_api_key(call)
            if method == "POST":
                self.faults.configure(FaultConfig.from_json(loads_body(raw)))
                _log.info("faults set to %s", self.faults.config)
            elif method != "GET":
                raise ApiError(405, "METHOD_NOT_ALLOWED", "use GET or POST")
            # ``item`` is the settings (POST them back as they are); ``injected`` what was done so far.
            return 200, {"item": self.faults.config.to_json(), "injected": self.faults.counts()}
        if path == "/sandbox/info" and method == "GET":
            return 200, {"item": {**self.ctx.public_info, "idempotency": "on" if self.idempotency else "off"}}
        raise ApiError(404, "NOT_FOUND", f"no route {method} {path}")
