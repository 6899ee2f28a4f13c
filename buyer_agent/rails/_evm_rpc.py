"""The EVM rail's JSON-RPC transport: one POST per call over httpx, bounded, said when slow, errors mapped.

web3's provider stack (request formatters, middlewares, result formatters, aiohttp) cost the EVM rail
about 7 ms of CPU per payment here, more than the node's own work. The rail needs a dozen methods
and reads their answers itself, so it speaks JSON-RPC directly: this module is the only place the
HTTP library is seen, and every failure leaves it as a :class:`RailError`:

- a transport failure (refused, reset, timed out) is ``retryable``: the node may be busy or restarting;
- an HTTP error status, a body that is not a JSON-RPC answer, or one larger than
  :data:`~buyer_agent.rails._nodes.MAX_NODE_ANSWER_BYTES` is not;
- a JSON-RPC ``error`` answer is :class:`NodeError`, holding the node's ``code``, message and ``data``
  (a revert's encoded reason), for the rail to judge ("already known", "nonce too low", a revert).

A request still without an answer after 2 s is said on the ``buyer_agent.wait`` logger (then every
5 s), each call is an HTTP client span (``rpc.method``) when tracing is on, and requests beyond
:data:`MAX_IN_FLIGHT` wait in a plain FIFO rather than inside httpcore's pool (whose queue costs a
scan of every connection per waiting request each time one frees).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from buyer_agent._errors import RailError
from buyer_agent._limits import human
from buyer_agent._spans import http_client_span
from buyer_agent._tls import tls_context
from buyer_agent._waits import SlowAnswer
from buyer_agent.rails._nodes import MAX_NODE_ANSWER_BYTES

__all__ = [
    "MAX_IN_FLIGHT",
    "EvmRpc",
    "NodeError",
    "answer_field",
    "block_of",
    "call_result",
    "quantity",
    "receipt_logs",
    "succeeded",
    "word",
]

#: Requests sent to the node at once (the rest wait their turn in order), and the connections kept
#: to it. Few: a node answers one call at a time per core, and httpcore's pool checks every idle
#: connection it holds (a readability poll each) for every request it starts and ends, which with
#: the dozens a thousand orders in flight leave open cost more CPU than the calls themselves.
MAX_IN_FLIGHT = 8
_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_MAX_DETAIL = 300
T = TypeVar("T")


class NodeError(RailError):
    """The node answered a call with a JSON-RPC ``error``: its ``code``, ``message`` and ``data``."""

    def __init__(self, method: str, code: Any, message: str, data: Any) -> None:
        shown = " ".join(message.split())[:_MAX_DETAIL]
        super().__init__(
            f"the EVM node refused {method}: {shown}" + (f" (code {code})" if code is not None else "")
        )
        self.method = method
        self.code = code
        self.node_message = message
        self.data = data


def quantity(value: Any, what: str) -> int:
    """A JSON-RPC quantity (``"0x1a"``) as an int; anything else is a :class:`RailError` naming ``what``."""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RailError(f"the EVM node answered {what} with {_shown(value)}, not a hex quantity")


def call_result(value: Any, what: str) -> bytes:
    """An ``eth_call`` result (``0x`` hex) as bytes; anything else is a :class:`RailError` naming ``what``."""
    if not isinstance(value, str) or value[:2] != "0x":
        raise RailError(f"the EVM node answered {what} with {type(value).__name__}, not 0x hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RailError(f"the EVM node answered {what} with malformed hex") from None


def word(value: Any, what: str) -> int:
    """The first 32-byte word of an ``eth_call`` result (0 when the call returned less)."""
    data = call_result(value, what)
    return int.from_bytes(data[:32], "big") if len(data) >= 32 else 0


def answer_field(value: Any, key: str, what: str) -> Any:
    """``value[key]`` of a node's answer (an object), or a :class:`RailError` naming ``what``."""
    if not isinstance(value, Mapping) or key not in value:
        raise RailError(f"the EVM node's answer for {what} has no {key!r}")
    return value[key]


