"""The fleet's pairing session in the order store, its token sealed; one renewer at a time by a lock there.

Two meta keys per (market, machine, agent address): ``fleet_pairing:…`` holds the current session
(pairing id, expiry, the delegation policy's limits, the token sealed by :class:`~buyer_agent.fleet.
_seal.Sealer`) and ``fleet_pairing_lock:…`` is taken with a compare-and-set while one worker pairs or
rotates. A lock left by a worker that died expires after :data:`LOCK_TTL_S`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent._money import Money
from buyer_agent._time import parse_time
from buyer_agent._urls import normalise_market_url
from buyer_agent._waits import EVERY_S, report_wait
from buyer_agent.fleet._seal import Sealer
from buyer_agent.journal import OrderStore, SwappableMeta
from buyer_agent.journal._canonical import format_at
from buyer_agent.signers import EvmSigner
from buyer_agent.workflow import DelegationPolicyLimits, SharedSession

__all__ = ["LOCK_TTL_S", "StorePairingShare"]

log = logging.getLogger(__name__)

#: Seconds a renewal lock holds before another worker may take it (its holder died mid-rotation).
LOCK_TTL_S = 20.0


class StorePairingShare:
    """A :class:`~buyer_agent.workflow.PairingShare` in an order store's meta values.

    Args:
        store: The order store the workers share (it must offer ``swap_meta``: both built-in ones do).
        signer: The agent's EVM signer; the sealing key is derived from its signature.
        market_url: The market the pairing belongs to.
        machine_id: The machine it is for.
    """

    def __init__(self, store: OrderStore, signer: EvmSigner, *, market_url: str, machine_id: str) -> None:
        if not isinstance(store, SwappableMeta):
            raise JournalError(f"the store {store.label} cannot share a pairing (no swap_meta)")
        self._store = store
        self._swap: SwappableMeta = store
        self._signer = signer
        where = f"{normalise_market_url(market_url)}|{machine_id}|{signer.address.lower()}"
        self._key = f"fleet_pairing:{where}"
        self._lock_key = f"fleet_pairing_lock:{where}"
        self._sealer: Sealer | None = None
        self._me = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"StorePairingShare({self._key!r})"

    async def _sealing(self) -> Sealer:
        if self._sealer is None:
            self._sealer = await Sealer.for_signer(self._signer, self._key)
        return self._sealer

    async def load(self) -> SharedSession | None:
        """The session last published, or None (none yet, unreadable, or sealed by another key)."""
        raw = await self._store.get_meta(self._key)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            token = (await self._sealing()).open(str(doc["sealed_session"]), self._key)
            expires = parse_time(doc["expires_at"]) if doc.get("expires_at") else None
            policy = _policy_from(doc.get("policy"))
            pairing_id = str(doc["pairing_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("the shared pairing session in %s is unreadable; pairing anew", self._store.label)
            return None
        if token is None:
            log.warning("the shared pairing session does not open with this agent's key; rotating it")
            return None
        return SharedSession(pairing_id, token, expires, policy)

    async def publish(self, session: SharedSession) -> None:
        """Make ``session`` the one every worker of this agent uses (its token sealed)."""
        sealed = (await self._sealing()).seal(session.token, self._key)
        doc = {
            "pairing_id": session.pairing_id,
            "expires_at": format_at(session.expires_at) if session.expires_at else None,
            "policy": _policy_doc(session.policy),
            "sealed_session": sealed,
        }
        await self._store.set_meta(self._key, json.dumps(doc, sort_keys=True))

    @asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """Hold the fleet's renewal lock (compare-and-set in the store) for the block."""
        mine = json.dumps({"owner": self._me, "until": time.time() + LOCK_TTL_S})
        attempt = 0
        while True:
            held = await self._store.get_meta(self._lock_key)
            if held is None or _expired(held):
                if await self._swap.swap_meta(self._lock_key, held, mine):
                    break
                continue
            attempt += 1
            report_wait(
                "another worker renewing the shared pairing session",
                attempt=attempt,
                next_in_s=0.2,
                every_s=EVERY_S,
            )
            await asyncio.sleep(0.2)
        try:
            yield
        finally:
            # Only our own lock is removed: one that expired and was taken over stays its taker's.
            await self._swap.swap_meta(self._lock_key, mine, None)


def _expired(held: str) -> bool:
    try:
        return float(json.loads(held)["until"]) < time.time()
    except (ValueError, KeyError, TypeError):
        return True  # unreadable: nobody can be holding it


def _policy_doc(policy: DelegationPolicyLimits | None) -> dict[str, Any] | None:
    """The policy's limits as the market words a policy (amounts as text, one currency)."""
    if policy is None:
        return None
    limits = [m for m in (policy.per_transaction_limit, policy.daily_spend_limit) if m is not None]
    currency = limits[0].currency if limits else "USDC"

    def amount(m: Money | None) -> str | None:
        return str(m.to_decimal()) if m is not None else None

    return {
        "currency": currency,
        "per_transaction_limit": amount(policy.per_transaction_limit),
        "daily_spend_limit": amount(policy.daily_spend_limit),
        "allowed_service_ids": sorted(policy.allowed_service_ids),
        "denied_service_ids": sorted(policy.denied_service_ids),
        "allowed_skill_keys": sorted(policy.allowed_skill_keys),
        "denied_skill_keys": sorted(policy.denied_skill_keys),
    }


def _policy_from(doc: Any) -> DelegationPolicyLimits | None:
    return DelegationPolicyLimits.from_policy(doc) if isinstance(doc, dict) else None
