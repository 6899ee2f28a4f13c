"""One pairing session for every worker of an agent: what a :class:`PairingSession` shares, and through what.

The market keeps one session per pairing: rotating it gives a new token and ends the one before. So
workers that share a pairing (one daily budget, any of them resuming any order) must share its token
too, or each rotation would lock the others out. A :class:`PairingShare` keeps the current session
where every worker finds it (``buyer_agent.fleet`` keeps it in the order store, sealed) and lets one
worker at a time pair or rotate.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from buyer_agent._redact import Secret
from buyer_agent.workflow._pairing import DelegationPolicyLimits

__all__ = ["PairingShare", "SharedSession"]


@dataclass(frozen=True, slots=True)
class SharedSession:
    """A pairing session as the workers of one agent share it."""

    pairing_id: str
    token: Secret = field(repr=False)
    expires_at: datetime | None
    policy: DelegationPolicyLimits | None


class PairingShare(Protocol):
    """Where the workers of one agent find its current pairing session, and who may renew it."""

    async def load(self) -> SharedSession | None:
        """The session last published (None: none yet, or none this agent can open)."""
        ...

    async def publish(self, session: SharedSession) -> None:
        """Make ``session`` the one every worker uses."""
        ...

    def renewing(self) -> AbstractAsyncContextManager[None]:
        """Held while pairing or rotating: one worker at a time, the others wait, then load."""
        ...
