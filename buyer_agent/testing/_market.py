"""A scripted market for unit tests: the runner's market port, answering from a script of typed models.

``ScriptedMarket(search_market=[search(quote(...), quote(...))])`` answers the runner's first
``search_market`` with that search; each method takes its answers in order. An answer is a model of
the market client (``MarketSearch``, ``MarketOrder``, ``MarketPayment``, …; wrapped in
``ItemResponse`` as the client returns it), an exception to raise (e.g. an
``OrchestrationApiError`` the market would answer), or a function of the :class:`Call` that returns
one of those. A call with no answer left raises :class:`ScriptExhausted`, naming the method.
Every call is recorded in :attr:`ScriptedMarket.calls` (never the pairing token).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from buyer_agent.journal._canonical import format_at
from buyer_agent.market import (
    ConfirmMarketOrderResponse,
    DisputeMarketOrderResponse,
    ExecuteMarketOrderResponse,
    ItemResponse,
    ListResponse,
    MarketPaymentRailRecommendation,
    MarketQuote,
    MarketSearch,
    NormalizedTask,
    QuotePricing,
)

__all__ = ["Call", "ScriptExhausted", "ScriptedMarket", "quote", "search"]

#: The market calls the runner makes (its ``MarketPort``), in the order of an order's life.
METHODS: tuple[str, ...] = (
    "search_market",
    "create_market_order",
    "get_market_order",
    "list_market_orders",
    "list_audit_events",
    "create_payment_intent",
    "get_market_payment",
    "submit_payment_proof",
    "lock_escrow_payment",
    "release_payment",
    "execute_market_order",
    "confirm_market_order",
    "dispute_market_order",
)


# Answers the client returns as they are, not wrapped in an ``ItemResponse``.
_UNWRAPPED = (ExecuteMarketOrderResponse, ConfirmMarketOrderResponse, DisputeMarketOrderResponse)


class ScriptExhausted(AssertionError):
    """The code under test made a market call the script has no (more) answers for."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call the scripted market received (the pairing token is never kept)."""

    method: str
    order_id: str | None = None
    params: Any = None
    options: Any = None


Answer = Any  # a client model, an exception to raise, or a function of the Call returning one


