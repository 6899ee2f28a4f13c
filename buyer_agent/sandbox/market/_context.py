"""What every endpoint handler gets: the store, the chains, the settings, and the auth checks."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buyer_agent._redact import Secret
from buyer_agent.sandbox.market._catalogue import ChainFacts
from buyer_agent.sandbox.market._errors import ApiError
from buyer_agent.sandbox.market._pairing import SessionClaims, decode_token, policy_hash
from buyer_agent.sandbox.market._state import Store
from buyer_agent.sandbox.market._wire import now

__all__ = ["Answer", "Call", "MarketContext", "MarketSettings"]

#: A handler's answer: HTTP status and JSON body (None for 204).
Answer = tuple[int, Any]


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed request: path parameters, query, JSON body and headers (lower-case names)."""

    params: Mapping[str, str]
    query: Mapping[str, str]
    body: dict[str, Any]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MarketSettings:
    """Tunables: lifetimes (seconds) and the demo machine's identity."""

    machine_id: str = "mach_sandbox_demo"
    machine_identity_ref: str = "did:peaq:31337001"
    quote_ttl_s: float = 300.0
    challenge_ttl_s: float = 300.0
    session_ttl_s: float = 3600.0
    dispute_delay_s: float = 0.2
    #: False: order creation leaves the pairing's daily limit unchecked, so a test sees the buyer's
    #: own budget ledger hold it alone (as it must when workers race the market's count).
    enforce_daily_limit: bool = True


@dataclass(slots=True)
class MarketContext:
    """Shared by all handlers. ``evm`` is an ``EvmChain`` (or None), ``solana`` a Solana gateway."""

    store: Store
    facts: ChainFacts
    api_key: Secret
    jwt_secret: Secret
    settings: MarketSettings = field(default_factory=MarketSettings)
    evm: Any = None
    solana: Any = None
    evm_provider_keys: dict[str, Any] = field(default_factory=dict)
    solana_provider_keys: dict[str, Any] = field(default_factory=dict)
    #: The market's own EVM account that submits x402 settlements (an ``EvmWallet``; pays the gas).
    x402_facilitator: Any = None
    clock: Callable[[], datetime] = now
    background: Callable[[Callable[[], None], float], None] | None = None
    public_info: dict[str, Any] = field(default_factory=dict)

    # --- auth --------------------------------------------------------------------------------------

    def require_api_key(self, call: Call) -> None:
        """Platform auth: a valid ``x-api-key``.

        Raises:
            ApiError: ``AUTH_REQUIRED`` or ``AUTH_INVALID`` (401).
        """
        given = call.headers.get("x-api-key")
        if not given:
            raise ApiError(401, "AUTH_REQUIRED", "x-api-key header required")
        if not hmac.compare_digest(given.encode(), self.api_key.reveal().encode()):
            raise ApiError(401, "AUTH_INVALID", "x-api-key is not valid")

    def require_agent(self, call: Call) -> tuple[dict[str, Any], SessionClaims]:
        """Agent-pairing auth: a live session token of an active pairing with the current policy.

        An ``x-api-key``, when sent as well, must be valid.

        Raises:
            ApiError: ``AGENT_AUTH_REQUIRED`` / ``AGENT_AUTH_INVALID`` / ``AGENT_AUTH_EXPIRED`` (401),
                ``AGENT_PAIRING_INACTIVE`` (403) for a paused pairing, ``AUTH_INVALID``.
        """
        if call.headers.get("x-api-key"):
            self.require_api_key(call)
        token = call.headers.get("x-agent-pairing-token")
        if not token:
            raise ApiError(401, "AGENT_AUTH_REQUIRED", "x-agent-pairing-token header required")
        claims = decode_token(self.jwt_secret, token, int(self.clock().timestamp()))
        pairing = self.store.get("pairings", claims.pairing_id)
        invalid = ApiError(
            401, "AGENT_AUTH_INVALID", "pairing token is no longer valid; pair again or rotate"
        )
        if pairing is None or pairing["status"] == "revoked" or pairing.get("sessionId") != claims.session_id:
            raise invalid
        if policy_hash(pairing["delegationPolicy"]) != claims.delegation_policy_hash:
            raise ApiError(
                401, "AGENT_AUTH_INVALID", "the delegation policy changed; rotate the session for a new token"
            )
        if pairing["status"] != "active":
            raise ApiError(403, "AGENT_PAIRING_INACTIVE", f"pairing is {pairing['status']}")
        return pairing, claims

    def check_machine(self, machine_id: str | None, field_name: str = "machineId") -> str:
        """The demo machine's id, or ``NOT_FOUND`` for another machine."""
        if machine_id is not None and machine_id != self.settings.machine_id:
            raise ApiError(404, "NOT_FOUND", f"machine {machine_id!r} not found", {"field": field_name})
        return self.settings.machine_id

    def later(self, job: Callable[[], None], delay_s: float) -> None:
        """Run ``job`` in the background after ``delay_s`` (or right away when no runner is set)."""
        if self.background is None:
            job()
        else:
            self.background(job, delay_s)
