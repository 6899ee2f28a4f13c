"""The async Machine Markets client: the buyer's API surface with the official SDK's names.

Parameters are mappings with snake_case keys (or request dataclasses, such as the SDK's); the
client sends them camelCased. Answers come back as frozen models with exact amounts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from buyer_agent._errors import (
    OrchestrationApiError,
    OrchestrationConfigError,
    OrchestrationServerError,
    OrchestrationValidationError,
)
from buyer_agent._redact import REDACTED, Secret
from buyer_agent.market._decode import ShapeError, decode, shape_error
from buyer_agent.market._models import (
    AgentPairing,
    AgentPairingChallenge,
    AuditEvent,
    ConfirmMarketOrderResponse,
    DisputeMarketOrderResponse,
    ExecuteMarketOrderResponse,
    ItemResponse,
    ListResponse,
    Machine,
    MarketOrder,
    MarketPayment,
    MarketSearch,
    MarketService,
)
from buyer_agent.market._retry import RetryPolicy, call_with_retries
from buyer_agent.market._transport import (
    PLATFORM,
    Auth,
    RequestOptions,
    Transport,
    check_base_url,
    new_http_client,
)

__all__ = ["ENV_API_KEY", "ENV_URL", "LIST_MAX_LIMIT", "AsyncMarketClient", "Params", "env_settings"]

T = TypeVar("T")

ENV_URL = "PEAQOS_ORCHESTRATION_URL"
ENV_API_KEY = "PEAQOS_API_KEY"
LIST_MAX_LIMIT = 500

# A request body: a mapping with snake_case keys, or a request dataclass.
Params = Mapping[str, Any] | Any


def env_settings() -> tuple[str, str | None]:
    """The market URL and API key from the environment (the URL checked, the key optional)."""
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        raise OrchestrationConfigError(f"{ENV_URL} is not set: the market's URL is needed")
    try:
        url = check_base_url(url)
    except OrchestrationConfigError as exc:
        raise OrchestrationConfigError(f"{ENV_URL}: {exc}") from None
    return url, os.environ.get(ENV_API_KEY) or None


def _token(pairing_token: str | Secret) -> Secret:
    if isinstance(pairing_token, Secret):
        if not pairing_token:
            raise OrchestrationValidationError("pairing_token", "must be a non-empty token")
        return pairing_token
    if not isinstance(pairing_token, str) or not pairing_token.strip():
        raise OrchestrationValidationError("pairing_token", "must be a non-empty token")
    return Secret(pairing_token)


def _optional_token(pairing_token: str | Secret | None) -> Auth:
    """Platform auth without a token; agent-pairing auth (the token checked) with one."""
    return PLATFORM if pairing_token is None else _token(pairing_token)


def _id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OrchestrationValidationError(name, "must be a non-empty string")
    if "/" in value or "?" in value or "#" in value:
        raise OrchestrationValidationError(name, "must not contain '/', '?' or '#'")
    return value


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_MAX_LIMIT:
        raise OrchestrationValidationError("limit", f"must be an integer from 1 to {LIST_MAX_LIMIT}")
    return limit


def _page_query(limit: int | None, cursor: str | None, **filters: Any) -> dict[str, Any]:
    return {**filters, "limit": _limit(limit), "cursor": cursor}


class AsyncMarketClient:
    """Async client for the Machine Markets HTTP API (``/api/v1``).

    Args:
        base_url: The market's URL, e.g. ``https://market.example`` (``/api/v1`` is added).
        api_key: The platform API key (``x-api-key``), sent on platform and pairing calls.
        http_client: An ``httpx.AsyncClient`` to use (not closed by this client).
        retry: When and how to repeat failed requests; ``RetryPolicy.none()`` turns retries off.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | Secret | None = None,
        http_client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        url = check_base_url(base_url)
        key = (api_key if isinstance(api_key, Secret) else Secret(api_key)) if api_key else None
        self._owns_http = http_client is None
        self._http = http_client or new_http_client()
        self._transport = Transport(url, key, self._http)
        self._retry = retry or RetryPolicy()
        self.base_url = url

    @classmethod
    def from_env(
        cls, *, http_client: httpx.AsyncClient | None = None, retry: RetryPolicy | None = None
    ) -> AsyncMarketClient:
        """A client from ``PEAQOS_ORCHESTRATION_URL`` and (optional) ``PEAQOS_API_KEY``."""
        url, key = env_settings()
        return cls(url, api_key=key, http_client=http_client, retry=retry)

    def __repr__(self) -> str:
        return f"AsyncMarketClient(base_url={self.base_url!r}, api_key={REDACTED})"

    async def aclose(self) -> None:
        """Close the HTTP connections this client opened."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMarketClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # --- plumbing ---------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        auth: Auth,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        options: RequestOptions | None = None,
        idempotent: bool = False,
    ) -> Any:
        # Only reads and the writes documented idempotent by their meaning may be repeated after the
        # market may have acted: an Idempotency-Key is still sent, but no market promises to honour it.
        safe = method in ("GET", "HEAD", "PUT", "DELETE") or idempotent

        async def once() -> Any:
            return await self._transport.request(
                method, path, auth=auth, body=body, query=query, options=options
            )

        try:
            return await call_with_retries(self._retry, safe, once, f"the market's answer to {method} {path}")
        except OrchestrationApiError as exc:
            if safe or exc.status_code < 500:
                raise
            # A 5xx says nothing of whether the write was applied before the failure: the caller
            # reconciles by reading, as after a lost answer.
            raise OrchestrationServerError.from_answer(exc, f"{method} {path}") from exc

    @staticmethod
    def _decode(cls: type[T], data: Any, path: str) -> T:
        try:
            return decode(cls, data, path)
        except ShapeError as exc:
            raise shape_error(exc) from None

    def _item(self, cls: type[T], raw: Any) -> ItemResponse[T]:
        if not isinstance(raw, Mapping) or "item" not in raw:
            raise shape_error(ShapeError("item", "an object with an 'item'"))
        return ItemResponse(item=self._decode(cls, raw["item"], "item"))

    def _list(self, cls: type[T], raw: Any) -> ListResponse[T]:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("items"), list):
            raise shape_error(ShapeError("items", "an object with an 'items' list"))
        cursor = raw.get("next_cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise shape_error(ShapeError("next_cursor", "a string or null"))
        items = tuple(self._decode(cls, x, f"items[{i}]") for i, x in enumerate(raw["items"]))
        return ListResponse(items=items, next_cursor=cursor or None)

    def _one(self, cls: type[T], raw: Any) -> T:
        return self._decode(cls, raw, "body")

    @staticmethod
    async def _pages(
        fetch: Callable[[str | None], Awaitable[ListResponse[T]]],
    ) -> AsyncIterator[T]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:  # a market that loops would page forever
                raise shape_error(ShapeError("next_cursor", "a cursor not seen before"))
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    # --- machines ---------------------------------------------------------------------------------

    async def list_machines(
        self, *, limit: int | None = None, cursor: str | None = None, options: RequestOptions | None = None
    ) -> ListResponse[Machine]:
        """GET /machines (platform auth)."""
        raw = await self._send(
            "GET", "/machines", auth=PLATFORM, query=_page_query(limit, cursor), options=options
        )
        return self._list(Machine, raw)

    def list_machines_all(self, *, limit: int | None = None) -> AsyncIterator[Machine]:
        """Every machine, page by page."""
        _limit(limit)
        return self._pages(lambda c: self.list_machines(limit=limit, cursor=c))

    async def get_machine(
        self, machine_id: str, *, options: RequestOptions | None = None
    ) -> ItemResponse[Machine]:
        """GET /machines/:id (platform auth)."""
        raw = await self._send(
            "GET", f"/machines/{_id(machine_id, 'machine_id')}", auth=PLATFORM, options=options
        )
        return self._item(Machine, raw)

    # --- agent pairings ---------------------------------------------------------------------------

    async def list_agent_pairings(
        self,
        machine_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        options: RequestOptions | None = None,
    ) -> ListResponse[AgentPairing]:
        """GET /machines/:id/agent-pairings (platform auth)."""
        path = f"/machines/{_id(machine_id, 'machine_id')}/agent-pairings"
        raw = await self._send("GET", path, auth=PLATFORM, query=_page_query(limit, cursor), options=options)
        return self._list(AgentPairing, raw)

    def list_agent_pairings_all(
        self, machine_id: str, *, limit: int | None = None
    ) -> AsyncIterator[AgentPairing]:
        """Every pairing of a machine, page by page."""
        _limit(limit)
        return self._pages(lambda c: self.list_agent_pairings(machine_id, limit=limit, cursor=c))

    async def create_agent_pairing_challenge(
        self, machine_id: str, params: Params, *, options: RequestOptions | None = None
    ) -> ItemResponse[AgentPairingChallenge]:
        """POST /machines/:id/agent-pairings/challenges (platform auth): a message to sign."""
        path = f"/machines/{_id(machine_id, 'machine_id')}/agent-pairings/challenges"
        raw = await self._send("POST", path, auth=PLATFORM, body=params, options=options)
        return self._item(AgentPairingChallenge, raw)

    async def create_agent_pairing(
        self, machine_id: str, params: Params, *, options: RequestOptions | None = None
    ) -> ItemResponse[AgentPairing]:
        """POST /machines/:id/agent-pairings (platform auth): pair with a signed proof."""
        path = f"/machines/{_id(machine_id, 'machine_id')}/agent-pairings"
        raw = await self._send("POST", path, auth=PLATFORM, body=params, options=options)
        return self._item(AgentPairing, raw)

    async def create_agent_pairing_session(
        self, machine_id: str, pairing_id: str, params: Params, *, options: RequestOptions | None = None
    ) -> ItemResponse[AgentPairing]:
        """POST /machines/:id/agent-pairings/:pid/sessions (platform auth): rotate the session token."""
        path = _pairing_path(machine_id, pairing_id) + "/sessions"
        raw = await self._send("POST", path, auth=PLATFORM, body=params, options=options)
        return self._item(AgentPairing, raw)

    async def update_agent_pairing(
        self, machine_id: str, pairing_id: str, params: Params, *, options: RequestOptions | None = None
    ) -> ItemResponse[AgentPairing]:
        """PATCH /machines/:id/agent-pairings/:pid (platform auth)."""
        path = _pairing_path(machine_id, pairing_id)
        raw = await self._send("PATCH", path, auth=PLATFORM, body=params, options=options)
        return self._item(AgentPairing, raw)

    async def revoke_agent_pairing(
        self, machine_id: str, pairing_id: str, *, options: RequestOptions | None = None
    ) -> None:
        """DELETE /machines/:id/agent-pairings/:pid (platform auth)."""
        path = _pairing_path(machine_id, pairing_id)
        await self._send("DELETE", path, auth=PLATFORM, options=options)

    # --- market services and search ---------------------------------------------------------------

    async def list_market_services(
        self,
        options: Mapping[str, Any] | Any | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        pairing_token: str | Secret | None = None,
        request_options: RequestOptions | None = None,
    ) -> ListResponse[MarketService]:
        """GET /market/services (platform auth, or the pairing token when given).

        Filters (``options``): machine_id, service_type, execution_mode, provider_key. With
        ``pairing_token`` the call is agent-authenticated (``x-agent-pairing-token``, plus
        ``x-api-key`` when configured): the machine-scoped private catalogue, as the SDK does it.
        """
        auth = _optional_token(pairing_token)
        filters = _filters(options, ("machine_id", "service_type", "execution_mode", "provider_key"))
        raw = await self._send(
            "GET",
            "/market/services",
            auth=auth,
            query=_page_query(limit, cursor, **filters),
            options=request_options,
        )
        return self._list(MarketService, raw)

    def list_market_services_all(
        self,
        options: Mapping[str, Any] | Any | None = None,
        *,
        limit: int | None = None,
        pairing_token: str | Secret | None = None,
    ) -> AsyncIterator[MarketService]:
        """Every catalogue entry matching the filters, page by page (the token, if any, on every page)."""
        _limit(limit)
        _optional_token(pairing_token)
        return self._pages(
            lambda c: self.list_market_services(options, limit=limit, cursor=c, pairing_token=pairing_token)
        )

    async def get_market_service(
        self,
        service_id: str,
        options: Mapping[str, Any] | Any | None = None,
        *,
        pairing_token: str | Secret | None = None,
        request_options: RequestOptions | None = None,
    ) -> ItemResponse[MarketService]:
        """GET /market/services/:id (platform auth, or the pairing token when given); filter machine_id."""
        path = f"/market/services/{_id(service_id, 'service_id')}"
        auth = _optional_token(pairing_token)
        query = _filters(options, ("machine_id",))
        raw = await self._send("GET", path, auth=auth, query=query or None, options=request_options)
        return self._item(MarketService, raw)

    async def search_market(
        self, params: Params, pairing_token: str | Secret, *, options: RequestOptions | None = None
    ) -> ItemResponse[MarketSearch]:
        """POST /market/search (agent-pairing auth): quotes for a task."""
        raw = await self._send(
            "POST", "/market/search", auth=_token(pairing_token), body=params, options=options
        )
        return self._item(MarketSearch, raw)

    async def get_market_search(
        self, search_id: str, *, options: RequestOptions | None = None
    ) -> ItemResponse[MarketSearch]:
        """GET /market/searches/:id (platform auth)."""
        path = f"/market/searches/{_id(search_id, 'search_id')}"
        raw = await self._send("GET", path, auth=PLATFORM, options=options)
        return self._item(MarketSearch, raw)

    # --- market orders ----------------------------------------------------------------------------

    async def list_market_orders(
        self,
        *,
        machine_id: str,
        limit: int | None = None,
        cursor: str | None = None,
        options: RequestOptions | None = None,
    ) -> ListResponse[MarketOrder]:
        """GET /market/orders?machineId= (platform auth)."""
        query = _page_query(limit, cursor, machine_id=_id(machine_id, "machine_id"))
        raw = await self._send("GET", "/market/orders", auth=PLATFORM, query=query, options=options)
        return self._list(MarketOrder, raw)

    def list_market_orders_all(
        self, *, machine_id: str, limit: int | None = None
    ) -> AsyncIterator[MarketOrder]:
        """Every order of a machine, page by page."""
        _limit(limit)
        _id(machine_id, "machine_id")
        return self._pages(lambda c: self.list_market_orders(machine_id=machine_id, limit=limit, cursor=c))

    async def create_market_order(
        self, params: Params, pairing_token: str | Secret, *, options: RequestOptions | None = None
    ) -> ItemResponse[MarketOrder]:
        """POST /market/orders (agent-pairing auth). ``input_payload`` is sent as ``input``."""
        body = _plain_body(params)
        if "input_payload" in body:
            body["input"] = body.pop("input_payload")
        raw = await self._send(
            "POST", "/market/orders", auth=_token(pairing_token), body=body, options=options
        )
        return self._item(MarketOrder, raw)

    async def get_market_order(
        self,
        order_id: str,
        *,
        pairing_token: str | Secret | None = None,
        options: RequestOptions | None = None,
    ) -> ItemResponse[MarketOrder]:
        """GET /market/orders/:id (platform auth, or the pairing token when given)."""
        auth = _optional_token(pairing_token)
        raw = await self._send(
            "GET", f"/market/orders/{_id(order_id, 'order_id')}", auth=auth, options=options
        )
        return self._item(MarketOrder, raw)

    async def execute_market_order(
        self,
        order_id: str,
        params: Params | None,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> ExecuteMarketOrderResponse:
        """POST /market/orders/:id/execute (agent-pairing auth): 200 native run or 202 handoff."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/execute"
        body = _plain_body(params) if params is not None else {}
        raw = await self._send("POST", path, auth=_token(pairing_token), body=body, options=options)
        return self._one(ExecuteMarketOrderResponse, raw)

    async def confirm_market_order(
        self, order_id: str, pairing_token: str | Secret, *, options: RequestOptions | None = None
    ) -> ConfirmMarketOrderResponse:
        """POST /market/orders/:id/confirm (agent-pairing auth): accept delivery, release payment."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/confirm"
        raw = await self._send("POST", path, auth=_token(pairing_token), body={}, options=options)
        return self._one(ConfirmMarketOrderResponse, raw)

    async def dispute_market_order(
        self,
        order_id: str,
        params: Params,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> DisputeMarketOrderResponse:
        """POST /market/orders/:id/dispute (agent-pairing auth): payment frozen."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/dispute"
        raw = await self._send("POST", path, auth=_token(pairing_token), body=params, options=options)
        return self._one(DisputeMarketOrderResponse, raw)

    # --- payments ---------------------------------------------------------------------------------

    async def create_payment_intent(
        self,
        order_id: str,
        params: Params,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> ItemResponse[MarketPayment]:
        """POST /market/orders/:id/payment-intent (agent-pairing auth; idempotent by the docs)."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/payment-intent"
        raw = await self._send(
            "POST", path, auth=_token(pairing_token), body=params, options=options, idempotent=True
        )
        return self._item(MarketPayment, raw)

    async def get_market_payment(
        self, order_id: str, *, options: RequestOptions | None = None
    ) -> ItemResponse[MarketPayment | None]:
        """GET /market/orders/:id/payment (platform auth); ``item`` is None before an intent exists."""
        raw = await self._send(
            "GET", f"/market/orders/{_id(order_id, 'order_id')}/payment", auth=PLATFORM, options=options
        )
        if isinstance(raw, Mapping) and "item" in raw and raw["item"] is None:
            return ItemResponse(item=None)
        payment = self._item(MarketPayment, raw).item
        return ItemResponse(item=payment)

    async def submit_payment_proof(
        self,
        order_id: str,
        params: Params,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> ItemResponse[MarketPayment]:
        """POST /market/orders/:id/payment-proof (agent-pairing auth).

        EVM proofs carry ``transaction_hash``, Solana proofs ``transaction_signature``;
        ``verification_mode`` is ``recorded`` or ``rpc``.
        """
        path = f"/market/orders/{_id(order_id, 'order_id')}/payment-proof"
        raw = await self._send("POST", path, auth=_token(pairing_token), body=params, options=options)
        return self._item(MarketPayment, raw)

    async def lock_escrow_payment(
        self,
        order_id: str,
        params: Params,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> ItemResponse[MarketPayment]:
        """POST /market/orders/:id/payment/escrow-lock (agent-pairing auth; idempotent by the docs)."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/payment/escrow-lock"
        raw = await self._send(
            "POST", path, auth=_token(pairing_token), body=params, options=options, idempotent=True
        )
        return self._item(MarketPayment, raw)

    async def release_payment(
        self,
        order_id: str,
        params: Params | None,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> ItemResponse[MarketPayment]:
        """POST /market/orders/:id/payment/release (agent-pairing auth)."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/payment/release"
        raw = await self._send("POST", path, auth=_token(pairing_token), body=params, options=options)
        return self._item(MarketPayment, raw)

    async def refund_payment(
        self,
        order_id: str,
        params: Params | None,
        pairing_token: str | Secret,
        *,
        options: RequestOptions | None = None,
    ) -> ItemResponse[MarketPayment]:
        """POST /market/orders/:id/payment/refund (agent-pairing auth)."""
        path = f"/market/orders/{_id(order_id, 'order_id')}/payment/refund"
        raw = await self._send("POST", path, auth=_token(pairing_token), body=params, options=options)
        return self._item(MarketPayment, raw)

    # --- audit ------------------------------------------------------------------------------------

    async def list_audit_events(
        self,
        *,
        machine_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        options: RequestOptions | None = None,
    ) -> ListResponse[AuditEvent]:
        """GET /audit-events (platform auth)."""
        query = _page_query(
            limit,
            cursor,
            machine_id=machine_id,
            resource_type=resource_type,
            resource_id=resource_id,
            type=type,
        )
        raw = await self._send("GET", "/audit-events", auth=PLATFORM, query=query, options=options)
        return self._list(AuditEvent, raw)


def _pairing_path(machine_id: str, pairing_id: str) -> str:
    return f"/machines/{_id(machine_id, 'machine_id')}/agent-pairings/{_id(pairing_id, 'pairing_id')}"


def _plain_body(params: Any) -> dict[str, Any]:
    from buyer_agent.market._wire import _plain

    body = _plain(params)
    if not isinstance(body, dict):
        raise OrchestrationValidationError("params", "must be a mapping or a request dataclass")
    return body


def _filters(options: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if options is None:
        return {}
    plain = options if isinstance(options, Mapping) else {n: getattr(options, n, None) for n in names}
    return {n: plain[n] for n in names if plain.get(n) is not None}
