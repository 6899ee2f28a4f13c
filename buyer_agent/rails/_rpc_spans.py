"""Client spans for the rails' JSON-RPC calls (web3 middleware, httpx hooks); no-ops unless tracing."""

from __future__ import annotations

import json
from typing import Any

from web3.middleware.base import Web3Middleware

from buyer_agent._spans import active, http_client_span

__all__ = ["RpcSpans", "trace_solana_client"]


class RpcSpans(Web3Middleware):
    """One HTTP client span per JSON-RPC request, with ``rpc.method``, under the step that made it."""

    async def async_wrap_make_request(self, make_request: Any) -> Any:
        """Wrap the provider's request function."""

        async def middleware(method: Any, params: Any) -> Any:
            if active() is None:  # not tracing: one check, nothing else
                return await make_request(method, params)
            url = str(getattr(self._w3.provider, "endpoint_uri", "") or "")
            span = http_client_span("POST", url, rpc_method=str(method))
            try:
                response = await make_request(method, params)
            except BaseException as exc:
                span.fail(exc)
                raise
            finally:
                span.end()
            error = response.get("error") if isinstance(response, dict) else None
            if error:
                # A JSON-RPC error answer: its code (the node's text may echo the request).
                code = error.get("code") if isinstance(error, dict) else None
                span.fail(f"jsonrpc.{code}" if code is not None else "jsonrpc.error")
            return response

        return middleware


_SPAN_KEY = "buyer_agent.span"


def _rpc_method(content: bytes) -> str:
    """The JSON-RPC method of a request body (``batch`` for a batch), without parsing its params."""
    try:
        doc = json.loads(content)
    except ValueError:
        return "unknown"
    if isinstance(doc, list):
        return "batch"
    method = doc.get("method") if isinstance(doc, dict) else None
    return str(method) if isinstance(method, str) else "unknown"


def trace_solana_client(client: Any, url: str) -> None:
    """Client spans for a solana ``AsyncClient``'s requests, through its HTTP session's event hooks.

    solana-py has no middleware: its provider's HTTP session (an httpx client) takes request and
    response hooks, public in httpx. A client without that session is left as it is.
    """
    session: Any = getattr(getattr(client, "_provider", None), "session", None)
    hooks = getattr(session, "event_hooks", None)
    if session is None or not isinstance(hooks, dict):
        return

    async def on_request(request: Any) -> None:
        if active() is None:
            return
        span = http_client_span("POST", url, rpc_method=_rpc_method(bytes(request.content or b"")))
        request.extensions[_SPAN_KEY] = span

    async def on_response(response: Any) -> None:
        span = response.request.extensions.pop(_SPAN_KEY, None)
        if span is not None:
            span.status(response.status_code)
            span.end()

    session.event_hooks = {
        "request": [*hooks.get("request", []), on_request],
        "response": [*hooks.get("response", []), on_response],
    }