class ScriptedMarket:
    """A fake market port: each method answers from its script, in order, and records the call.

    Args:
        **script: For each method name (see :data:`METHODS`), its answers in order.

    Raises:
        TypeError: a script names a method the market port does not have.
    """

    def __init__(self, **script: Iterable[Answer]) -> None:
        self._script: dict[str, deque[Answer]] = {}
        #: Every call received, in order.
        self.calls: list[Call] = []
        for method, answers in script.items():
            self.then(method, *answers)

    def then(self, method: str, *answers: Answer) -> ScriptedMarket:
        """Add ``answers`` to the end of ``method``'s script; returns the market (to chain)."""
        if method not in METHODS:
            raise TypeError(f"the market port has no method {method!r}; it has {', '.join(METHODS)}")
        self._script.setdefault(method, deque()).extend(answers)
        return self

    def remaining(self) -> dict[str, int]:
        """How many answers each method has left (methods with none left are omitted)."""
        return {m: len(q) for m, q in self._script.items() if q}

    def assert_done(self) -> None:
        """Raise :class:`ScriptExhausted`-style AssertionError unless every scripted answer was used."""
        left = self.remaining()
        if left:
            raise AssertionError(f"scripted answers never asked for: {left}")

    def called(self, method: str) -> list[Call]:
        """The calls of ``method``, in order."""
        return [c for c in self.calls if c.method == method]

    def _answer(self, call: Call) -> Any:
        self.calls.append(call)
        queue = self._script.get(call.method)
        if not queue:
            raise ScriptExhausted(
                f"unscripted market call {call.method} (call #{len(self.calls)}); "
                f"script one with ScriptedMarket({call.method}=[...]) or .then({call.method!r}, ...)"
            )
        answer = queue.popleft()
        if callable(answer) and not isinstance(answer, type):
            answer = answer(call)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, (ItemResponse, ListResponse, *_UNWRAPPED)):
            return answer  # as the client answers it (execute, confirm and dispute are not items)
        return ItemResponse(answer)

    # --- the market port --------------------------------------------------------------------------

    async def search_market(self, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST /market/search."""
        return self._answer(Call("search_market", None, params, kw.get("options")))

    async def create_market_order(self, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST /market/orders."""
        return self._answer(Call("create_market_order", None, params, kw.get("options")))

    async def get_market_order(self, order_id: str, **kw: Any) -> Any:
        """GET /market/orders/:id."""
        return self._answer(Call("get_market_order", order_id, None, kw.get("options")))

    async def list_market_orders(self, *, machine_id: str, **kw: Any) -> Any:
        """GET /market/orders?machineId= (a ``ListResponse`` answer; ``params`` holds the query)."""
        return self._answer(Call("list_market_orders", None, {"machine_id": machine_id, **kw}, None))

    async def list_audit_events(self, **kw: Any) -> Any:
        """GET /audit-events (a ``ListResponse`` answer; ``params`` holds the query)."""
        return self._answer(Call("list_audit_events", None, dict(kw), None))

    async def create_payment_intent(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment-intent."""
        return self._answer(Call("create_payment_intent", order_id, params, kw.get("options")))

    async def get_market_payment(self, order_id: str, **kw: Any) -> Any:
        """GET …/payment."""
        return self._answer(Call("get_market_payment", order_id, None, kw.get("options")))

    async def submit_payment_proof(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment-proof."""
        return self._answer(Call("submit_payment_proof", order_id, params, kw.get("options")))

    async def lock_escrow_payment(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment/escrow-lock."""
        return self._answer(Call("lock_escrow_payment", order_id, params, kw.get("options")))

    async def release_payment(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/payment/release."""
        return self._answer(Call("release_payment", order_id, params, kw.get("options")))

    async def execute_market_order(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/execute."""
        return self._answer(Call("execute_market_order", order_id, params, kw.get("options")))

    async def confirm_market_order(self, order_id: str, pairing_token: Any, **kw: Any) -> Any:
        """POST …/confirm."""
        return self._answer(Call("confirm_market_order", order_id, None, kw.get("options")))

    async def dispute_market_order(self, order_id: str, params: Any, pairing_token: Any, **kw: Any) -> Any:
        """POST …/dispute."""
        return self._answer(Call("dispute_market_order", order_id, params, kw.get("options")))

    async def aclose(self) -> None:
        """Nothing to close."""


def quote(
    id: str = "qt_1",
    *,
    service_id: str = "svc_1",
    price: str | Decimal | None = "0.80",
    currency: str = "USDC",
    rail: str = "wallet",
    chain: str = "eip155:31337",
    payee: str = "0x000000000000000000000000000000000000bEEF",
    token_address: str | None = "0x0000000000000000000000000000000000000Ac0",
    score: str | Decimal = "0.9",
    operation: str = "sha256",
    expires_in: float = 300.0,
    now: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> MarketQuote:
    """A market quote as the client decodes it: ``price`` in human units (None: no fixed price)."""
    expires = (now or datetime.now(UTC)) + timedelta(seconds=expires_in)
    return MarketQuote(
        id=id,
        service_id=service_id,
        skill_key=f"skill.{service_id}",
        provider_key=f"provider.{service_id}",
        execution_mode="native",
        integration_status="live",
        operation=operation,
        score=Decimal(str(score)),
        pricing=QuotePricing(
            mode="fixed" if price is not None else "quote",
            amount=Decimal(str(price)) if price is not None else None,
            currency=currency,
        ),
        payment=MarketPaymentRailRecommendation(
            default_rail=rail,
            supported_rails=(rail,),
            chain=chain,
            token=currency,
            token_address=token_address,
            payee_address=payee,
        ),
        expires_at=format_at(expires),
        metadata=dict(metadata or {}),
    )


def search(
    *quotes: MarketQuote,
    id: str = "srch_1",
    machine_id: str = "machine_1",
    service_type: str = "compute.marketplace",
    status: str = "completed",
) -> MarketSearch:
    """A market search holding ``quotes``, as ``search_market`` answers it."""
    return MarketSearch(
        id=id,
        machine_id=machine_id,
        normalized_task=NormalizedTask(service_type=service_type),
        status=status,
        quotes=tuple(quotes),
        created_at=format_at(datetime.now(UTC)),
    )
