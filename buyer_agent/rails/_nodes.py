"""The rails' node transports: a slow node is said on stderr, an endless answer is not read to the end.

solana-py's HTTP provider waits for a node silently (up to its 30 s timeout, then tries once more)
and reads whatever a node sends into memory. Found by the audit of issue 19: a node that accepted the
connection and never answered held a run 30 s per try with no output, and one that streamed forever
took the process's memory. The provider here, a subclass of the library's own, reports a request
still without an answer after 2 s (then every 5 s) on the ``buyer_agent.wait`` logger, and stops
reading an answer past :data:`MAX_NODE_ANSWER_BYTES`. The EVM rail's own transport
(:mod:`buyer_agent.rails._evm_rpc`) keeps the same two rules.
"""

from __future__ import annotations

import httpx2
from solana.rpc.async_http_provider import AsyncHTTPProvider as SolanaHTTPProvider

from buyer_agent._errors import RailError
from buyer_agent._limits import human
from buyer_agent._waits import SlowAnswer

__all__ = ["MAX_NODE_ANSWER_BYTES", "SolanaNodeProvider"]

#: The largest answer read from a chain node (a receipt, a transaction, balances are kilobytes).
MAX_NODE_ANSWER_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024


def _too_large(what: str) -> RailError:
    return RailError(f"{what} is larger than the limit of {human(MAX_NODE_ANSWER_BYTES)}; not read further")


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
