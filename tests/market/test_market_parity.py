"""Wire parity with peaq's official SDK on canned answers: one case per shared method.

The SDK (``peaq_os_sdk``, sync, requests-based) is the oracle: its request is captured by a recording
``requests`` adapter mounted on its session, ours by ``httpx.MockTransport``. Both get the same canned
answer; every field both models share must read the same (amounts exactly: the SDK's floats compare as
``Decimal(str(x))`` against our ``Decimal``). Each case also proves the SDK's strict decoders accept the
canned answer, so the shapes the other market tests use are the documented ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import market_support as ms
import pytest
import requests  # type: ignore[import-untyped]
from peaq_os_sdk import orchestration as sdk
from peaq_os_sdk.client import PeaqosClient
from peaq_os_sdk.orchestration.namespace import OrchestrationNamespace
from peaq_os_sdk.orchestration.types.agent_pairing import (
    AgentProofInput,
    CreateAgentPairingChallengeRequest,
    CreateAgentPairingRequest,
    CreateAgentPairingSessionRequest,
    UpdateAgentPairingRequest,
)
from peaq_os_sdk.orchestration.types.agent_pairing import DelegationPolicy as SdkDelegationPolicy
from peaq_os_sdk.orchestration.types.market_order import (
    CreateMarketOrderBudget,
    CreateMarketOrderRequest,
    DisputeMarketOrderRequest,
    ExecuteMarketOrderRequest,
)
from peaq_os_sdk.orchestration.types.market_search import MarketSearchBudget, MarketSearchRequest
from peaq_os_sdk.orchestration.types.payment import (
    CreatePaymentIntentRequest,
    LockEscrowPaymentRequest,
    PaymentIntentRailOptions,
    RefundPaymentRequest,
    ReleasePaymentRequest,
    SubmitPaymentProofRequest,
)
from requests.adapters import BaseAdapter  # type: ignore[import-untyped]

from buyer_agent._redact import Secret
from buyer_agent.market import AsyncMarketClient

TX_HASH = "0x" + "ab" * 32
SOL_SIGNATURE = "5" * 87
PAYER = "0x3333333333333333333333333333333333333333"
PAYEE = "0x2222222222222222222222222222222222222222"
ESCROW = "0x4444444444444444444444444444444444444444"
PROOF = {"challenge_id": "chal_01", "signature": "0x" + "cd" * 65}


class RecordingAdapter(BaseAdapter):  # type: ignore[misc]
    """A ``requests`` adapter that records the prepared request and answers from a canned body."""

    def __init__(self, status: int, body: Any, *more: Any) -> None:
        super().__init__()
        self.status = status
        self.bodies = [body, *more]  # one per request, in turn (the last one repeats)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Record ``request``; answer with the canned status and the next JSON body."""
        self.sent.append(request)
        body = self.bodies[min(len(self.sent), len(self.bodies)) - 1]
        response = requests.Response()
        response.status_code = self.status
        response.request = request
        response.url = request.url or ""
        response._content = json.dumps(body).encode() if body is not None else b""
        if body is not None:
            response.headers["content-type"] = "application/json"
        return response

    def close(self) -> None:
        """Nothing to release."""


@pytest.fixture(scope="module")
def sdk_client() -> PeaqosClient:
    """The official client; only its orchestration settings matter (it never connects anywhere)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PEAQOS_TELEMETRY", "0")  # no analytics client, no install id written
    try:
        return PeaqosClient(
            rpc_url="http://127.0.0.1:1",
            private_key="0x" + "11" * 32,
            orchestration_url=ms.BASE,
            api_key=ms.API_KEY,
        )
    finally:
        mp.undo()


@dataclass(frozen=True)
class Case:
    """One shared method: the SDK's call, ours with the same values, and the canned answer."""

    id: str
    theirs: Callable[[PeaqosClient], Any]
    ours: Callable[[AsyncMarketClient], Awaitable[Any]]
    status: int
    body: Any


