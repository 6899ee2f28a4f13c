"""One HTTP request to the market: URL, headers, auth, timeouts, error mapping, redaction.

This is the only place httpx exceptions are seen; they leave as the framework's own errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal, TypedDict

import httpx

from buyer_agent._errors import (
    OrchestrationApiError,
    OrchestrationConfigError,
    OrchestrationNetworkError,
    OrchestrationOutcomeUnknown,
    OrchestrationRequestRefused,
    OrchestrationValidationError,
)
from buyer_agent._limits import MAX_MARKET_ANSWER_BYTES, human
from buyer_agent._redact import REDACTED, Secret, redact
from buyer_agent._spans import http_client_span
from buyer_agent._tls import tls_context
from buyer_agent._urls import check_port
from buyer_agent._version import __version__
from buyer_agent._waits import SlowAnswer
from buyer_agent.market._codes import BAD_RESPONSE
from buyer_agent.market._wire import dumps, loads, to_snake, to_wire, wire_query

__all__ = [
    "API_BASE_PATH",
    "HEADER_AGENT_PAIRING_TOKEN",
    "HEADER_API_KEY",
    "HEADER_IDEMPOTENCY_KEY",
    "PLATFORM",
    "Auth",
    "InsecureTransportWarning",
    "RequestOptions",
    "Transport",
    "check_base_url",
    "new_http_client",
]

log = logging.getLogger("buyer_agent.market")

API_BASE_PATH = "/api/v1"
HEADER_API_KEY = "x-api-key"
HEADER_AGENT_PAIRING_TOKEN = "x-agent-pairing-token"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"
READ_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 60.0
#: Requests one client sends at once, and the connections its own pool holds and keeps alive: the
#: rest wait their turn here. httpcore's pool closes an idle connection whenever it holds more than
#: its keep-alive bound (httpx's default 20) and scans every connection each time a request starts
#: or ends. With 64 in flight, rounds of 100 orders in flight opened up to five new connections an
#: order, and those scans took a fifth of the agent's CPU (py-spy, ``bench`` at 100 in flight).
MAX_IN_FLIGHT = 16
USER_AGENT = f"buyer-agent/{__version__}"
#: Bodies larger than this are sent in chunks of this size, counting what the market took.
BODY_CHUNK = 64 * 1024

PLATFORM: Literal["platform"] = "platform"
# ``"platform"``: x-api-key. A pairing token (Secret): x-agent-pairing-token, plus x-api-key when
# the client has one. ``None``: no auth headers.
Auth = Literal["platform"] | Secret | None


class RequestOptions(TypedDict, total=False):
    """Per-call options: an idempotency key (sent as ``Idempotency-Key``) and a timeout in seconds."""

    idempotency_key: str
    timeout: float


class InsecureTransportWarning(UserWarning):
    """Plain ``http://`` to a host that is not this machine: keys and tokens travel in clear text."""


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; warns for plain HTTP to a non-loopback host.

    Errors never repeat the URL's credentials: they show scheme, host and path only.
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise OrchestrationConfigError("the market URL is empty")
    check_port(base_url, "the market URL")
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError):
        raise OrchestrationConfigError("the market URL is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        # Not echoed: in "user:password@host" the password parses as the path.
        raise OrchestrationConfigError("the market URL must be http(s)://host[:port][/path]")
    shown = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
    if url.userinfo or url.query or url.fragment:
        # A query would land in front of every API path, and credentials would sit in every repr.
        raise OrchestrationConfigError(
            f"the market URL {shown} must not carry credentials, a query or a fragment "
            "(the API key goes in api_key / PEAQOS_API_KEY)"
        )
    if url.scheme == "http" and not _is_loopback(url.host):
        warnings.warn(
            f"plain http:// to {url.host}: the API key and pairing tokens are sent unencrypted",
            InsecureTransportWarning,
            stacklevel=3,
        )
    return str(url).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP-date is always GMT, never the local zone
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


class _CountedBody:
    """A request body sent in chunks; ``taken`` says how much of it the connection accepted."""

    __slots__ = ("data", "taken")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.taken = 0

    async def __aiter__(self) -> Any:
        for start in range(0, len(self.data), BODY_CHUNK):
            chunk = self.data[start : start + BODY_CHUNK]
            yield chunk
            # Resumed only once the chunk was written.
            self.taken = start + len(chunk)

    @property
    def unread(self) -> bool:
        return self.taken < len(self.data)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any


def new_http_client() -> httpx.AsyncClient:
    """The HTTP client a market client makes for itself: :data:`MAX_IN_FLIGHT` connections, all kept alive."""
    return httpx.AsyncClient(
        verify=tls_context(),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
    )


class Transport:
    """Sends requests under ``/api/v1`` and turns answers into parsed JSON or errors."""

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        http: httpx.AsyncClient,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.base_url = base_url
        self._api_key = api_key
        self._http = http
        # Requests beyond the pool's connections wait here, in a plain FIFO: waiting inside httpcore's
        # pool costs a scan of every connection for every queued request each time one frees, which
        # at a thousand orders in flight took more CPU than the orders themselves.
        self._slots = asyncio.Semaphore(max_in_flight)

    def _headers(self, auth: Auth, idempotency_key: str | None, has_body: bool) -> dict[str, str]:
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if auth is not None and self._api_key:
            headers[HEADER_API_KEY] = self._api_key.reveal()
        if isinstance(auth, Secret):
            if not auth:
                raise OrchestrationValidationError("pairing_token", "must be a non-empty token")
            headers[HEADER_AGENT_PAIRING_TOKEN] = auth.reveal()
        if idempotency_key:
            headers[HEADER_IDEMPOTENCY_KEY] = idempotency_key
        if has_body:
            headers["content-type"] = "application/json"
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: Auth,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        options: RequestOptions | None = None,
    ) -> Any:
        """Send once; return the snake_cased JSON body (None for 204) or raise an Orchestration error."""
        opts = options or {}
        content = dumps(to_wire(body)) if body is not None else None
        headers = self._headers(auth, opts.get("idempotency_key"), content is not None)
        timeout = opts.get("timeout") or (READ_TIMEOUT_S if method == "GET" else WRITE_TIMEOUT_S)
        url = f"{self.base_url}{API_BASE_PATH}{path}"
        counted = _CountedBody(content) if content is not None and len(content) > BODY_CHUNK else None
        if counted is not None:
            headers["content-length"] = str(len(counted.data))
        slow = SlowAnswer(f"the market's answer to {method} {path}", timeout)
        span = http_client_span(method, url)
        try:
            async with self._slots:
                sending = self._http.build_request(
                    method,
                    url,
                    params=wire_query(query) if query else None,
                    content=counted if counted is not None else content,
                    headers=headers,
                    timeout=timeout,
                )
                response = await self._http.send(sending, stream=True)
                span.status(response.status_code)
                try:
                    body = await _read_bounded(response, MAX_MARKET_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            span.fail(exc)
            raise OrchestrationNetworkError(
                f"{method} {path}: could not reach the market: {type(exc).__name__}"
            ) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            span.fail(exc)
            raise OrchestrationConfigError(f"{method} {path}: {exc}") from exc
        except httpx.HTTPError as exc:
            span.fail(exc)
            if counted is not None and counted.unread:
                raise _unread(method, path, counted, exc) from exc
            # Sent and no complete answer: the market may have acted on it.
            raise OrchestrationOutcomeUnknown(
                f"{method} {path}: no answer from the market ({type(exc).__name__}); "
                "the request may have been applied"
            ) from exc
        finally:
            slow.done()
            span.end()
        log.debug("%s %s -> %s", method, path, response.status_code)
        if body is None:
            raise OrchestrationApiError(
                BAD_RESPONSE,
                f"{method} {path}: the market's answer is larger than the limit of "
                f"{human(MAX_MARKET_ANSWER_BYTES)}; not read further",
                status_code=response.status_code,
            )
        sent = tuple(s.reveal() for s in (self._api_key, auth) if isinstance(s, Secret) and s)
        return self._answer(method, path, response, sent, body)

    def _answer(
        self, method: str, path: str, response: httpx.Response, sent: tuple[str, ...], raw: bytes
    ) -> Any:
        status = response.status_code
        if status == 204:
            return None
        try:
            parsed = loads(raw) if raw else None
        except (ValueError, RecursionError):
            parsed = None
        if status >= 400:
            raise self._api_error(status, parsed, response, sent, raw)
        if parsed is None:
            # As the official SDK: a success answer with no JSON in it (empty, ``null``, not JSON)
            # is BAD_RESPONSE with the status the market sent.
            raise OrchestrationApiError(
                BAD_RESPONSE,
                f"{method} {path}: the market answered {status} without a JSON body",
                status_code=status,
            )
        return to_snake(parsed)

    def _api_error(
        self, status: int, parsed: Any, response: httpx.Response, sent: tuple[str, ...], raw: bytes
    ) -> OrchestrationApiError:
        retry_after = _retry_after(response.headers.get("retry-after"))
        request_id = response.headers.get("x-request-id")
        err = parsed.get("error") if isinstance(parsed, Mapping) else None
        if not (
            isinstance(err, Mapping)
            and isinstance(err.get("code"), str)
            and isinstance(err.get("message"), str)
        ):
            # The body itself is not attached: a proxy's page may echo headers (keys, tokens).
            return OrchestrationApiError(
                BAD_RESPONSE,
                f"the market answered HTTP {status} without a JSON error envelope",
                status_code=status,
                details={
                    "content_type": response.headers.get("content-type"),
                    "length": len(raw),
                },
                request_id=request_id,
                retry_after=retry_after,
            )
        details = err.get("details")
        # A market may echo the credentials it rejected; those values never reach the error.
        return OrchestrationApiError(
            _scrub(str(err["code"]), sent),
            _scrub(str(err["message"]), sent),
            status_code=status,
            details=_scrub(redact(to_snake(details)), sent) if details is not None else None,
            request_id=request_id or (str(err["requestId"]) if err.get("requestId") else None),
            retry_after=retry_after,
        )


def _unread(method: str, path: str, body: _CountedBody, exc: httpx.HTTPError) -> Exception:
    """The error for a request whose body the market did not read to its end."""
    size = f"{len(body.data):,} bytes"
    if isinstance(exc, httpx.TimeoutException):
        # It stalled reading: it never had the whole request, so another try is safe.
        return OrchestrationNetworkError(
            f"{method} {path}: the market stopped reading the {size} request body ({type(exc).__name__})"
        )
    return OrchestrationRequestRefused(
        f"{method} {path}: the market closed the connection after {body.taken:,} of the {size} request "
        "body, unread (a body too large for it?); not retried: the same body meets the same refusal"
    )


async def _read_bounded(response: httpx.Response, limit: int) -> bytes | None:
    """The body, reading at most ``limit + 1`` bytes of it; None when it is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every occurrence of the given secret strings replaced, at any depth."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value
