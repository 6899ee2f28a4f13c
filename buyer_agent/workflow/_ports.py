"""MarketPort: the market calls the step families make, answered with the client's typed models."""

from __future__ import annotations

from typing import Any, Protocol

from buyer_agent.market import (
    AuditEvent,
    ConfirmMarketOrderResponse,
    DisputeMarketOrderResponse,
    ExecuteMarketOrderResponse,
    ItemResponse,
    ListResponse,
    MarketOrder,
    MarketPayment,
    MarketSearch,
)

__all__ = ["MarketPort"]


class MarketPort(Protocol):
    """What the runner needs of a market (``AsyncMarketClient`` has it; SDK names and argument order).

    ``params`` is a mapping with snake_case keys (the client camelCases them); ``options`` carries
    the idempotency key of a write. Answers are the client's frozen models
    (``buyer_agent.market``), never raw JSON.
    """

    async def search_market(self, params: Any, pairing_token: Any, **kw: Any) -> ItemResponse[MarketSearch]:
        """POST /market/search."""
        ...

    async def create_market_order(
        self, params: Any, pairing_token: Any, **kw: Any
    ) -> ItemResponse[MarketOrder]:
        """POST /market/orders."""
        ...

    async def get_market_order(self, order_id: str, **kw: Any) -> ItemResponse[MarketOrder]:
        """GET /market/orders/:id (``pairing_token=`` for the owner's view, which shows the execution)."""
        ...

    async def list_market_orders(self, *, machine_id: str, **kw: Any) -> ListResponse[MarketOrder]:
        """GET /market/orders?machineId= (one page; ``limit``, ``cursor``)."""
        ...

    async def list_audit_events(self, **kw: Any) -> ListResponse[AuditEvent]:
        """GET /audit-events (``resource_type``, ``resource_id``, ``type``, ``limit``, ``cursor``)."""
        ...

    async def create_payment_intent(
        self, order_id: str, params: Any, pairing_token: Any, **kw: Any
    ) -> ItemResponse[MarketPayment]:
        """POST …/payment-intent."""
        ...

    async def get_market_payment(self, order_id: str, **kw: Any) -> ItemResponse[MarketPayment | None]:
        """GET …/payment."""
        ...

    async def submit_payment_proof(
        self, order_id: str, params: Any, pairing_token: Any, **kw: Any
    ) -> ItemResponse[MarketPayment]:
        """POST …/payment-proof."""
        ...

    async def lock_escrow_payment(
        self, order_id: str, params: Any, pairing_token: Any, **kw: Any
    ) -> ItemResponse[MarketPayment]:
        """POST …/payment/escrow-lock."""
        ...

    async def release_payment(
        self, order_id: str, params: Any, pairing_token: Any, **kw: Any
    ) -> ItemResponse[MarketPayment]:
        """POST …/payment/release."""
        ...

    async def execute_market_order(
        self, order_id: str, params: Any, pairing_token: Any, **kw: Any
    ) -> ExecuteMarketOrderResponse:
        """POST …/execute."""
        ...

    async def confirm_market_order(
        self, order_id: str, pairing_token: Any, **kw: Any
    ) -> ConfirmMarketOrderResponse:
        """POST …/confirm."""
        ...

    async def dispute_market_order(
        self, order_id: str, params: Any, pairing_token: Any, **kw: Any
    ) -> DisputeMarketOrderResponse:
        """POST …/dispute."""
        ...
