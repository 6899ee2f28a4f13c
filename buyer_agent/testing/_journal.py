"""An in-memory journal for tests: nothing on disk, everything else as in production."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from buyer_agent.journal import Journal, utc_now

__all__ = ["memory_journal"]


def memory_journal(*, clock: Callable[[], datetime] = utc_now) -> Journal:
    """A :class:`Journal` over an in-memory SQLite database (``:memory:``), gone when it is closed.

    It has the schema, the hash chain, the ledger, the nonces and the leases of a journal on disk,
    so a :class:`~buyer_agent.workflow.Runner` over it behaves as in production. Pass ``clock`` to
    make event times (and so deadlines) deterministic.
    """
    return Journal(None, clock=clock)
