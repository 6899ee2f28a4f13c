"""An in-memory NonceStore: concurrent orders from one wallet in one process never share a nonce."""

from __future__ import annotations

import threading

__all__ = ["MemoryNonceStore"]


class MemoryNonceStore:
    """Hands out EVM nonces under a lock; forgets them when the process ends.

    Use the journal (``buyer_agent.journal.Journal``) as the store when reservations must survive a
    restart; this one suits tests and single-run agents.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], int] = {}

    def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """Reserve ``count`` consecutive nonces; return the first (``max(chain_next, last + 1)``)."""
        if count < 1:
            raise ValueError("reserve at least one nonce")
        key = (chain, address.lower())
        with self._lock:
            first = max(chain_next, self._next.get(key, 0))
            self._next[key] = first + count
            return first