SDK_POLICY = SdkDelegationPolicy(
    allowed_skill_keys=("compute.hash",),
    denied_skill_keys=(),
    allowed_service_ids=(ms.SERVICE,),
    denied_service_ids=(),
    per_transaction_limit=2.5,
    daily_spend_limit=10.75,
    currency="USDC",
)
OUR_POLICY = {
    "allowed_skill_keys": ["compute.hash"],
    "denied_skill_keys": [],
    "allowed_service_ids": [ms.SERVICE],
    "denied_service_ids": [],
    "per_transaction_limit": Decimal("2.5"),
    "daily_spend_limit": Decimal("10.75"),
    "currency": "USDC",
}
AGENT = {"agent_address": PAYER, "agent_provider": "buyer-agent", "agent_role": "buyer"}
ORDER_INPUT = {"data": "hello", "camelKey": 1, "snake_key": {"innerKey": 2}}
PAYMENT_INTENT = {**ms.PAYMENT_ITEM, "status": "intent_created", "proof": None}
EVM_PROOF: dict[str, Any] = {
    "verification_mode": "rpc",
    "chain": "base-sepolia",
    "token": "USDC",
    "payer_address": PAYER,
    "payee_address": PAYEE,
    "amount": "1.25",
    "transaction_hash": TX_HASH,
    "token_address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "token_decimals": 6,
    "raw_amount": "1250000",
}
SOLANA_PROOF: dict[str, Any] = {
    "verification_mode": "recorded",
    "chain": "solana-devnet",
    "token": "USDC",
    "payer_address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
    "payee_address": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
    "amount": "1.25",
    "transaction_signature": SOL_SIGNATURE,
    "token_mint": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
    "token_decimals": 6,
    "raw_amount": "1250000",
    "metadata": {"slot": 123},
}
SOLANA_PAYMENT = {
    **ms.PAYMENT_ITEM,
    "proof": {
        "chain": "solana-devnet",
        "token": "USDC",
        "transactionSignature": SOL_SIGNATURE,
        "verificationMode": "recorded",
        "verifiedAt": ms.NOW,
    },
}
SEARCH_REQUEST: dict[str, Any] = {
    "machine_id": ms.MACHINE,
    "agent_pairing_id": ms.PAIRING,
    "service_type": "compute.marketplace",
    "operation": "sha256",
    "region": "eu-west",
    "max_results": 5,
    "allow_external_handoff": False,
    "require_native_execution": True,
}
ORDER_REQUEST: dict[str, Any] = {
    "machine_id": ms.MACHINE,
    "agent_pairing_id": ms.PAIRING,
    "service_id": ms.SERVICE,
    "search_id": ms.SEARCH,
    "quote_id": "quote_01",
    "operation": "sha256",
    "input_payload": ORDER_INPUT,
}
SERVICE_FILTERS: dict[str, Any] = {
    "machine_id": ms.MACHINE,
    "service_type": "compute.marketplace",
    "execution_mode": "native",
    "provider_key": "hasher",
}
RAIL: dict[str, Any] = {"type": "wallet", "chain": "base-sepolia", "token": "USDC", "payer_address": PAYER}
ESCROW_LOCK = {"transaction_hash": TX_HASH, "chain": "base-sepolia", "escrow_address": ESCROW}

