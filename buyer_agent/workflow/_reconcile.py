"""Every market write the agent makes, and the read that tells whether it happened after its answer was lost.

The market documents no idempotency key (only ``payment-intent`` and ``escrow-lock`` are idempotent
by their meaning), so a write whose answer was lost (a timeout after sending, a dropped connection, a
5xx) is never simply sent again: :data:`WRITES` names, for each write, the read that tells whether
the market already holds it. :class:`~buyer_agent.workflow._effects.Effects` runs that read before
anything else after such a failure (and before repeating a write an earlier run may have sent),
journals it (``note:reconciled``) and adopts what the market holds; only a read that finds nothing
lets the write go out again.

A new write declares itself here, once: its :class:`WriteRule` in :data:`WRITES`, and (for
``Repeat.READ``) a read built by :class:`Reads` that its step passes to ``Effects.write``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from buyer_agent._errors import OrchestrationApiError
from buyer_agent._redact import Secret
from buyer_agent.market import (
    ConfirmMarketOrderResponse,
    DisputeMarketOrderResponse,
    ExecuteMarketOrderResponse,
    HandoffExecution,
    ItemResponse,
    MarketOrder,
    MarketPayment,
    OrderDispute,
)
from buyer_agent.workflow._names import ABSENT, ADOPTED, PENDING
from buyer_agent.workflow._ports import MarketPort

__all__ = ["WRITES", "Read", "Reading", "Reads", "Repeat", "WriteRule", "rule_for"]

T = TypeVar("T")

#: Orders asked for per page when the pairing's orders are read (the market's maximum).
PAGE = 500
#: Payment statuses a proven (held) payment can be in afterwards.
_HELD_OR_LATER = frozenset({"held", "release_pending", "released", "frozen", "refunded"})
#: Order statuses in which an execution is under way or done without the market showing it yet.
_RUNNING = frozenset({"executing", "delivered"})


class Repeat(StrEnum):
    """What may follow a write whose answer was lost."""

    READ = "read"
    """Read what the market holds first; send again only when the read finds nothing."""
    IDEMPOTENT = "idempotent"
    """Documented idempotent by its meaning: sent again as it is."""
    HARMLESS = "harmless"
    """Buys, commits and closes nothing: sent again as it is."""


@dataclass(frozen=True, slots=True)
class WriteRule:
    """One market write: how it is reconciled, by which read, and what counts as done."""

    repeat: Repeat
    read: str
    """The read (a ``GET``), or why none is needed."""
    adopt: str
    """What the read must show for the write to count as done (its record is then adopted)."""


#: Each write the step families send through ``Effects.write``, by its effect name (``EFFECT_KEYS``).
WRITES: Mapping[str, WriteRule] = {
    "search_market": WriteRule(
        Repeat.HARMLESS,
        "none: a search buys nothing and its quotes expire",
        "a new search is made",
    ),
    "create_market_order": WriteRule(
        Repeat.READ,
        "GET /market/orders?machineId= (every page)",
        "an order holding the chosen quote id under the order's pairing: adopted; none and the quote "
        "still fresh: created again; none and the quote expired: search again within the quote deadline",
    ),
    "create_payment_intent": WriteRule(
        Repeat.IDEMPOTENT,
        "none: documented idempotent (returns the existing payment)",
        "the market's payment is the answer",
    ),
    "submit_payment_proof": WriteRule(
        Repeat.READ,
        "GET /market/orders/:id/payment",
        "held (or later) with this transaction as its proof: adopted; otherwise sent again",
    ),
    "lock_escrow_payment": WriteRule(
        Repeat.READ,
        "GET /market/orders/:id/payment",
        "held (or later) with the deposit transaction as its proof: adopted; otherwise sent again "
        "(documented idempotent for held)",
    ),
    "execute_market_order": WriteRule(
        Repeat.READ,
        "GET /market/orders/:id (the owner's view, with the pairing token)",
        "delivered or handed off with its execution: the outcome adopted; executing, or delivered with no "
        "outcome shown yet: read again until the execution deadline, never executed twice",
    ),
    "confirm_market_order": WriteRule(
        Repeat.READ,
        "GET /market/orders/:id (+ GET …/payment for its status)",
        "confirmed: adopted; otherwise sent again",
    ),
    "release_payment": WriteRule(
        Repeat.READ,
        "GET /market/orders/:id/payment",
        "released: adopted; otherwise sent again",
    ),
    "dispute_market_order": WriteRule(
        Repeat.READ,
        "GET /market/orders/:id (+ GET …/payment, GET /audit-events for the dispute's id)",
        "disputed: adopted; otherwise sent again",
    ),
}


def rule_for(effect: str) -> WriteRule | None:
    """The rule of ``effect``, or None for a write nobody declared (it is then never sent again)."""
    return WRITES.get(effect)


@dataclass(frozen=True, slots=True)
class Reading(Generic[T]):
    """What one read showed: the write's answer rebuilt from the market's records, or not (yet)."""

    answer: T | None = None
    pending: bool = False
    """The write is under way at the market: read again later, never send it again."""
    seen: Mapping[str, Any] = field(default_factory=dict)
    """What the read saw, for the journal (ids and statuses, never a secret)."""

    @property
    def outcome(self) -> str:
        """``adopted``, ``pending`` or ``absent`` (the words of ``note:reconciled``)."""
        if self.answer is not None:
            return ADOPTED
        return PENDING if self.pending else ABSENT


#: A read: given the pairing token, what the market holds for one write.
Read = Callable[[Secret], Awaitable[Reading[T]]]


def _same_tx(a: str | None, b: str | None) -> bool:
    """Transaction ids compared as the chain does: EVM hashes in any case, Solana signatures exactly."""
    if not a or not b:
        return False
    if a.startswith("0x") or b.startswith("0x"):
        return a.lower() == b.lower()
    return a == b


def _proof_tx(payment: MarketPayment) -> str | None:
    proof = payment.proof
    if proof is None:
        return None
    return proof.transaction_hash or proof.transaction_signature


class Reads:
    """The reconciling reads over the market port, one builder per kind of write.

    Each returns a :data:`Read` for ``Effects.write(…, reconcile=)``: it asks the market and says
    whether the write happened (and rebuilds the answer the write would have had from the records).
    """

    def __init__(self, market: MarketPort) -> None:
        self.market = market

    def market_order(
        self, machine_id: str, pairing_id: str | None, quote_id: str
    ) -> Read[ItemResponse[MarketOrder]]:
        """``create_market_order``: an order of the machine holding ``quote_id`` under ``pairing_id``."""
        market = self.market

        async def read(token: Secret) -> Reading[ItemResponse[MarketOrder]]:
            cursor: str | None = None
            seen_cursors: set[str] = set()
            count = 0
            while True:
                page = await market.list_market_orders(machine_id=machine_id, limit=PAGE, cursor=cursor)
                for order in page.items:
                    count += 1
                    if order.quote_id == quote_id and (
                        pairing_id is None or order.agent_pairing_id == pairing_id
                    ):
                        return Reading(
                            ItemResponse(order),
                            seen={"market_order_id": order.id, "status": order.status, "quote_id": quote_id},
                        )
                cursor = page.next_cursor
                if cursor is None or cursor in seen_cursors:  # the last page (or a market that loops)
                    return Reading(seen={"quote_id": quote_id, "orders_read": count})
                seen_cursors.add(cursor)

        return read

    def _payment(
        self, order_id: str, done: Callable[[MarketPayment], bool]
    ) -> Read[ItemResponse[MarketPayment]]:
        market = self.market

        async def read(token: Secret) -> Reading[ItemResponse[MarketPayment]]:
            payment = (await market.get_market_payment(order_id)).item
            if payment is None:
                return Reading(seen={"payment_status": None})
            seen = {"payment_status": payment.status, "proof_tx": _proof_tx(payment)}
            if done(payment):
                return Reading(ItemResponse(payment), seen=seen)
            return Reading(seen=seen)

        return read

    def proof(self, order_id: str, tx: str) -> Read[ItemResponse[MarketPayment]]:
        """``submit_payment_proof``: the payment held (or later), proven by ``tx``."""
        return self._payment(order_id, lambda p: p.status in _HELD_OR_LATER and _same_tx(_proof_tx(p), tx))

    def authorization(self, order_id: str, nonce: str) -> Read[ItemResponse[MarketPayment]]:
        """An x402 ``payment-proof``: the payment held (or later), recording the authorization ``nonce``.

        An x402 proof has no transaction yet (the market settles at execute): the authorization is
        named by its EIP-3009 nonce in ``proof.metadata`` (and by its ``paymentReference``).
        """

        def recorded(p: MarketPayment) -> bool:
            meta = (p.proof.metadata if p.proof is not None else None) or {}
            named = meta.get("nonce")
            return p.status in _HELD_OR_LATER and isinstance(named, str) and named.lower() == nonce.lower()

        return self._payment(order_id, recorded)

    def escrow_lock(self, order_id: str, tx: str) -> Read[ItemResponse[MarketPayment]]:
        """``lock_escrow_payment``: the payment held (or later), proven by the deposit ``tx``."""
        return self.proof(order_id, tx)

    def release(self, order_id: str) -> Read[ItemResponse[MarketPayment]]:
        """``release_payment``: the payment released."""
        return self._payment(order_id, lambda p: p.status == "released")

    def execution(self, order_id: str) -> Read[ExecuteMarketOrderResponse]:
        """``execute_market_order``: the order's execution, as the owner's view shows it."""
        market = self.market

        async def read(token: Secret) -> Reading[ExecuteMarketOrderResponse]:
            order = (await market.get_market_order(order_id, pairing_token=token)).item
            execution = order.execution
            if execution is None and order.status == "handoff" and order.handoff is not None:
                execution = HandoffExecution(status_code=202, handoff=order.handoff)
            seen: dict[str, Any] = {"market_order_status": order.status}
            if execution is not None:
                outcome = getattr(execution, "outcome", None)
                if outcome is not None:
                    seen["outcome_id"] = outcome.id
                return Reading(ExecuteMarketOrderResponse(order=order, execution=execution), seen=seen)
            return Reading(pending=order.status in _RUNNING, seen=seen)

        return read

    def confirmation(self, order_id: str) -> Read[ConfirmMarketOrderResponse]:
        """``confirm_market_order``: the order confirmed (its payment read for its status)."""
        market = self.market

        async def read(token: Secret) -> Reading[ConfirmMarketOrderResponse]:
            order = (await market.get_market_order(order_id, pairing_token=token)).item
            if order.status != "confirmed":
                return Reading(seen={"market_order_status": order.status})
            payment = (await market.get_market_payment(order_id)).item
            seen = {
                "market_order_status": order.status,
                "payment_status": payment.status if payment else None,
            }
            return Reading(ConfirmMarketOrderResponse(order=order, payment=payment), seen=seen)

        return read

    def dispute(
        self, order_id: str, reason: str, evidence: Mapping[str, Any]
    ) -> Read[DisputeMarketOrderResponse]:
        """``dispute_market_order``: the order disputed; the dispute's id from its audit event, if named."""
        market = self.market

        async def read(token: Secret) -> Reading[DisputeMarketOrderResponse]:
            order = (await market.get_market_order(order_id, pairing_token=token)).item
            if order.status != "disputed":
                return Reading(seen={"market_order_status": order.status})
            payment = (await market.get_market_payment(order_id)).item
            dispute_id, at = await self._dispute_id(order_id)
            dispute = OrderDispute(
                id=dispute_id or "",
                order_id=order.id,
                machine_id=order.machine_id,
                status="open",
                reason=reason,
                created_at=at or order.updated_at,
                updated_at=at or order.updated_at,
                evidence=dict(evidence),
            )
            seen = {"market_order_status": order.status, "dispute_id": dispute_id}
            return Reading(
                DisputeMarketOrderResponse(order=order, dispute=dispute, payment=payment), seen=seen
            )

        return read

    async def _dispute_id(self, order_id: str) -> tuple[str | None, str | None]:
        """The id (and time) the market's ``market.order.disputed`` audit event names, when it names one."""
        try:
            page = await self.market.list_audit_events(
                resource_type="market-order", resource_id=order_id, type="market.order.disputed"
            )
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            return None, None  # the audit is a convenience here: the dispute itself is adopted
        for event in reversed(page.items):
            named = event.payload.get("dispute_id") or event.payload.get("disputeId")
            if isinstance(named, str) and named:
                return named, event.created_at
        return None, None
