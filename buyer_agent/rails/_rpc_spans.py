"""RpcSpans: a web3 middleware that opens a client span per JSON-RPC call (a no-op while not tracing)."""

from __future__ import annotations

from typing import Any

from web3.middleware.base import Web3Middleware

from buyer_agent._spans import active, http_client_span

__all__ = ["RpcSpans"]


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