CASES = [
    Case(
        "list_machines",
        lambda c: sdk.list_machines(c, limit=2, cursor="cur_1"),
        lambda m: m.list_machines(limit=2, cursor="cur_1"),
        200,
        ms.page(ms.MACHINE_ITEM, next_cursor="cur_2"),
    ),
    Case(
        "get_machine",
        lambda c: sdk.get_machine(c, ms.MACHINE),
        lambda m: m.get_machine(ms.MACHINE),
        200,
        ms.item(ms.MACHINE_ITEM),
    ),
    Case(
        "list_agent_pairings",
        lambda c: sdk.list_agent_pairings(c, ms.MACHINE, limit=5, cursor="cur_1"),
        lambda m: m.list_agent_pairings(ms.MACHINE, limit=5, cursor="cur_1"),
        200,
        ms.page(ms.PAIRING_ITEM),
    ),
    Case(
        "create_agent_pairing_challenge",
        lambda c: sdk.create_agent_pairing_challenge(
            c, ms.MACHINE, CreateAgentPairingChallengeRequest(**AGENT, agent_did="did:peaq:0x3333")
        ),
        lambda m: m.create_agent_pairing_challenge(ms.MACHINE, {**AGENT, "agent_did": "did:peaq:0x3333"}),
        200,
        ms.item(ms.CHALLENGE_ITEM),
    ),
    Case(
        "create_agent_pairing",
        lambda c: sdk.create_agent_pairing(
            c,
            ms.MACHINE,
            CreateAgentPairingRequest(
                **AGENT,
                agent_proof=AgentProofInput(**PROOF),
                description="test pairing",
                delegation_policy=SDK_POLICY,
            ),
        ),
        lambda m: m.create_agent_pairing(
            ms.MACHINE,
            {**AGENT, "agent_proof": PROOF, "description": "test pairing", "delegation_policy": OUR_POLICY},
        ),
        201,
        ms.item(ms.PAIRING_WITH_TOKEN),
    ),
    Case(
        "create_agent_pairing_session",
        lambda c: sdk.create_agent_pairing_session(
            c, ms.MACHINE, ms.PAIRING, CreateAgentPairingSessionRequest(agent_proof=AgentProofInput(**PROOF))
        ),
        lambda m: m.create_agent_pairing_session(ms.MACHINE, ms.PAIRING, {"agent_proof": PROOF}),
        201,
        ms.item(ms.PAIRING_WITH_TOKEN),
    ),
    Case(
        "update_agent_pairing",
        lambda c: sdk.update_agent_pairing(
            c,
            ms.MACHINE,
            ms.PAIRING,
            UpdateAgentPairingRequest(description="paused", status="paused", delegation_policy=SDK_POLICY),
        ),
        lambda m: m.update_agent_pairing(
            ms.MACHINE,
            ms.PAIRING,
            {"description": "paused", "status": "paused", "delegation_policy": OUR_POLICY},
        ),
        200,
        ms.item({**ms.PAIRING_ITEM, "status": "paused"}),
    ),
    Case(
        "revoke_agent_pairing",
        lambda c: sdk.revoke_agent_pairing(c, ms.MACHINE, ms.PAIRING),
        lambda m: m.revoke_agent_pairing(ms.MACHINE, ms.PAIRING),
        204,
        None,
    ),
    Case(
        "list_market_services",
        lambda c: sdk.list_market_services(
            c, sdk.ListMarketServicesOptions(**SERVICE_FILTERS), limit=10, cursor="cur_1"
        ),
        lambda m: m.list_market_services(SERVICE_FILTERS, limit=10, cursor="cur_1"),
        200,
        ms.page(ms.SERVICE_ITEM, next_cursor="cur_2"),
    ),
    Case(
        "get_market_service",
        lambda c: sdk.get_market_service(c, ms.SERVICE, sdk.GetMarketServiceOptions(machine_id=ms.MACHINE)),
        lambda m: m.get_market_service(ms.SERVICE, {"machine_id": ms.MACHINE}),
        200,
        ms.item(ms.SERVICE_ITEM),
    ),
    Case(
        "list_market_services[pairing token]",
        lambda c: sdk.list_market_services(
            c, sdk.ListMarketServicesOptions(machine_id=ms.MACHINE), limit=10, pairing_token=ms.TOKEN
        ),
        lambda m: m.list_market_services({"machine_id": ms.MACHINE}, limit=10, pairing_token=ms.TOKEN),
        200,
        ms.page(ms.SERVICE_ITEM),
    ),
    Case(
        "get_market_service[pairing token]",
        lambda c: sdk.get_market_service(
            c, ms.SERVICE, sdk.GetMarketServiceOptions(machine_id=ms.MACHINE), pairing_token=ms.TOKEN
        ),
        lambda m: m.get_market_service(ms.SERVICE, {"machine_id": ms.MACHINE}, pairing_token=ms.TOKEN),
        200,
        ms.item(ms.SERVICE_ITEM),
    ),
    Case(
        "search_market",
        lambda c: sdk.search_market(
            c,
            MarketSearchRequest(
                **SEARCH_REQUEST,
                required_capabilities=("hash",),
                budget=MarketSearchBudget(max=2.5, currency="USDC"),
            ),
            ms.TOKEN,
        ),
        lambda m: m.search_market(
            {
                **SEARCH_REQUEST,
                "required_capabilities": ["hash"],
                "budget": {"max": Decimal("2.5"), "currency": "USDC"},
            },
            ms.TOKEN,
        ),
        200,
        ms.item(ms.SEARCH_ITEM),
    ),
    Case(
        "get_market_search",
        lambda c: sdk.get_market_search(c, ms.SEARCH),
        lambda m: m.get_market_search(ms.SEARCH),
        200,
        ms.item(ms.SEARCH_ITEM),
    ),
    Case(
        "list_market_orders",
        lambda c: sdk.list_market_orders(c, machine_id=ms.MACHINE, limit=3, cursor="cur_1"),
        lambda m: m.list_market_orders(machine_id=ms.MACHINE, limit=3, cursor="cur_1"),
        200,
        ms.page(ms.ORDER_ITEM, next_cursor="cur_2"),
    ),
    Case(
        "create_market_order",
        lambda c: sdk.create_market_order(
            c,
            CreateMarketOrderRequest(
                **ORDER_REQUEST, budget=CreateMarketOrderBudget(amount=1.25, max=2.5, currency="USDC")
            ),
            ms.TOKEN,
        ),
        lambda m: m.create_market_order(
            {
                **ORDER_REQUEST,
                "budget": {"amount": Decimal("1.25"), "max": Decimal("2.5"), "currency": "USDC"},
            },
            ms.TOKEN,
        ),
        201,
        ms.item(ms.ORDER_ITEM),
    ),
    Case(
        "get_market_order",
        lambda c: sdk.get_market_order(c, ms.ORDER),
        lambda m: m.get_market_order(ms.ORDER),
        200,
        ms.item(ms.ORDER_ITEM),
    ),
    Case(
        "get_market_order[pairing token]",
        lambda c: sdk.get_market_order(c, ms.ORDER, pairing_token=ms.TOKEN),
        lambda m: m.get_market_order(ms.ORDER, pairing_token=ms.TOKEN),
        200,
        ms.item(ms.ORDER_ITEM),
    ),
    Case(
        "execute_market_order[200 native]",
        lambda c: sdk.execute_market_order(
            c, ms.ORDER, ExecuteMarketOrderRequest(input={"data": "x"}), ms.TOKEN
        ),
        lambda m: m.execute_market_order(ms.ORDER, {"input": {"data": "x"}}, ms.TOKEN),
        200,
        ms.EXECUTE_200,
    ),
    Case(
        "execute_market_order[202 handoff]",
        lambda c: sdk.execute_market_order(c, ms.ORDER, ExecuteMarketOrderRequest(), ms.TOKEN),
        lambda m: m.execute_market_order(ms.ORDER, None, ms.TOKEN),
        202,
        ms.EXECUTE_202,
    ),
    Case(
        "confirm_market_order",
        lambda c: sdk.confirm_market_order(c, ms.ORDER, ms.TOKEN),
        lambda m: m.confirm_market_order(ms.ORDER, ms.TOKEN),
        200,
        ms.CONFIRM,
    ),
    Case(
        "dispute_market_order",
        lambda c: sdk.dispute_market_order(
            c,
            ms.ORDER,
            DisputeMarketOrderRequest(reason="wrong digest", evidence={"expectedHash": "abc"}),
            ms.TOKEN,
        ),
        lambda m: m.dispute_market_order(
            ms.ORDER, {"reason": "wrong digest", "evidence": {"expectedHash": "abc"}}, ms.TOKEN
        ),
        200,
        ms.DISPUTE,
    ),
    Case(
        "create_payment_intent",
        lambda c: sdk.create_payment_intent(
            c,
            ms.ORDER,
            CreatePaymentIntentRequest(rail=PaymentIntentRailOptions(**RAIL), amount=1.25, currency="USDC"),
            ms.TOKEN,
        ),
        lambda m: m.create_payment_intent(
            ms.ORDER, {"rail": RAIL, "amount": Decimal("1.25"), "currency": "USDC"}, ms.TOKEN
        ),
        201,
        ms.item(PAYMENT_INTENT),
    ),
    Case(
        "get_market_payment",
        lambda c: sdk.get_market_payment(c, ms.ORDER),
        lambda m: m.get_market_payment(ms.ORDER),
        200,
        ms.item(ms.PAYMENT_ITEM),
    ),
    Case(
        "get_market_payment[none yet]",
        lambda c: sdk.get_market_payment(c, ms.ORDER),
        lambda m: m.get_market_payment(ms.ORDER),
        200,
        {"item": None},
    ),
    Case(
        "submit_payment_proof[evm]",
        lambda c: sdk.submit_payment_proof(c, ms.ORDER, SubmitPaymentProofRequest(**EVM_PROOF), ms.TOKEN),
        lambda m: m.submit_payment_proof(ms.ORDER, EVM_PROOF, ms.TOKEN),
        200,
        ms.item(ms.PAYMENT_ITEM),
    ),
    Case(
        "submit_payment_proof[solana]",
        lambda c: sdk.submit_payment_proof(c, ms.ORDER, SubmitPaymentProofRequest(**SOLANA_PROOF), ms.TOKEN),
        lambda m: m.submit_payment_proof(ms.ORDER, SOLANA_PROOF, ms.TOKEN),
        200,
        ms.item(SOLANA_PAYMENT),
    ),
    Case(
        "lock_escrow_payment",
        lambda c: sdk.lock_escrow_payment(c, ms.ORDER, LockEscrowPaymentRequest(**ESCROW_LOCK), ms.TOKEN),
        lambda m: m.lock_escrow_payment(ms.ORDER, ESCROW_LOCK, ms.TOKEN),
        200,
        ms.item({**ms.PAYMENT_ITEM, "status": "escrow_locked"}),
    ),
    Case(
        "release_payment",
        lambda c: sdk.release_payment(
            c, ms.ORDER, ReleasePaymentRequest(transaction_hash=TX_HASH, notes="ok"), ms.TOKEN
        ),
        lambda m: m.release_payment(ms.ORDER, {"transaction_hash": TX_HASH, "notes": "ok"}, ms.TOKEN),
        200,
        ms.item({**ms.PAYMENT_ITEM, "status": "released"}),
    ),
    Case(
        "release_payment[no params]",
        lambda c: sdk.release_payment(c, ms.ORDER, None, ms.TOKEN),
        lambda m: m.release_payment(ms.ORDER, None, ms.TOKEN),
        200,
        ms.item({**ms.PAYMENT_ITEM, "status": "released"}),
    ),
    Case(
        "refund_payment",
        lambda c: sdk.refund_payment(c, ms.ORDER, RefundPaymentRequest(reason="not delivered"), ms.TOKEN),
        lambda m: m.refund_payment(ms.ORDER, {"reason": "not delivered"}, ms.TOKEN),
        200,
        ms.item({**ms.PAYMENT_ITEM, "status": "refunded"}),
    ),
    Case(
        "list_audit_events",
        lambda c: sdk.list_audit_events(c, machine_id=ms.MACHINE, resource_type="market_order", limit=20),
        lambda m: m.list_audit_events(machine_id=ms.MACHINE, resource_type="market_order", limit=20),
        200,
        ms.page(ms.AUDIT_ITEM),
    ),
]


