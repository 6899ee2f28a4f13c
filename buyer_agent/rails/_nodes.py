"""The rails' JSON-RPC transports: a slow node is said on stderr, an endless answer is not read to the end.

web3's and solana-py's HTTP providers wait for a node silently (up to their 30 s timeout, and
solana-py tries once more) and read whatever a node sends into memory. Found by the audit of issue 19:
a node that accepted the connection and never answered held a run 30 s per try with no output, and
one that streamed forever took the process's memory. These providers, subclasses of the two
libraries' own, report a request still without an answer after 2 s (then every 5 s) on the
``buyer_agent.wait`` logger, and stop reading an answer past :data:`MAX_NODE_ANSWER_BYTES`.
"""

from __future__ import annotations

from typing import Any

import httpx2
from solana.rpc.async_http_provider import AsyncHTTPProvider as SolanaHTTPProvider
from web3 import AsyncHTTPProvider
from web3.types import RPCEndpoint

from buyer_agent._errors import RailError
from buyer_agent._limits import human
from buyer_agent._waits import SlowAnswer

__all__ = ["MAX_NODE_ANSWER_BYTES", "EvmNodeProvider", "SolanaNodeProvider"]

#: The largest answer read from a chain node (a receipt, a transaction, balances are kilobytes).
MAX_NODE_ANSWER_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024


def _too_large(what: str) -> RailError:
    return RailError(f"{what} is larger than the limit of {human(MAX_NODE_ANSWER_BYTES)}; not read further")


class EvmNodeProvider(AsyncHTTPProvider):
    """web3's async HTTP provider, saying when the node is slow and bounding what it reads."""

    def __init__(self, endpoint_uri: str, *, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout_s}, **kwargs)
        self._timeout_s = timeout_s

    async def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        assert self.endpoint_uri is not None  # given to the constructor
        watch = SlowAnswer(f"the EVM node's answer to {method}", self._timeout_s)
        try:
            response = await self._request_session_manager.async_get_response_from_post_request(
                self.endpoint_uri, data=request_data, **self.get_request_kwargs()
            )
            try:
                response.raise_for_status()
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > MAX_NODE_ANSWER_BYTES:
                        raise _too_large(f"the EVM node's answer to {method}")
                return bytes(body)
            finally:
                response.release()
        finally:
            watch.done()


class SolanaNodeProvider(SolanaHTTPProvider):
    """solana-py's async HTTP provider, saying when the node is slow and bounding what it reads."""

    async def _post_request_once(self, content: str, headers: dict[str, str]) -> httpx2.Response:
        watch = SlowAnswer("the Solana node's answer", float(self.timeout or 30))
        try:
            stream = self.session.stream("POST", self.endpoint_uri, content=content, headers=headers)
            async with stream as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_NODE_ANSWER_BYTES:
                        raise _too_large("the Solana node's answer")
                return httpx2.Response(
                    status_code=resp.status_code,
                    headers=resp.headers,
                    content=bytes(body),
                    request=resp.request,
                )
        finally:
            watch.done()