def block_of(receipt: Mapping[str, Any]) -> int:
    """The block a receipt was mined in."""
    return quantity(answer_field(receipt, "blockNumber", "a receipt"), "a receipt's block number")


def succeeded(receipt: Mapping[str, Any]) -> bool:
    """True for a receipt with status 1 (success), False for 0 (reverted)."""
    return quantity(answer_field(receipt, "status", "a receipt"), "a receipt's status") == 1


def receipt_logs(receipt: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A receipt's logs, each an object."""
    logs = answer_field(receipt, "logs", "a receipt")
    if not isinstance(logs, list) or not all(isinstance(log, Mapping) for log in logs):
        raise RailError("the EVM node's receipt holds logs that are not a list of objects")
    return logs


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


class EvmRpc:
    """Calls one EVM node's JSON-RPC methods over HTTP.

    The HTTP client belongs to the event loop that first used it, and is closed with that loop (see
    :func:`_closed_with_loop`) if :meth:`aclose` is not called on it first; a call from another
    loop (a synchronous caller running each call in its own ``asyncio.run``) gets a client of its own.

    Args:
        url: The node's HTTP(S) JSON-RPC endpoint.
        timeout_s: Seconds a call may take (connect, send, answer).
        http: An ``httpx.AsyncClient`` to send through (not closed here); default: one made here.
    """

    def __init__(self, url: str, *, timeout_s: float = 30.0, http: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._timeout_s = timeout_s
        self._given = http
        self._http: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: AsyncGenerator[None, None] | None = None
        self._ids = 0
        self._batches = True  # until the node answers a batch with something else than a list

    async def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is not None and self._loop is loop:
            return self._http
        if self._given is not None:
            http = self._given
        else:
            http = httpx.AsyncClient(
                verify=tls_context(),
                timeout=self._timeout_s,
                limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
            )
            self._owner = _closed_with_loop(http)
            await anext(self._owner)
        self._http, self._loop = http, loop
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        return http

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The ``result`` of ``method(params)``.

        Raises:
            NodeError: The node answered with a JSON-RPC error.
            RailError: The node could not be reached or did not answer with JSON-RPC
                (``retryable`` when the transport failed).
        """
        self._ids += 1
        request = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        what = f"the EVM node's answer to {method}"
        return await self._exchange(
            request, what, method, lambda status, raw: _result(method, what, status, raw)
        )

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several read calls in one request (a JSON-RPC batch): each one's result, or its :class:`NodeError`.

        A node that does not answer batches (its answer is not a list) gets the calls one by one,
        side by side, from then on. Only for calls that are safe to send again: never a transaction.

        Raises:
            RailError: The node could not be reached, or its answer is not JSON-RPC.
        """
        if not self._batches or len(calls) == 1:
            return list(await asyncio.gather(*(self._outcome(method, params) for method, params in calls)))
        first = self._ids + 1
        self._ids += len(calls)
        requests = [
            {"jsonrpc": "2.0", "id": first + i, "method": method, "params": list(params)}
            for i, (method, params) in enumerate(calls)
        ]
        methods = [method for method, _ in calls]
        what = f"the EVM node's answer to {', '.join(methods)}"
        try:
            return await self._exchange(
                requests, what, "batch", lambda status, raw: _results(methods, first, what, status, raw)
            )
        except _NoBatch:
            self._batches = False
            return await self.batch(calls)

    async def _outcome(self, method: str, params: Sequence[Any]) -> Any:
        try:
            return await self.call(method, params)
        except NodeError as exc:
            return exc

    async def _exchange(
        self, payload: Any, what: str, rpc_method: str, judge: Callable[[int, bytes], T]
    ) -> T:
        """POST ``payload`` and let ``judge`` read the answer, under the call's span and wait line."""
        body = json.dumps(payload)
        http = await self._client()
        slow = SlowAnswer(what, self._timeout_s)
        span = http_client_span("POST", self.url, rpc_method=rpc_method)
        try:
            async with self._slots:
                request = http.build_request("POST", self.url, content=body, headers=_HEADERS)
                response = await http.send(request, stream=True)
                try:
                    span.status(response.status_code)
                    raw = await _read_bounded(response, what)
                finally:
                    await response.aclose()
            return judge(response.status_code, raw)
        except NodeError as exc:
            # The node's code only: its text may echo the request.
            span.fail(f"jsonrpc.{exc.code}" if exc.code is not None else "jsonrpc.error")
            raise
        except httpx.TransportError as exc:
            span.fail(exc)
            raise RailError(f"{what} failed: {_detail(exc)}", retryable=True) from exc
        except httpx.HTTPError as exc:
            span.fail(exc)
            raise RailError(f"{what} failed: {_detail(exc)}") from exc
        except BaseException as exc:
            span.fail(exc)
            raise
        finally:
            slow.done()
            span.end()

    async def aclose(self) -> None:
        """Close the HTTP connections of a client made here."""
        owner, self._owner, self._http, loop, self._loop = self._owner, None, None, self._loop, None
        if owner is not None and loop is asyncio.get_running_loop():
            await owner.aclose()
        # A client of another loop was closed with that loop when it ended (asyncio.run's shutdown).


async def _closed_with_loop(http: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Hold ``http`` open until closed: by :meth:`EvmRpc.aclose`, else by its event loop's shutdown.

    A started async generator is registered with its loop, which closes every one still open when
    it shuts down (``asyncio.run``, ``asyncio.Runner``). A rail used in one ``asyncio.run`` and
    closed, or dropped, in another (as synchronous callers do) so never leaves a connection open.
    """
    try:
        yield
    finally:
        await http.aclose()


class _NoBatch(Exception):
    """The node answered a batch with something else than a list: it does not take batches."""


def _parsed(what: str, status: int, raw: bytes) -> Any:
    if status >= 400:
        raise RailError(f"{what} failed: HTTP {status}")
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise RailError(f"{what} is not JSON ({len(raw)} bytes)") from None


def _result(method: str, what: str, status: int, raw: bytes) -> Any:
    """The ``result`` member of a JSON-RPC answer; raises the error it stands for."""
    outcome = _outcome_of(method, what, _parsed(what, status, raw))
    if isinstance(outcome, NodeError):
        raise outcome
    return outcome


def _results(methods: Sequence[str], first: int, what: str, status: int, raw: bytes) -> list[Any]:
    """Each call's result (or :class:`NodeError`) from a batch answer, matched by id."""
    if 400 <= status < 500:
        raise _NoBatch  # some nodes refuse batches with an HTTP error; the calls go one by one
    answers = _parsed(what, status, raw)
    if not isinstance(answers, list):
        raise _NoBatch
    by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
    out = []
    for i, method in enumerate(methods):
        answer = by_id.get(first + i)
        if answer is None:
            raise RailError(f"{what} holds no answer to {method}")
        out.append(_outcome_of(method, what, answer))
    return out


def _outcome_of(method: str, what: str, answer: Any) -> Any:
    """The result of one JSON-RPC answer object, or the :class:`NodeError` of its ``error``."""
    if not isinstance(answer, dict):
        raise RailError(f"{what} is not a JSON-RPC answer")
    error = answer.get("error")
    if error is not None:
        fields = error if isinstance(error, dict) else {}
        message = fields.get("message")
        return NodeError(
            method,
            fields.get("code"),
            message if isinstance(message, str) else _shown(error),
            fields.get("data"),
        )
    if "result" not in answer:
        raise RailError(f"{what} holds neither a result nor an error")
    return answer["result"]


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:_MAX_DETAIL]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _read_bounded(response: httpx.Response, what: str) -> bytes:
    """The body, refused once it passes :data:`MAX_NODE_ANSWER_BYTES` (an endless answer is not read on)."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_NODE_ANSWER_BYTES:
        raise _too_large(what)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_NODE_ANSWER_BYTES:
            raise _too_large(what)
    return b"".join(chunks)


def _too_large(what: str) -> RailError:
    return RailError(f"{what} is larger than the limit of {human(MAX_NODE_ANSWER_BYTES)}; not read further")