def _run_theirs(client: PeaqosClient, case: Case) -> tuple[ms.Sent, Any]:
    adapter = RecordingAdapter(case.status, case.body)
    client.session.mount(ms.BASE, adapter)
    try:
        result = case.theirs(client)
    finally:
        client.session.adapters.pop(ms.BASE, None)
    assert len(adapter.sent) == 1
    sent = adapter.sent[0]
    raw = sent.body.encode() if isinstance(sent.body, str) else sent.body
    return ms.sent_view(sent.method or "", sent.url or "", dict(sent.headers), raw), result


def _run_ours(case: Case) -> tuple[ms.Sent, Any]:
    market = ms.Market((case.status, case.body))

    async def go() -> Any:
        async with ms.client_for(market) as client:
            return await case.ours(client)

    result = asyncio.run(go())
    assert len(market.requests) == 1
    return market.sent[0], result


def same_values(ours: Any, theirs: Any, where: str = "result") -> int:
    """Assert every field both sides have reads the same; return how many leaves were compared."""
    if dataclasses.is_dataclass(ours) and dataclasses.is_dataclass(theirs):
        their_fields = {f.name for f in dataclasses.fields(theirs)}
        count = 0
        for f in dataclasses.fields(ours):
            if f.name != "extra" and f.name in their_fields:
                count += same_values(getattr(ours, f.name), getattr(theirs, f.name), f"{where}.{f.name}")
        return count
    if isinstance(ours, Secret):
        assert ours.reveal() == theirs, where
        return 1
    if isinstance(ours, Decimal):
        assert isinstance(theirs, int | float) and not isinstance(theirs, bool), where
        assert ours == Decimal(str(theirs)), where
        return 1
    if isinstance(ours, tuple | list):
        assert isinstance(theirs, tuple | list) and len(ours) == len(theirs), where
        pairs = enumerate(zip(ours, theirs, strict=True))
        return sum(same_values(a, b, f"{where}[{i}]") for i, (a, b) in pairs)
    if isinstance(ours, Mapping):
        assert isinstance(theirs, Mapping) and set(ours) == set(theirs), where
        return sum(same_values(ours[k], theirs[k], f"{where}.{k}") for k in ours)
    assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"
    return 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_request_and_answer_match_the_official_sdk(sdk_client: PeaqosClient, case: Case) -> None:
    their_sent, theirs = _run_theirs(sdk_client, case)
    our_sent, ours = _run_ours(case)

    # The request: method, path, query, auth headers and the JSON body (exact numbers on both sides).
    assert our_sent == their_sent
    assert our_sent.path.startswith("/api/v1/")
    assert our_sent.api_key == ms.API_KEY  # both send the platform key on every authenticated call
    # The answer (which the SDK's strict decoders accepted): every field both models have reads the same.
    if case.body is None:
        assert ours is None and theirs is None
    else:
        assert same_values(ours, theirs) >= 1


