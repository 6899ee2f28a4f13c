"""The agent's pairing with its machine: pair, rotate, re-pair; the token lives in memory only.

Over ~400 lines: the session's one state machine (pair, rotate, re-pair, adopt a session another
worker renewed) reads best in one class; the policy type and helpers above it are what it parses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from buyer_agent._errors import OrchestrationApiError, OrchestrationConfigError
from buyer_agent._money import CURRENCY_DECIMALS, Money
from buyer_agent._redact import Secret
from buyer_agent._time import parse_time
from buyer_agent._urls import normalise_market_url
from buyer_agent.signers import EvmSigner, as_evm_signer

if TYPE_CHECKING:
    from buyer_agent.workflow._pairing_share import PairingShare, SharedSession

__all__ = ["AUTH_REJECTED", "DelegationPolicyLimits", "MetaStore", "PairingSession"]

log = logging.getLogger(__name__)

#: Error codes that mean "this pairing token is no longer accepted".
AUTH_REJECTED = frozenset({"AGENT_AUTH_INVALID", "AGENT_AUTH_EXPIRED"})
# Codes after which the stored pairing cannot be rotated and a new pairing is needed; a proof the
# market refuses for the stored pairing (issued to another agent) is among them: it is replaced.
_PAIRING_GONE = frozenset(
    {
        "NOT_FOUND",
        "AGENT_PAIRING_UNAVAILABLE",
        "AGENT_PAIRING_INACTIVE",
        "AGENT_PAIRING_REQUIRED",
        "AGENT_PAIRING_PROOF_INVALID",
    }
)


class MetaStore(Protocol):
    """Where the pairing id is remembered (the journal's meta table)."""

    def get_meta(self, key: str) -> str | None:
        """A stored value."""
        ...

    def set_meta(self, key: str, value: str | None) -> None:
        """Store a value."""
        ...


class PairingMarket(Protocol):
    """The market calls pairing needs (``AsyncMarketClient`` has them)."""

    async def create_agent_pairing_challenge(self, machine_id: str, params: Any, **kw: Any) -> Any:
        """POST …/agent-pairings/challenges."""
        ...

    async def create_agent_pairing(self, machine_id: str, params: Any, **kw: Any) -> Any:
        """POST …/agent-pairings."""
        ...

    async def create_agent_pairing_session(
        self, machine_id: str, pairing_id: str, params: Any, **kw: Any
    ) -> Any:
        """POST …/agent-pairings/:id/sessions."""
        ...


@dataclass(frozen=True, slots=True)
class DelegationPolicyLimits:
    """The pairing's delegation policy as exact Money and id sets (empty allow-list = all allowed)."""

    per_transaction_limit: Money | None = None
    daily_spend_limit: Money | None = None
    allowed_service_ids: frozenset[str] = frozenset()
    denied_service_ids: frozenset[str] = frozenset()
    allowed_skill_keys: frozenset[str] = frozenset()
    denied_skill_keys: frozenset[str] = frozenset()

    @classmethod
    def from_policy(cls, policy: Any) -> DelegationPolicyLimits:
        """Build from a market ``DelegationPolicy`` (object or mapping; amounts Decimal or str)."""

        def get(name: str) -> Any:
            if isinstance(policy, Mapping):
                camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
                return policy.get(name, policy.get(camel))
            return getattr(policy, name, None)

        currency = str(get("currency") or "USDC").upper()
        decimals = CURRENCY_DECIMALS.get(currency, 6)

        def money(value: Any) -> Money | None:
            if value is None:
                return None
            if isinstance(value, float):
                value = Decimal(str(value))
            return Money.of(Decimal(str(value)), currency, decimals)

        def ids(name: str) -> frozenset[str]:
            return frozenset(str(v) for v in (get(name) or ()))

        return cls(
            per_transaction_limit=money(get("per_transaction_limit")),
            daily_spend_limit=money(get("daily_spend_limit")),
            allowed_service_ids=ids("allowed_service_ids"),
            denied_service_ids=ids("denied_service_ids"),
            allowed_skill_keys=ids("allowed_skill_keys"),
            denied_skill_keys=ids("denied_skill_keys"),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form (for the journal)."""
        return {
            "per_transaction_limit": self.per_transaction_limit.to_json()
            if self.per_transaction_limit
            else None,
            "daily_spend_limit": self.daily_spend_limit.to_json() if self.daily_spend_limit else None,
            "allowed_service_ids": sorted(self.allowed_service_ids),
            "denied_service_ids": sorted(self.denied_service_ids),
            "allowed_skill_keys": sorted(self.allowed_skill_keys),
            "denied_skill_keys": sorted(self.denied_skill_keys),
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return parse_time(value)


def _jwt_expiry(token: Secret) -> datetime | None:
    """The ``exp`` claim of a JWT, read without verifying (only to know when it stops working)."""
    parts = token.reveal().split(".")
    if len(parts) != 3:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(body["exp"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None


def _wire_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The policy as the market takes it: limits are JSON numbers, so text amounts become Decimal."""
    out = dict(policy)
    for name in ("per_transaction_limit", "daily_spend_limit"):
        value = out.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                out[name] = Decimal(str(value))
            except ArithmeticError:
                raise OrchestrationConfigError(
                    f"delegation_policy.{name}: {value!r} is not an amount"
                ) from None
    return out


def _secret(value: Any) -> Secret:
    return value if isinstance(value, Secret) else Secret(str(value))


def _meta_key(market: str, machine_id: str, agent_address: str | None) -> str:
    """Where the pairing of one agent with one machine on one market is remembered.

    Keyed by all three: a pairing belongs to the agent it was issued to (another key in the same
    state dir must not rotate it) and to the market that issued it.
    """
    return f"pairing_id:{normalise_market_url(market)}|{machine_id}|{(agent_address or '').lower()}"


def _retry_safely() -> dict[str, str]:
    """Request options with a fresh idempotency key (sent for a market that honours one; relied on nowhere).

    The client repeats a pairing write only when the market provably did not process it (no
    connection, 429). After a lost answer (a 5xx, a timeout) the pair step is repeated by the drive
    loop, from a fresh challenge: a new challenge or session replaces the old one, and a pairing whose
    answer was lost stays unused (no order, no spend is ever made under it).
    """
    return {"idempotency_key": f"pair-{uuid.uuid4().hex}"}


class PairingSession:
    """A pairing token kept valid for one machine.

    Platform-key mode (:meth:`with_platform_key`) pairs with a challenge signed by the agent's own EVM
    signer (EIP-191, through :class:`~buyer_agent.signers.EvmSigner`: the key may live in another
    process), stores the pairing id in the journal's meta table, rotates the session before it
    expires and, when the market rejects the token (e.g. after a policy change), rotates the session
    or — if the pairing is gone — pairs anew. Token mode (:meth:`with_token`) uses a pairing id and
    token handed over by the operator and fails clearly once that token expires.

    The token is held as a :class:`Secret` in memory only; it is never journaled.
    """

    def __init__(
        self,
        *,
        machine_id: str,
        market: PairingMarket | None = None,
        agent_key: EvmSigner | Secret | None = None,
        agent_provider: str = "buyer_agent",
        agent_role: str = "buyer",
        delegation_policy: Mapping[str, Any] | None = None,
        store: MetaStore | None = None,
        pairing_id: str | None = None,
        token: Secret | None = None,
        clock: Callable[[], datetime] = _utc_now,
        rotate_margin_s: float = 60.0,
        market_url: str | None = None,
        share: PairingShare | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.pairing_id: str | None = pairing_id
        self._market = market
        self._signer: EvmSigner | None = as_evm_signer(agent_key) if agent_key is not None else None
        self._provider = agent_provider
        self._role = agent_role
        self._requested_policy = _wire_policy(delegation_policy) if delegation_policy is not None else None
        self._store = store
        self._token: Secret | None = token
        self._expires_at: datetime | None = _jwt_expiry(token) if token is not None else None
        self._policy: DelegationPolicyLimits | None = None
        self._clock = clock
        self._margin = timedelta(seconds=rotate_margin_s)
        self._address: str | None = self._signer.address if self._signer is not None else None
        # One renewal at a time: orders driven side by side all ask for a token at once, and each
        # rotation invalidates the token before it, so parallel renewals would reject each other.
        self._renewing: asyncio.Lock | None = None
        # The market part of the stored pairing's key: the URL given, else the client's own.
        self.market_url = market_url or str(getattr(market, "base_url", "") or "")
        # Workers of one agent share one session through it (platform-key mode only).
        self._share = share if self._signer is not None else None
        if self.pairing_id is None and store is not None:
            self.pairing_id = store.get_meta(self._stored_key())

    def __repr__(self) -> str:
        mode = "platform-key" if self._signer is not None else "token"
        return f"PairingSession(machine_id={self.machine_id!r}, pairing_id={self.pairing_id!r}, mode={mode})"

    @classmethod
    def with_platform_key(
        cls,
        market: PairingMarket,
        *,
        machine_id: str,
        agent_key: EvmSigner | Secret | str,
        agent_provider: str = "buyer_agent",
        agent_role: str = "buyer",
        delegation_policy: Mapping[str, Any] | None = None,
        store: MetaStore | None = None,
        clock: Callable[[], datetime] = _utc_now,
        market_url: str | None = None,
        share: PairingShare | None = None,
    ) -> PairingSession:
        """A session that pairs and rotates by itself (the market client carries the platform key).

        Args:
            market: The market client, configured with the operator's ``x-api-key``.
            machine_id: The machine the agent acts for.
            agent_key: The agent's EVM signer, or its private key (then signed in this process); it
                signs the pairing challenge.
            agent_provider: The provider name the pairing records.
            agent_role: The role the pairing records.
            delegation_policy: The policy to request (snake_case keys); None = the market's default.
            store: Where the pairing id is remembered between runs (the Journal), per market,
                machine and agent address.
            clock: The time source (rotation before expiry).
            market_url: The market the pairing is stored under (default: ``market.base_url``).
            share: Where the workers of this agent share one session (a fleet): a session another
                worker paired or rotated is adopted from it instead of rotated again, and only one
                worker at a time pairs or rotates.
        """
        return cls(
            machine_id=machine_id,
            market=market,
            agent_key=agent_key if isinstance(agent_key, EvmSigner) else _secret(agent_key),
            agent_provider=agent_provider,
            agent_role=agent_role,
            delegation_policy=delegation_policy,
            store=store,
            clock=clock,
            market_url=market_url,
            share=share,
        )

    @classmethod
    def with_token(
        cls,
        *,
        machine_id: str,
        pairing_id: str,
        token: Secret | str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> PairingSession:
        """A session over an operator-issued pairing (``PEAQOS_AGENT_PAIRING_ID`` / ``_TOKEN``)."""
        return cls(machine_id=machine_id, pairing_id=pairing_id, token=_secret(token), clock=clock)

    @property
    def agent_address(self) -> str | None:
        """The agent's EVM address (platform-key mode)."""
        return self._address

    def policy(self) -> DelegationPolicyLimits | None:
        """The pairing's delegation policy limits, when known (after pairing; None in token mode)."""
        return self._policy

    async def token(self) -> Secret:
        """A valid pairing token, pairing or rotating first when needed.

        Raises:
            OrchestrationConfigError: token mode and the operator's token has expired.
        """
        now = self._clock()
        fresh = self._token is not None and (
            self._expires_at is None or now + self._margin < self._expires_at
        )
        if fresh:
            assert self._token is not None
            return self._token
        if self._signer is None:
            if self._token is not None and self._expires_at is not None and now < self._expires_at:
                return self._token  # inside the margin but still valid; nothing can rotate it
            raise OrchestrationConfigError(
                f"the pairing token for pairing {self.pairing_id} (PEAQOS_AGENT_PAIRING_TOKEN) has expired"
                + (f" at {self._expires_at.isoformat()}" if self._expires_at else "")
                + "; ask the operator for a new pairing token, or configure PEAQOS_API_KEY and an agent key"
            )
        await self._renew(None)
        assert self._token is not None
        return self._token

    async def _renew(self, rejected: Secret | None) -> None:
        """Pair or rotate unless another caller already replaced the token while we waited."""
        if self._renewing is None:
            self._renewing = asyncio.Lock()
        stale = self._token if rejected is None else rejected
        async with self._renewing:
            now = self._clock()
            valid = self._token is not None and (
                self._expires_at is None or now + self._margin < self._expires_at
            )
            if self._token is not stale and valid:
                return
            if self._share is not None:
                await self._renew_shared(stale)
                return
            self._token = None
            self._expires_at = None
            await self._pair_or_rotate()

    async def _renew_shared(self, stale: Secret | None) -> None:
        """Adopt the session another worker renewed, or renew it for all (one worker at a time)."""
        share = self._share
        assert share is not None
        # Most often another worker already paired or rotated: its session is this one's too.
        if self._adopt_shared(await share.load(), stale):
            return
        async with share.renewing():
            current = await share.load()
            if self._adopt_shared(current, stale):  # renewed by the worker we waited for
                return
            if current is not None:
                self.pairing_id = current.pairing_id
            self._token = None
            self._expires_at = None
            await self._pair_or_rotate()
            assert self._token is not None and self.pairing_id is not None
            await share.publish(self._shared_session())

    def _adopt_shared(self, session: SharedSession | None, stale: Secret | None) -> bool:
        """Take ``session`` as this one's when it is not the rejected token and still fresh."""
        if session is None or (stale is not None and session.token.reveal() == stale.reveal()):
            return False
        if session.expires_at is not None and self._clock() + self._margin >= session.expires_at:
            return False
        self.pairing_id = session.pairing_id
        self._token = session.token
        self._expires_at = session.expires_at
        self._policy = session.policy
        return True

    def _shared_session(self) -> SharedSession:
        from buyer_agent.workflow._pairing_share import SharedSession

        assert self._token is not None and self.pairing_id is not None
        return SharedSession(self.pairing_id, self._token, self._expires_at, self._policy)

    async def refresh(self, reason: str, token: Secret | None = None) -> None:
        """The market rejected the token (``reason`` is its error code): get a new one.

        Platform-key mode rotates the session, or pairs anew when the pairing is gone (once, when
        ``token`` — the rejected one — was already replaced by a concurrent caller). Token mode raises a
        clear error.
        """
        log.info("pairing token rejected (%s); refreshing", reason)
        if self._signer is None:
            raise OrchestrationConfigError(
                f"the market rejected the pairing token for pairing {self.pairing_id} ({reason}); "
                "ask the operator for a new pairing token (PEAQOS_AGENT_PAIRING_TOKEN)"
            )
        await self._renew(token if token is not None else self._token)

    async def _pair_or_rotate(self) -> None:
        if self.pairing_id is not None:
            try:
                await self._rotate(self.pairing_id)
                return
            except OrchestrationApiError as exc:
                if exc.code not in _PAIRING_GONE and exc.code not in AUTH_REJECTED:
                    raise
                log.info("pairing %s cannot be rotated (%s); pairing anew", self.pairing_id, exc.code)
        await self._pair()

    async def _proof(self) -> dict[str, str]:
        assert self._market is not None and self._signer is not None and self._address is not None
        challenge = await self._market.create_agent_pairing_challenge(
            self.machine_id,
            {"agent_address": self._address, "agent_provider": self._provider, "agent_role": self._role},
            options=_retry_safely(),
        )
        item = getattr(challenge, "item", challenge)
        # The message is signed byte for byte as the market sent it.
        signature = await self._signer.sign_message(str(item.message).encode("utf-8"))
        return {"challenge_id": str(item.challenge_id), "signature": "0x" + signature.hex()}

    async def _rotate(self, pairing_id: str) -> None:
        assert self._market is not None
        proof = await self._proof()
        resp = await self._market.create_agent_pairing_session(
            self.machine_id, pairing_id, {"agent_proof": proof}, options=_retry_safely()
        )
        self._adopt(getattr(resp, "item", resp))

    async def _pair(self) -> None:
        assert self._market is not None
        proof = await self._proof()
        params: dict[str, Any] = {
            "agent_address": self._address,
            "agent_provider": self._provider,
            "agent_role": self._role,
            "agent_proof": proof,
        }
        if self._requested_policy is not None:
            params["delegation_policy"] = self._requested_policy
        resp = await self._market.create_agent_pairing(self.machine_id, params, options=_retry_safely())
        self._adopt(getattr(resp, "item", resp))

    def _adopt(self, pairing: Any) -> None:
        token = getattr(pairing, "pairing_token", None)
        if token is None:
            raise OrchestrationConfigError("the market returned a pairing without a pairing token")
        self._token = _secret(token)
        self.pairing_id = str(pairing.id)
        self._expires_at = _parse_time(getattr(pairing, "session_expires_at", None)) or _jwt_expiry(
            self._token
        )
        policy = getattr(pairing, "delegation_policy", None)
        self._policy = DelegationPolicyLimits.from_policy(policy) if policy is not None else None
        if self._store is not None:
            self._store.set_meta(self._stored_key(), self.pairing_id)

    def _stored_key(self) -> str:
        return _meta_key(self.market_url, self.machine_id, self._address)

    @property
    def expires_at(self) -> datetime | None:
        """When the current session token stops working, when known."""
        return self._expires_at

    @property
    def stored(self) -> bool:
        """Whether a pairing id is remembered for this (market, machine, agent)."""
        return self._store is not None and self._store.get_meta(self._stored_key()) is not None

    def carry_over(self, market_url: str) -> None:
        """Start from the pairing stored for this machine and agent on ``market_url`` (a moved market).

        Only when none is stored here yet; the next :meth:`token` rotates it on this market, or pairs
        anew if this market does not know it.
        """
        if self.pairing_id is None and self._store is not None and self._signer is not None:
            self.pairing_id = self._store.get_meta(_meta_key(market_url, self.machine_id, self._address))

    def forget(self) -> None:
        """Drop the stored pairing (and the token in memory): the next :meth:`token` pairs anew.

        Raises:
            OrchestrationConfigError: token mode (the operator's pairing is not ours to drop).
        """
        if self._signer is None:
            raise OrchestrationConfigError(
                "the pairing comes from PEAQOS_AGENT_PAIRING_ID / PEAQOS_AGENT_PAIRING_TOKEN; "
                "unset them to pair with PEAQOS_API_KEY and the agent key instead"
            )
        if self._store is not None:
            self._store.set_meta(self._stored_key(), None)
        self.pairing_id = None
        self._token = None
        self._expires_at = None
        self._policy = None
