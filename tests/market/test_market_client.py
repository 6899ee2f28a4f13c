"""Every client method against ``httpx.MockTransport``: what goes on the wire and what comes back.

Each method's request (verb, path, which auth headers, camelCase body, User-Agent, timeout) and its
answer's parsing (typed models, exact ``Decimal`` amounts, 204 as None); then the ``*_all`` iterators
across pages, a looping cursor refused, and per-call options (idempotency key, timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import market_support as ms
import pytest

from buyer_agent._errors import OrchestrationApiError, OrchestrationValidationError
from buyer_agent._redact import Secret
from buyer_agent._version import __version__
from buyer_agent.market import (
    AgentPairing,
    AgentPairingChallenge,
    AsyncMarketClient,
    AuditEvent,
    ConfirmMarketOrderResponse,
    DisputeMarketOrderResponse,
    ExecuteMarketOrderResponse,
    HandoffExecution,
    ItemResponse,
    ListResponse,
    Machine,
    MarketOrder,
    MarketPayment,
    MarketSearch,
    MarketService,
    NativeExecution,
)

PLATFORM = "platform"
PAIRING = "pairing"


@dataclass(frozen=True)
class Call:
    """One method: the call, what must be sent, the answer, and what the answer must read as."""

    id: str
    call: Callable[[AsyncMarketClient], Awaitable[Any]]
    method: str
    path: str
    auth: str
    body: Any  # the exact JSON body expected on the wire (camelCase), None for no body
    answer: tuple[int, Any]
    check: Callable[[Any], None]
    query: dict[str, str] | None = None


def _payment(result: ItemResponse[MarketPayment | None]) -> MarketPayment:
    payment = result.item
    assert isinstance(payment, MarketPayment)
    assert payment.amount == Decimal("1.25") and isinstance(payment.amount, Decimal)
    assert payment.rail.rail_type == "wallet"  # "type" on the wire
    assert payment.rail.token_address == "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    return payment


def _pairing(result: ItemResponse[AgentPairing], token: str | None) -> None:
    pairing = result.item
    assert isinstance(pairing, AgentPairing)
    assert pairing.delegation_policy.per_transaction_limit == Decimal("2.5")
    assert pairing.delegation_policy.daily_spend_limit == Decimal("10.75")
    assert pairing.delegation_policy.allowed_skill_keys == ("compute.hash",)
    assert pairing.verification is not None and pairing.verification.method == "eip191"
    if token is None:
        assert pairing.pairing_token is None
    else:
        assert isinstance(pairing.pairing_token, Secret) and pairing.pairing_token.reveal() == token
        assert token not in repr(pairing)


def _order(order: MarketOrder, status: str = "payment_pending") -> None:
    assert isinstance(order, MarketOrder) and order.status == status
    assert order.budget is not None and order.budget.amount == Decimal("1.25")
    assert order.payment.supported_rails == ("wallet", "escrow")
    assert order.input_payload == {"data": "hello"}


def _native(result: ExecuteMarketOrderResponse) -> None:
    assert isinstance(result.execution, NativeExecution)
    assert result.execution.status_code == 200
    assert result.execution.run.outcome_id == "out_01"
    # The provider's own body is kept verbatim: its keys are not snake_cased.
    assert result.execution.outcome.result == {"digestHex": "2cf24dba", "Nested_Key": {"keepMe": 1}}
    assert result.order.status == "delivered"


def _handoff(result: ExecuteMarketOrderResponse) -> None:
    assert isinstance(result.execution, HandoffExecution)
    assert result.execution.status_code == 202
    assert result.execution.handoff.url == "https://provider.example/run"
    assert result.execution.handoff.notes == ("manual step",)


def _search(result: ItemResponse[MarketSearch]) -> None:
    search = result.item
    quote = search.quotes[0]
    assert quote.pricing.amount == Decimal("1.25") and quote.score == Decimal("0.875")
    assert search.normalized_task.require_native_execution is True
    assert quote.payment.default_rail == "wallet"


def _list_of(cls: type, n: int = 1, cursor: str | None = None) -> Callable[[ListResponse[Any]], None]:
    def check(result: ListResponse[Any]) -> None:
        assert isinstance(result, ListResponse) and len(result.items) == n
        assert all(isinstance(x, cls) for x in result.items)
        assert result.next_cursor == cursor

    return check


CALLS = [
    Call(
        "list_machines",
        lambda m: m.list_machines(limit=50, cursor="c1"),
        "GET",
        "/api/v1/machines",
        PLATFORM,
        None,
        (200, ms.page(ms.MACHINE_ITEM, next_cursor="c2")),
        _list_of(Machine, cursor="c2"),
        {"limit": "50", "cursor": "c1"},
    ),
    Call(
        "get_machine",
        lambda m: m.get_machine(ms.MACHINE),
        "GET",
        f"/api/v1/machines/{ms.MACHINE}",
        PLATFORM,
        None,
        (200, ms.item(ms.MACHINE_ITEM)),
        lambda r: assert_that(
            r.item.display_name == "Buyer robot"
            and r.item.labels == {"site": "lab"}
            and r.item.identity_ref == ms.MACHINE_DID
        ),
    ),
    Call(
        "list_agent_pairings",
        lambda m: m.list_agent_pairings(ms.MACHINE),
        "GET",
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings",
        PLATFORM,
        None,
        (200, ms.page(ms.PAIRING_ITEM, ms.PAIRING_ITEM)),
        _list_of(AgentPairing, 2),
    ),
    Call(
        "create_agent_pairing_challenge",
        lambda m: m.create_agent_pairing_challenge(
            ms.MACHINE, {"agent_address": "0xabc", "agent_provider": "buyer-agent", "agent_role": "buyer"}
        ),
        "POST",
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings/challenges",
        PLATFORM,
        {"agentAddress": "0xabc", "agentProvider": "buyer-agent", "agentRole": "buyer"},
        (201, ms.item(ms.CHALLENGE_ITEM)),
        lambda r: assert_that(
            isinstance(r.item, AgentPairingChallenge) and r.item.message.startswith("Sign to pair")
        ),
    ),
    Call(
        "create_agent_pairing",
        lambda m: m.create_agent_pairing(
            ms.MACHINE,
            {
                "agent_address": "0xabc",
                "agent_provider": "buyer-agent",
                "agent_role": "buyer",
                "agent_proof": {"challenge_id": "chal_01", "signature": "0xsig"},
                "delegation_policy": {"per_transaction_limit": Decimal("2.50"), "currency": "USDC"},
            },
        ),
        "POST",
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings",
        PLATFORM,
        {
            "agentAddress": "0xabc",
            "agentProvider": "buyer-agent",
            "agentRole": "buyer",
            "agentProof": {"challengeId": "chal_01", "signature": "0xsig"},
            "delegationPolicy": {"perTransactionLimit": Decimal("2.50"), "currency": "USDC"},
        },
        (201, ms.item(ms.PAIRING_WITH_TOKEN)),
        lambda r: _pairing(r, "apt-fresh-token-from-market"),
    ),
    Call(
        "create_agent_pairing_session",
        lambda m: m.create_agent_pairing_session(
            ms.MACHINE, ms.PAIRING, {"agent_proof": {"challenge_id": "chal_02", "signature": "0xsig"}}
        ),
        "POST",
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings/{ms.PAIRING}/sessions",
        PLATFORM,
        {"agentProof": {"challengeId": "chal_02", "signature": "0xsig"}},
        (201, ms.item(ms.PAIRING_WITH_TOKEN)),
        lambda r: _pairing(r, "apt-fresh-token-from-market"),
    ),
    Call(
        "update_agent_pairing",
        lambda m: m.update_agent_pairing(ms.MACHINE, ms.PAIRING, {"status": "paused", "description": "x"}),
        "PATCH",
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings/{ms.PAIRING}",
        PLATFORM,
        {"status": "paused", "description": "x"},
        (200, ms.item(ms.PAIRING_ITEM)),
        lambda r: _pairing(r, None),
    ),
    Call(
        "revoke_agent_pairing",
        lambda m: m.revoke_agent_pairing(ms.MACHINE, ms.PAIRING),
        "DELETE",
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings/{ms.PAIRING}",
        PLATFORM,
        None,
        (204, None),
        lambda r: assert_that(r is None),
    ),
    Call(
        "list_market_services",
        lambda m: m.list_market_services({"service_type": "compute.marketplace", "provider_key": "hasher"}),
        "GET",
        "/api/v1/market/services",
        PLATFORM,
        None,
        (200, ms.page(ms.SERVICE_ITEM)),
        _list_of(MarketService),
        {"serviceType": "compute.marketplace", "providerKey": "hasher"},
    ),
    Call(
        "get_market_service",
        lambda m: m.get_market_service(ms.SERVICE),
        "GET",
        f"/api/v1/market/services/{ms.SERVICE}",
        PLATFORM,
        None,
        (200, ms.item(ms.SERVICE_ITEM)),
        lambda r: assert_that(r.item.operations == ("sha256",) and r.item.metadata == {"tier": "gold"}),
    ),
    Call(
        "list_market_services[pairing token]",
        lambda m: m.list_market_services({"machine_id": ms.MACHINE}, limit=5, pairing_token=ms.TOKEN),
        "GET",
        "/api/v1/market/services",
        PAIRING,
        None,
        (200, ms.page(ms.SERVICE_ITEM)),
        _list_of(MarketService),
        {"machineId": ms.MACHINE, "limit": "5"},
    ),
    Call(
        "get_market_service[pairing token]",
        lambda m: m.get_market_service(
            ms.SERVICE, {"machine_id": ms.MACHINE}, pairing_token=Secret(ms.TOKEN)
        ),
        "GET",
        f"/api/v1/market/services/{ms.SERVICE}",
        PAIRING,
        None,
        (200, ms.item(ms.SERVICE_ITEM)),
        lambda r: assert_that(r.item.id == ms.SERVICE),
        {"machineId": ms.MACHINE},
    ),
    Call(
        "search_market",
        lambda m: m.search_market(
            {"machine_id": ms.MACHINE, "budget": {"max": Decimal("2.50"), "currency": "USDC"}}, ms.TOKEN
        ),
        "POST",
        "/api/v1/market/search",
        PAIRING,
        {"machineId": ms.MACHINE, "budget": {"max": Decimal("2.50"), "currency": "USDC"}},
        (200, ms.item(ms.SEARCH_ITEM)),
        _search,
    ),
    Call(
        "get_market_search",
        lambda m: m.get_market_search(ms.SEARCH),
        "GET",
        f"/api/v1/market/searches/{ms.SEARCH}",
        PLATFORM,
        None,
        (200, ms.item(ms.SEARCH_ITEM)),
        _search,
    ),
    Call(
        "list_market_orders",
        lambda m: m.list_market_orders(machine_id=ms.MACHINE, limit=500),
        "GET",
        "/api/v1/market/orders",
        PLATFORM,
        None,
        (200, ms.page(ms.ORDER_ITEM)),
        _list_of(MarketOrder),
        {"machineId": ms.MACHINE, "limit": "500"},
    ),
    Call(
        "create_market_order",
        lambda m: m.create_market_order(
            {
                "machine_id": ms.MACHINE,
                "agent_pairing_id": ms.PAIRING,
                "service_id": ms.SERVICE,
                "quote_id": "quote_01",
                "input_payload": {"some_key": 1, "camelKey": {"inner_key": 2}},
            },
            ms.TOKEN,
        ),
        "POST",
        "/api/v1/market/orders",
        PAIRING,
        {
            "machineId": ms.MACHINE,
            "agentPairingId": ms.PAIRING,
            "serviceId": ms.SERVICE,
            "quoteId": "quote_01",
            # The provider's input travels as "input", its own keys untouched.
            "input": {"some_key": 1, "camelKey": {"inner_key": 2}},
        },
        (201, ms.item(ms.ORDER_ITEM)),
        lambda r: _order(r.item),
    ),
    Call(
        "get_market_order",
        lambda m: m.get_market_order(ms.ORDER),
        "GET",
        f"/api/v1/market/orders/{ms.ORDER}",
        PLATFORM,
        None,
        (200, ms.item(ms.ORDER_ITEM)),
        lambda r: _order(r.item),
    ),
    Call(
        "get_market_order[pairing token]",
        lambda m: m.get_market_order(ms.ORDER, pairing_token=Secret(ms.TOKEN)),
        "GET",
        f"/api/v1/market/orders/{ms.ORDER}",
        PAIRING,
        None,
        (200, ms.item(ms.ORDER_ITEM)),
        lambda r: _order(r.item),
    ),
    Call(
        "execute_market_order[200 native]",
        lambda m: m.execute_market_order(ms.ORDER, {"input": {"data_key": "x"}}, ms.TOKEN),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/execute",
        PAIRING,
        {"input": {"data_key": "x"}},
        (200, ms.EXECUTE_200),
        _native,
    ),
    Call(
        "execute_market_order[202 handoff]",
        lambda m: m.execute_market_order(ms.ORDER, None, ms.TOKEN),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/execute",
        PAIRING,
        {},
        (202, ms.EXECUTE_202),
        _handoff,
    ),
    Call(
        "confirm_market_order",
        lambda m: m.confirm_market_order(ms.ORDER, ms.TOKEN),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/confirm",
        PAIRING,
        {},
        (200, ms.CONFIRM),
        lambda r: assert_that(
            isinstance(r, ConfirmMarketOrderResponse)
            and r.order.status == "completed"
            and r.payment is not None
            and r.payment.status == "released"
            and r.payment.amount == Decimal("1.25")
        ),
    ),
    Call(
        "dispute_market_order",
        lambda m: m.dispute_market_order(ms.ORDER, {"reason": "wrong", "evidence": {"got": "x"}}, ms.TOKEN),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/dispute",
        PAIRING,
        {"reason": "wrong", "evidence": {"got": "x"}},
        (200, ms.DISPUTE),
        lambda r: assert_that(
            isinstance(r, DisputeMarketOrderResponse)
            and r.dispute.status == "open"
            and r.payment is not None
            and r.payment.status == "frozen"
        ),
    ),
    Call(
        "create_payment_intent",
        lambda m: m.create_payment_intent(
            ms.ORDER,
            {"rail": {"type": "wallet", "payer_address": "0xabc"}, "amount": Decimal("1.25")},
            ms.TOKEN,
        ),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/payment-intent",
        PAIRING,
        {"rail": {"type": "wallet", "payerAddress": "0xabc"}, "amount": Decimal("1.25")},
        (201, ms.item(ms.PAYMENT_ITEM)),
        lambda r: assert_that(_payment(r).status == "held"),
    ),
    Call(
        "get_market_payment",
        lambda m: m.get_market_payment(ms.ORDER),
        "GET",
        f"/api/v1/market/orders/{ms.ORDER}/payment",
        PLATFORM,
        None,
        (200, ms.item(ms.PAYMENT_ITEM)),
        lambda r: assert_that(_payment(r).proof is not None),
    ),
    Call(
        "get_market_payment[none yet]",
        lambda m: m.get_market_payment(ms.ORDER),
        "GET",
        f"/api/v1/market/orders/{ms.ORDER}/payment",
        PLATFORM,
        None,
        (200, {"item": None}),
        lambda r: assert_that(r.item is None),
    ),
    Call(
        "submit_payment_proof[evm]",
        lambda m: m.submit_payment_proof(
            ms.ORDER,
            {
                "verification_mode": "rpc",
                "chain": "base-sepolia",
                "transaction_hash": "0xabc",
                "amount": "1.25",
            },
            ms.TOKEN,
        ),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/payment-proof",
        PAIRING,
        {"verificationMode": "rpc", "chain": "base-sepolia", "transactionHash": "0xabc", "amount": "1.25"},
        (200, ms.item(ms.PAYMENT_ITEM)),
        lambda r: assert_that(_payment(r).proof.transaction_hash == "0x" + "ab" * 32),  # type: ignore[union-attr]
    ),
    Call(
        "submit_payment_proof[solana]",
        lambda m: m.submit_payment_proof(
            ms.ORDER,
            {"verification_mode": "recorded", "chain": "solana-devnet", "transaction_signature": "5sig"},
            ms.TOKEN,
        ),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/payment-proof",
        PAIRING,
        {"verificationMode": "recorded", "chain": "solana-devnet", "transactionSignature": "5sig"},
        (
            200,
            ms.item(
                {**ms.PAYMENT_ITEM, "proof": {"transactionSignature": "5sig", "verificationMode": "recorded"}}
            ),
        ),
        lambda r: assert_that(
            _payment(r).proof.transaction_signature == "5sig"  # type: ignore[union-attr]
        ),
    ),
    Call(
        "lock_escrow_payment",
        lambda m: m.lock_escrow_payment(
            ms.ORDER,
            {"transaction_hash": "0xabc", "chain": "base-sepolia", "escrow_address": "0xe"},
            ms.TOKEN,
        ),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/payment/escrow-lock",
        PAIRING,
        {"transactionHash": "0xabc", "chain": "base-sepolia", "escrowAddress": "0xe"},
        (200, ms.item({**ms.PAYMENT_ITEM, "status": "escrow_locked"})),
        lambda r: assert_that(_payment(r).status == "escrow_locked"),
    ),
    Call(
        "release_payment",
        lambda m: m.release_payment(ms.ORDER, {"transaction_hash": "0xabc"}, ms.TOKEN),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/payment/release",
        PAIRING,
        {"transactionHash": "0xabc"},
        (200, ms.item({**ms.PAYMENT_ITEM, "status": "released"})),
        lambda r: assert_that(_payment(r).status == "released"),
    ),
    Call(
        "refund_payment",
        lambda m: m.refund_payment(ms.ORDER, None, ms.TOKEN),
        "POST",
        f"/api/v1/market/orders/{ms.ORDER}/payment/refund",
        PAIRING,
        None,
        (200, ms.item({**ms.PAYMENT_ITEM, "status": "refunded"})),
        lambda r: assert_that(_payment(r).status == "refunded"),
    ),
    Call(
        "list_audit_events",
        lambda m: m.list_audit_events(
            machine_id=ms.MACHINE, resource_type="market_order", resource_id=ms.ORDER, type="x", cursor="c"
        ),
        "GET",
        "/api/v1/audit-events",
        PLATFORM,
        None,
        (200, ms.page(ms.AUDIT_ITEM)),
        lambda r: assert_that(
            isinstance(r.items[0], AuditEvent) and r.items[0].payload == {"order_id": ms.ORDER}
        ),
        {
            "machineId": ms.MACHINE,
            "resourceType": "market_order",
            "resourceId": ms.ORDER,
            "type": "x",
            "cursor": "c",
        },
    ),
]


def assert_that(condition: bool) -> None:
    """An assertion usable inside a lambda."""
    assert condition


def run(market: ms.Market, call: Callable[[AsyncMarketClient], Awaitable[Any]], **kw: Any) -> Any:
    """Run one call of our client against ``market``."""

    async def go() -> Any:
        async with ms.client_for(market, **kw) as client:
            return await call(client)

    return asyncio.run(go())


@pytest.mark.parametrize("c", CALLS, ids=[c.id for c in CALLS])
def test_method_sends_the_documented_request_and_parses_the_answer(c: Call) -> None:
    market = ms.Market(c.answer)
    result = run(market, c.call)

    assert len(market.requests) == 1
    request = market.requests[0]
    sent = market.sent[0]
    assert (sent.method, sent.path) == (c.method, c.path)
    assert dict(sent.query) == (c.query or {})
    # Auth: the platform key always (this client has one); the pairing token only on agent calls.
    assert sent.api_key == ms.API_KEY
    assert sent.pairing_token == (ms.TOKEN if c.auth == PAIRING else None)
    # The body: exactly the documented camelCase JSON, numbers exact.
    assert sent.body == c.body
    if c.body is not None:
        assert request.headers["content-type"] == "application/json"
    else:
        assert request.content == b"" and "content-type" not in request.headers
    assert request.headers["user-agent"] == f"buyer-agent/{__version__}"
    # 30 s for reads, 60 s for writes, on every phase of the request.
    expected = 30.0 if c.method == "GET" else 60.0
    assert request.extensions["timeout"] == {k: expected for k in ("connect", "read", "write", "pool")}
    assert "idempotency-key" not in request.headers
    c.check(result)


def test_every_method_of_the_client_is_exercised() -> None:
    public = {
        name
        for name in dir(AsyncMarketClient)
        if not name.startswith("_") and asyncio.iscoroutinefunction(getattr(AsyncMarketClient, name))
    } - {"aclose"}
    assert {c.id.split("[")[0] for c in CALLS} == public


def test_amounts_are_exact_decimals_never_floats() -> None:
    # Wire numbers that a float cannot hold, and the documented decimal-string form of an amount.
    body = ms.item(
        {
            **ms.PAYMENT_ITEM,
            "amount": "0.1000000000000000000000000001",
            "rail": {"type": "wallet"},
            "proof": None,
        }
    )
    raw = (
        b'{"item": {"id": "pay_01", "orderId": "o", "machineId": "m", "status": "held", '
        b'"rail": {"type": "wallet"}, "createdAt": "t", "updatedAt": "t", '
        b'"amount": 12345678901234567890.12345678901}}'
    )
    market = ms.Market((200, body), (200, raw))

    async def go() -> tuple[Any, Any]:
        async with ms.client_for(market) as client:
            return await client.get_market_payment("o1"), await client.get_market_payment("o1")

    first, second = asyncio.run(go())
    assert first.item.amount == Decimal("0.1000000000000000000000000001")
    assert second.item.amount == Decimal("12345678901234567890.12345678901")
    assert isinstance(first.item.amount, Decimal) and isinstance(second.item.amount, Decimal)


def test_decimal_body_values_are_sent_exactly() -> None:
    market = ms.Market((201, ms.item(ms.PAYMENT_ITEM)))
    run(
        market,
        lambda m: m.create_payment_intent(ms.ORDER, {"amount": Decimal("0.10000000000000000001")}, ms.TOKEN),
    )
    assert market.requests[0].content == b'{"amount":0.10000000000000000001}'


def test_client_without_an_api_key_sends_only_the_pairing_token() -> None:
    market = ms.Market((200, ms.item(ms.SEARCH_ITEM)), (200, ms.page()))

    async def go() -> None:
        async with ms.client_for(market, api_key=None) as client:
            await client.search_market({"machine_id": ms.MACHINE}, ms.TOKEN)
            await client.list_machines()

    asyncio.run(go())
    search, machines = market.sent
    assert (search.api_key, search.pairing_token) == (None, ms.TOKEN)
    assert (machines.api_key, machines.pairing_token) == (None, None)


def test_idempotency_key_and_timeout_options_reach_the_request() -> None:
    market = ms.Market((201, ms.item(ms.ORDER_ITEM)), (200, ms.item(ms.ORDER_ITEM)))

    async def go() -> None:
        async with ms.client_for(market) as client:
            await client.create_market_order(
                {"machine_id": ms.MACHINE}, ms.TOKEN, options={"idempotency_key": "order-42", "timeout": 5.0}
            )
            await client.get_market_order(ms.ORDER, options={"timeout": 2.5})

    asyncio.run(go())
    create, get = market.requests
    assert create.headers["idempotency-key"] == "order-42"
    assert create.extensions["timeout"]["read"] == 5.0
    assert "idempotency-key" not in get.headers
    assert get.extensions["timeout"]["read"] == 2.5


def test_request_dataclasses_are_accepted_and_none_fields_dropped() -> None:
    @dataclass(frozen=True)
    class Rail:
        type: str
        payer_address: str | None = None

    @dataclass(frozen=True)
    class Intent:
        rail: Rail
        amount: Decimal | None = None
        currency: str | None = None

    market = ms.Market((201, ms.item(ms.PAYMENT_ITEM)))
    run(market, lambda m: m.create_payment_intent(ms.ORDER, Intent(Rail("wallet"), Decimal("2.5")), ms.TOKEN))
    assert market.sent[0].body == {"rail": {"type": "wallet"}, "amount": Decimal("2.5")}


def test_unknown_fields_are_kept_in_extra_not_lost() -> None:
    market = ms.Market((200, ms.item({**ms.ORDER_ITEM, "newField": {"someValue": 1}})))
    order = run(market, lambda m: m.get_market_order(ms.ORDER)).item
    assert order.extra == {"new_field": {"some_value": 1}}


# --- pagination ----------------------------------------------------------------------------------

ALL_ITERATORS = [
    ("list_machines_all", lambda m: m.list_machines_all(limit=2), "/api/v1/machines", ms.MACHINE_ITEM, {}),
    (
        "list_agent_pairings_all",
        lambda m: m.list_agent_pairings_all(ms.MACHINE, limit=2),
        f"/api/v1/machines/{ms.MACHINE}/agent-pairings",
        ms.PAIRING_ITEM,
        {},
    ),
    (
        "list_market_services_all",
        lambda m: m.list_market_services_all({"machine_id": ms.MACHINE}, limit=2),
        "/api/v1/market/services",
        ms.SERVICE_ITEM,
        {"machineId": ms.MACHINE},
    ),
    (
        "list_market_orders_all",
        lambda m: m.list_market_orders_all(machine_id=ms.MACHINE, limit=2),
        "/api/v1/market/orders",
        ms.ORDER_ITEM,
        {"machineId": ms.MACHINE},
    ),
]


async def _collect(iterator: Any) -> list[Any]:
    return [x async for x in iterator]


@pytest.mark.parametrize(
    ("name", "make", "path", "template", "filters"), ALL_ITERATORS, ids=[i[0] for i in ALL_ITERATORS]
)
def test_all_iterator_walks_every_page_in_order(
    name: str,
    make: Callable[[AsyncMarketClient], Any],
    path: str,
    template: dict[str, Any],
    filters: dict[str, str],
) -> None:
    ids = [f"id_{i}" for i in range(5)]
    market = ms.Market(
        (200, ms.page(*({**template, "id": i} for i in ids[:2]), next_cursor="p2")),
        (200, ms.page(*({**template, "id": i} for i in ids[2:4]), next_cursor="p3")),
        (200, ms.page({**template, "id": ids[4]})),
    )

    async def go() -> list[Any]:
        async with ms.client_for(market) as client:
            return await _collect(make(client))

    items = asyncio.run(go())
    assert [x.id for x in items] == ids
    assert [s.path for s in market.sent] == [path] * 3
    cursors = [dict(s.query).get("cursor") for s in market.sent]
    assert cursors == [None, "p2", "p3"]
    for s in market.sent:
        query = dict(s.query)
        assert query["limit"] == "2"
        assert {k: query[k] for k in filters} == filters


def test_the_pairing_token_of_a_service_walk_goes_on_every_page_and_never_in_the_query() -> None:
    market = ms.Market(
        (200, ms.page({**ms.SERVICE_ITEM, "id": "svc_a"}, next_cursor="p2")),
        (200, ms.page({**ms.SERVICE_ITEM, "id": "svc_b"})),
    )

    async def go() -> list[Any]:
        async with ms.client_for(market) as client:
            return await _collect(client.list_market_services_all(limit=1, pairing_token=ms.TOKEN))

    assert [x.id for x in asyncio.run(go())] == ["svc_a", "svc_b"]
    assert [(s.api_key, s.pairing_token) for s in market.sent] == [(ms.API_KEY, ms.TOKEN)] * 2
    assert all(ms.TOKEN not in str(r.url) for r in market.requests)


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_pairing_token_for_the_catalogue_is_refused_before_sending(token: str) -> None:
    market = ms.Market((200, ms.page()))
    for call in (
        lambda m: m.list_market_services(pairing_token=token),
        lambda m: m.get_market_service(ms.SERVICE, pairing_token=token),
    ):
        with pytest.raises(OrchestrationValidationError):
            run(market, call)
    assert market.requests == []


def test_an_empty_last_cursor_ends_the_walk() -> None:
    market = ms.Market((200, ms.page(ms.MACHINE_ITEM, next_cursor="")))

    async def go() -> list[Any]:
        async with ms.client_for(market) as client:
            return await _collect(client.list_machines_all())

    assert len(asyncio.run(go())) == 1
    assert len(market.requests) == 1


def test_a_looping_cursor_is_refused_instead_of_paging_forever() -> None:
    market = ms.Market(
        (200, ms.page(ms.MACHINE_ITEM, next_cursor="a")),
        (200, ms.page(ms.MACHINE_ITEM, next_cursor="b")),
        (200, ms.page(ms.MACHINE_ITEM, next_cursor="a")),
    )

    async def go() -> list[Any]:
        seen: list[Any] = []
        async with ms.client_for(market) as client:
            with pytest.raises(OrchestrationApiError) as info:
                async for machine in client.list_machines_all():
                    seen.append(machine)
        assert info.value.code == "INVALID_RESPONSE_SHAPE"
        assert info.value.details == {"field": "next_cursor", "expected": "a cursor not seen before"}
        return seen

    assert len(asyncio.run(go())) == 3
    assert len(market.requests) == 3


def test_base_url_trailing_slash_and_path_prefix() -> None:
    market = ms.Market((200, ms.page()))
    http = httpx.AsyncClient(transport=httpx.MockTransport(market))

    async def go() -> None:
        client = AsyncMarketClient("https://market.example/prefix/", api_key=ms.API_KEY, http_client=http)
        await client.list_machines()
        await client.aclose()
        assert not http.is_closed  # a caller's http client is the caller's to close
        await http.aclose()

    asyncio.run(go())
    assert str(market.requests[0].url) == "https://market.example/prefix/api/v1/machines"