@dataclass(frozen=True)
class Walk:
    """A ``*_all`` iterator: the SDK's walk and ours over the same canned pages."""

    id: str
    theirs: Callable[[PeaqosClient], Any]
    ours: Callable[[AsyncMarketClient], Any]
    template: Mapping[str, Any]


WALKS = [
    Walk(
        "list_machines_all",
        lambda c: sdk.list_machines_all(c, limit=2),
        lambda m: m.list_machines_all(limit=2),
        ms.MACHINE_ITEM,
    ),
    Walk(
        "list_agent_pairings_all",
        lambda c: sdk.list_agent_pairings_all(c, ms.MACHINE, limit=2),
        lambda m: m.list_agent_pairings_all(ms.MACHINE, limit=2),
        ms.PAIRING_ITEM,
    ),
    Walk(
        "list_market_services_all",
        lambda c: sdk.list_market_services_all(c, sdk.ListMarketServicesOptions(**SERVICE_FILTERS), limit=2),
        lambda m: m.list_market_services_all(SERVICE_FILTERS, limit=2),
        ms.SERVICE_ITEM,
    ),
    Walk(
        "list_market_services_all[pairing token]",
        lambda c: sdk.list_market_services_all(
            c, sdk.ListMarketServicesOptions(machine_id=ms.MACHINE), limit=2, pairing_token=ms.TOKEN
        ),
        lambda m: m.list_market_services_all({"machine_id": ms.MACHINE}, limit=2, pairing_token=ms.TOKEN),
        ms.SERVICE_ITEM,
    ),
    Walk(
        "list_market_orders_all",
        lambda c: sdk.list_market_orders_all(c, machine_id=ms.MACHINE, limit=2),
        lambda m: m.list_market_orders_all(machine_id=ms.MACHINE, limit=2),
        ms.ORDER_ITEM,
    ),
]


