"""Client spans for the Solana rail's JSON-RPC calls (httpx hooks); no-ops unless tracing.

The EVM rail's transport (:mod:`buyer_agent.rails._evm_rpc`) opens its spans itself.
"""

from __future__ import annotations

import json
from typing import Any

from buyer_agent._spans import active, http_client_span

__all__ = ["trace_solana_client"]


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