def _pages(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Three pages of two, two and one entries, chained by cursors."""
    ids = [f"id_{i}" for i in range(5)]
    return [
        ms.page(*({**template, "id": i} for i in ids[:2]), next_cursor="cur_2"),
        ms.page(*({**template, "id": i} for i in ids[2:4]), next_cursor="cur_3"),
        ms.page({**template, "id": ids[4]}),
    ]


@pytest.mark.parametrize("walk", WALKS, ids=[w.id for w in WALKS])
def test_all_iterators_walk_the_pages_with_the_sdks_requests(sdk_client: PeaqosClient, walk: Walk) -> None:
    pages = _pages(walk.template)
    adapter = RecordingAdapter(200, *pages)
    sdk_client.session.mount(ms.BASE, adapter)
    try:
        theirs = list(walk.theirs(sdk_client))
    finally:
        sdk_client.session.adapters.pop(ms.BASE, None)
    their_sent = [
        ms.sent_view(
            r.method or "",
            r.url or "",
            dict(r.headers),
            r.body.encode() if isinstance(r.body, str) else r.body,
        )
        for r in adapter.sent
    ]

    market = ms.Market(*((200, p) for p in pages))

    async def go() -> list[Any]:
        async with ms.client_for(market) as client:
            return [x async for x in walk.ours(client)]

    ours = asyncio.run(go())
    # Every page: the same request as the SDK's (cursor, limit, filters, auth headers), in the same order.
    assert market.sent == their_sent
    assert [dict(s.query).get("cursor") for s in market.sent] == [None, "cur_2", "cur_3"]
    # Every entry of every page, read the same.
    assert [x.id for x in ours] == [f"id_{i}" for i in range(5)]
    assert same_values(tuple(ours), tuple(theirs)) >= 5


def _public_methods(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and inspect.isfunction(getattr(cls, n))}


def test_every_shared_method_has_a_parity_case() -> None:
    # Derived from both clients: a method the SDK adds that ours also has cannot go untested.
    shared = _public_methods(OrchestrationNamespace) & _public_methods(AsyncMarketClient)
    covered = {c.id.split("[")[0] for c in CASES} | {w.id.split("[")[0] for w in WALKS}
    assert covered == shared, {"untested": shared - covered, "not shared": covered - shared}
    # The buyer's surface stays shared (a rename on either side would shrink the intersection).
    assert shared >= {
        *("list_machines", "list_machines_all", "get_machine", "list_agent_pairings"),
        *("list_agent_pairings_all", "create_agent_pairing_challenge", "create_agent_pairing"),
        *("create_agent_pairing_session", "update_agent_pairing", "revoke_agent_pairing"),
        *("list_market_services", "list_market_services_all", "get_market_service", "search_market"),
        *("get_market_search", "list_market_orders", "list_market_orders_all", "create_market_order"),
        *("get_market_order", "execute_market_order", "confirm_market_order", "dispute_market_order"),
        *("create_payment_intent", "get_market_payment", "submit_payment_proof", "lock_escrow_payment"),
        *("release_payment", "refund_payment", "list_audit_events"),
    }
    for name in shared:
        assert callable(getattr(sdk, name)), name  # the SDK's functional form the cases call


@dataclass(frozen=True)
class Sparse:
    """A request with fields left unset: the SDK's call and ours, given the request object."""

    id: str
    request: Any
    theirs: Callable[[PeaqosClient, Any], Any]
    ours: Callable[[AsyncMarketClient, Any], Awaitable[Any]]
    answer: Any


SPARSE = [
    Sparse(
        "order with an empty budget",
        CreateMarketOrderRequest(
            machine_id=ms.MACHINE,
            agent_pairing_id=ms.PAIRING,
            service_id=ms.SERVICE,
            input_payload={"data": "x"},
            budget=CreateMarketOrderBudget(),
        ),
        lambda c, p: sdk.create_market_order(c, p, ms.TOKEN),
        lambda m, p: m.create_market_order(p, ms.TOKEN),
        ms.item(ms.ORDER_ITEM),
    ),
    Sparse(
        "intent with an empty rail",
        CreatePaymentIntentRequest(rail=PaymentIntentRailOptions(), currency="USDC"),
        lambda c, p: sdk.create_payment_intent(c, ms.ORDER, p, ms.TOKEN),
        lambda m, p: m.create_payment_intent(ms.ORDER, p, ms.TOKEN),
        ms.item(ms.PAYMENT_ITEM),
    ),
    Sparse(
        "pairing update with one field",
        UpdateAgentPairingRequest(description="only this"),
        lambda c, p: sdk.update_agent_pairing(c, ms.MACHINE, ms.PAIRING, p),
        lambda m, p: m.update_agent_pairing(ms.MACHINE, ms.PAIRING, p),
        ms.item(ms.PAIRING_ITEM),
    ),
    Sparse(
        "search with an empty budget",
        MarketSearchRequest(machine_id=ms.MACHINE, budget=MarketSearchBudget()),
        lambda c, p: sdk.search_market(c, p, ms.TOKEN),
        lambda m, p: m.search_market(p, ms.TOKEN),
        ms.item(ms.SEARCH_ITEM),
    ),
]


@pytest.mark.parametrize("case", SPARSE, ids=[c.id for c in SPARSE])
def test_unset_fields_are_left_out_as_the_sdk_leaves_them_out(sdk_client: PeaqosClient, case: Sparse) -> None:
    # The SDK's own request object, and the same values as a dict with None entries: no null, no {}.
    their_sent, _ = _run_theirs(
        sdk_client, Case(case.id, lambda c: case.theirs(c, case.request), _unused, 200, case.answer)
    )
    for params in (case.request, dataclasses.asdict(case.request)):
        ours = functools.partial(_call_with, case.ours, params)
        our_sent, _ = _run_ours(Case(case.id, _unused, ours, 200, case.answer))
        assert our_sent.body == their_sent.body
        assert "null" not in json.dumps(our_sent.body, default=str) and "{}" not in json.dumps(our_sent.body)


def _call_with(
    method: Callable[[AsyncMarketClient, Any], Awaitable[Any]], params: Any, client: AsyncMarketClient
) -> Awaitable[Any]:
    return method(client, params)


def _unused(_client: Any) -> Any:
    raise AssertionError("not called")
