"""Wire parity with the official client (``peaq-os-sdk``), method by method.

Our client runs the buyer's flow against the sandbox over real HTTP while a transport records
every exchange. Then, for each call, the official SDK makes the same call with the same inputs
against a session that answers with the recorded response. The two requests must be the same
(method, path, query, auth headers, JSON body), and what the SDK's strict decoders make of the
answer must equal what ours made of it, field by field (its floats read as exact decimals).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from buyer_agent._errors import OrchestrationApiError
from buyer_agent._money import Money
from buyer_agent._redact import Secret
from buyer_agent.market import AsyncMarketClient
from buyer_agent.rails import EvmRail, PaymentRequest
from buyer_agent.sandbox import Sandbox

sdk = pytest.importorskip("peaq_os_sdk.orchestration")
requests = pytest.importorskip("requests")
from requests.adapters import BaseAdapter  # type: ignore[import-untyped]  # noqa: E402

T = pytest.importorskip("peaq_os_sdk.orchestration.types")
S = pytest.importorskip("peaq_os_sdk.orchestration.market_services")

pytestmark = pytest.mark.chains

AUTH_HEADERS = ("x-api-key", "x-agent-pairing-token")


@dataclasses.dataclass
class Exchange:
    """One recorded HTTP exchange of our client."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]
    response: bytes


@dataclasses.dataclass
class Call:
    """A call our client made: its exchange, its result (or error), and the same call for the SDK."""

    name: str
    exchange: Exchange
    ours: Any
    sdk_call: Callable[[Any], Any]


class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the real transport and keeps every exchange."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.log: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        self.log.append(
            Exchange(
                request.method,
                str(request.url),
                dict(request.headers),
                body,
                response.status_code,
                dict(response.headers),
                content,
            )
        )
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Replay(BaseAdapter):  # type: ignore[misc]
    """A requests adapter that records the SDK's request and answers with a recorded response."""

    def __init__(self, exchange: Exchange) -> None:
        super().__init__()
        self.exchange = exchange
        self.sent: Any = None

    def send(self, request: Any, **_kw: Any) -> Any:
        self.sent = request
        resp = requests.Response()
        resp.status_code = self.exchange.status
        resp._content = self.exchange.response
        resp.headers.update(self.exchange.response_headers)
        resp.url = request.url
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def _json(body: bytes | str | None) -> Any:
    if not body:
        return None
    return json.loads(body, parse_float=Decimal)


def _request_facts(method: str, url: str, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
    parts = urlsplit(url)
    lower = {k.lower(): v for k, v in headers.items()}
    return {
        "method": method.upper(),
        "path": parts.path,
        "query": sorted(parse_qsl(parts.query)),
        "auth": {h: lower.get(h) for h in AUTH_HEADERS},
        "json": _json(body),
    }


def _same(sdk_value: Any, ours: Any, where: str) -> None:
    """Every field the SDK decoded equals ours (its floats as exact decimals)."""
    if isinstance(ours, Secret):
        ours = ours.reveal()
    if dataclasses.is_dataclass(sdk_value) and not isinstance(sdk_value, type):
        for f in dataclasses.fields(sdk_value):
            if f.name == "extra" or not hasattr(ours, f.name):
                continue
            _same(getattr(sdk_value, f.name), getattr(ours, f.name), f"{where}.{f.name}")
        return
    if isinstance(sdk_value, float):
        assert Decimal(str(sdk_value)) == ours, where
    elif isinstance(sdk_value, list | tuple):
        assert len(sdk_value) == len(ours), where
        for i, (a, b) in enumerate(zip(sdk_value, ours, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(sdk_value, Mapping):
        assert _exact(sdk_value) == _exact(ours), where
    else:
        assert sdk_value == ours, where


def _exact(value: Any) -> Any:
    """Plain JSON-like data with every float as the exact decimal it prints as."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


# --- the flow ----------------------------------------------------------------------------------


def _sign(key: str, message: str) -> str:
    return str(Account.sign_message(encode_defunct(text=message), key).signature.to_0x_hex())


async def _flow(info: dict[str, Any], recorder: Recorder) -> list[Call]:
    calls: list[Call] = []
    http = httpx.AsyncClient(transport=recorder)
    market = AsyncMarketClient(info["url"], api_key=info["api_key"], http_client=http)
    machine = info["machine_id"]
    key = info["wallets"]["evm"]["private_key"]
    agent = Account.from_key(key).address
    rail = EvmRail(info["evm"]["rpc_url"], key, chain=info["evm"]["chain"])

    async def call(name: str, coro: Any, sdk_call: Callable[[Any], Any]) -> Any:
        before = len(recorder.log)
        try:
            result: Any = await coro
        except OrchestrationApiError as exc:
            result = exc
        assert len(recorder.log) == before + 1, f"{name}: one request, no retry"
        calls.append(Call(name, recorder.log[-1], result, sdk_call))
        return result

    await call("get_machine", market.get_machine(machine), lambda c: sdk.get_machine(c, machine))
    await call("list_machines", market.list_machines(limit=5), lambda c: sdk.list_machines(c, limit=5))

    who = {"agent_address": agent, "agent_provider": "buyer-agent", "agent_role": "buyer"}
    sdk_who = T.CreateAgentPairingChallengeRequest(**who)
    challenge = await call(
        "create_agent_pairing_challenge",
        market.create_agent_pairing_challenge(machine, who),
        lambda c: sdk.create_agent_pairing_challenge(c, machine, sdk_who),
    )
    proof = {"challenge_id": challenge.item.challenge_id, "signature": _sign(key, challenge.item.message)}
    policy = {
        "per_transaction_limit": Decimal("5"),
        "daily_spend_limit": Decimal("50.5"),
        "currency": "USDC",
        "denied_service_ids": ["svc_hash_denied"],
        "allowed_service_ids": [],
        "allowed_skill_keys": [],
        "denied_skill_keys": [],
    }
    sdk_policy = T.DelegationPolicy(
        allowed_skill_keys=(),
        denied_skill_keys=(),
        allowed_service_ids=(),
        denied_service_ids=("svc_hash_denied",),
        per_transaction_limit=5.0,
        daily_spend_limit=50.5,
        currency="USDC",
    )
    pairing = await call(
        "create_agent_pairing",
        market.create_agent_pairing(machine, {**who, "agent_proof": proof, "delegation_policy": policy}),
        lambda c: sdk.create_agent_pairing(
            c,
            machine,
            T.CreateAgentPairingRequest(
                **who, agent_proof=T.AgentProofInput(**proof), delegation_policy=sdk_policy
            ),
        ),
    )
    pid = pairing.item.id
    await call(
        "list_agent_pairings",
        market.list_agent_pairings(machine, limit=10),
        lambda c: sdk.list_agent_pairings(c, machine, limit=10),
    )
    again = await market.create_agent_pairing_challenge(machine, who)
    recorder.log.pop()
    proof2 = {"challenge_id": again.item.challenge_id, "signature": _sign(key, again.item.message)}
    session = await call(
        "create_agent_pairing_session",
        market.create_agent_pairing_session(machine, pid, {"agent_proof": proof2}),
        lambda c: sdk.create_agent_pairing_session(
            c, machine, pid, T.CreateAgentPairingSessionRequest(agent_proof=T.AgentProofInput(**proof2))
        ),
    )
    token = session.item.pairing_token.reveal()

    await call(
        "list_market_services",
        market.list_market_services({"machine_id": machine}, limit=50),
        lambda c: sdk.list_market_services(c, S.ListMarketServicesOptions(machine_id=machine), limit=50),
    )
    await call(
        "get_market_service",
        market.get_market_service("svc_hash_budget", {"machine_id": machine}),
        lambda c: sdk.get_market_service(c, "svc_hash_budget", S.GetMarketServiceOptions(machine_id=machine)),
    )
    search_params = {
        "machine_id": machine,
        "agent_pairing_id": pid,
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "required_capabilities": ["sha256"],
        "allow_external_handoff": True,
        "budget": {"max": Decimal("2.5"), "currency": "USDC"},
    }
    sdk_search = T.MarketSearchRequest(
        machine_id=machine,
        agent_pairing_id=pid,
        service_type="compute.marketplace",
        operation="sha256",
        required_capabilities=("sha256",),
        allow_external_handoff=True,
        budget=T.MarketSearchBudget(max=2.5, currency="USDC"),
    )
    search = await call(
        "search_market",
        market.search_market(search_params, token),
        lambda c: sdk.search_market(c, sdk_search, token),
    )
    sid = search.item.id
    await call("get_market_search", market.get_market_search(sid), lambda c: sdk.get_market_search(c, sid))
    quotes = {q.service_id: q for q in search.item.quotes}

    async def order(service: str, label: str | None = None) -> str:
        q = quotes[service]
        params = {
            "machine_id": machine,
            "agent_pairing_id": pid,
            "service_id": service,
            "search_id": sid,
            "quote_id": q.id,
            "operation": "sha256",
            "input_payload": {"data": "parity", "someKey": [1, 2]},
            "budget": {"max": Decimal("2.5"), "currency": "USDC"},
        }
        sdk_params = T.CreateMarketOrderRequest(
            machine_id=machine,
            agent_pairing_id=pid,
            service_id=service,
            search_id=sid,
            quote_id=q.id,
            operation="sha256",
            input_payload={"data": "parity", "someKey": [1, 2]},
            budget=T.CreateMarketOrderBudget(max=2.5, currency="USDC"),
        )
        if label is None:
            created = await market.create_market_order(params, token)
            recorder.log.pop()
        else:
            created = await call(
                label,
                market.create_market_order(params, token),
                lambda c: sdk.create_market_order(c, sdk_params, token),
            )
        return str(created.item.id)

    async def intent(oid: str, rail_type: str, label: str | None = None) -> Any:
        body = {"rail": {"type": rail_type, "chain": info["evm"]["chain"], "payer_address": agent}}
        sdk_body = T.CreatePaymentIntentRequest(
            rail=T.PaymentIntentRailOptions(type=rail_type, chain=info["evm"]["chain"], payer_address=agent)
        )
        if label is None:
            got = await market.create_payment_intent(oid, body, token)
            recorder.log.pop()
            return got.item
        got = await call(
            label,
            market.create_payment_intent(oid, body, token),
            lambda c: sdk.create_payment_intent(c, oid, sdk_body, token),
        )
        return got.item

    def request_for(oid: str, payment: Any, escrow: bool) -> PaymentRequest:
        return PaymentRequest(
            order_id=oid,
            rail_type=payment.rail.rail_type,
            chain=str(payment.rail.chain),
            token=str(payment.rail.token_address),
            payer=agent,
            payee=str(payment.rail.payee_address),
            amount=Money.of(payment.amount, "USDC", 6),
            escrow_address=payment.rail.escrow_address if escrow else None,
        )

    async def pay(req: PaymentRequest) -> Any:
        txs = await rail.prepare(req)
        for tx in txs:
            await rail.broadcast(tx)
            await rail.wait(tx, 30)
        return txs

    # A direct EVM payment, executed natively (200) and confirmed.
    direct = await order("svc_hash_budget", "create_market_order")
    await call("get_market_order", market.get_market_order(direct), lambda c: sdk.get_market_order(c, direct))
    await call(
        "list_market_orders",
        market.list_market_orders(machine_id=machine, limit=5),
        lambda c: sdk.list_market_orders(c, machine_id=machine, limit=5),
    )
    payment = await intent(direct, "wallet", "create_payment_intent")
    await call(
        "get_market_payment", market.get_market_payment(direct), lambda c: sdk.get_market_payment(c, direct)
    )
    req = request_for(direct, payment, escrow=False)
    proof_body = rail.proof(req, await pay(req))
    await call(
        "submit_payment_proof",
        market.submit_payment_proof(direct, proof_body, token),
        lambda c: sdk.submit_payment_proof(c, direct, T.SubmitPaymentProofRequest(**proof_body), token),
    )
    execute_body = {"input": {"data": "parity", "mixedCase_key": 1}}
    await call(
        "execute_market_order[200]",
        market.execute_market_order(direct, execute_body, token),
        lambda c: sdk.execute_market_order(c, direct, T.ExecuteMarketOrderRequest(**execute_body), token),
    )
    await call(
        "confirm_market_order",
        market.confirm_market_order(direct, token),
        lambda c: sdk.confirm_market_order(c, direct, token),
    )

    # An escrow payment: lock, execute, confirm, then the buyer releases on chain and records it.
    escrowed = await order("svc_hash_escrow")
    payment = await intent(escrowed, "onchain-escrow")
    req = request_for(escrowed, payment, escrow=True)
    lock = rail.escrow_proof(req, await pay(req))
    lock_body = {
        "transaction_hash": lock.transaction_hash,
        "chain": lock.chain,
        "escrow_address": lock.escrow_address,
    }
    await call(
        "lock_escrow_payment",
        market.lock_escrow_payment(escrowed, lock_body, token),
        lambda c: sdk.lock_escrow_payment(c, escrowed, T.LockEscrowPaymentRequest(**lock_body), token),
    )
    await market.execute_market_order(escrowed, {"input": {"data": "x"}}, token)
    await market.confirm_market_order(escrowed, token)
    del recorder.log[-2:]
    (release_tx,) = await pay_release(rail, req)
    release_body = {"transaction_hash": release_tx.tx_id, "notes": "released by the buyer"}
    await call(
        "release_payment",
        market.release_payment(escrowed, release_body, token),
        lambda c: sdk.release_payment(c, escrowed, T.ReleasePaymentRequest(**release_body), token),
    )

    # A handoff service: paid, then execute answers 202.
    handoff = await order("svc_hash_handoff")
    payment = await intent(handoff, "wallet")
    req = request_for(handoff, payment, escrow=False)
    await market.submit_payment_proof(handoff, rail.proof(req, await pay(req)), token)
    recorder.log.pop()
    await call(
        "execute_market_order[202]",
        market.execute_market_order(handoff, None, token),
        lambda c: sdk.execute_market_order(c, handoff, T.ExecuteMarketOrderRequest(), token),
    )

    # A dispute on an escrowed order, and a refund request (the sandbox, as arbiter, refunds).
    disputed = await order("svc_hash_escrow_pro")
    payment = await intent(disputed, "onchain-escrow")
    req = request_for(disputed, payment, escrow=True)
    lock = rail.escrow_proof(req, await pay(req))
    await market.lock_escrow_payment(
        disputed,
        {
            "transaction_hash": lock.transaction_hash,
            "chain": lock.chain,
            "escrow_address": lock.escrow_address,
        },
        token,
    )
    await market.execute_market_order(disputed, {"input": {"data": "x"}}, token)
    del recorder.log[-2:]
    dispute_body = {
        "reason": "result failed acceptance",
        "evidence": {"quote_id": quotes["svc_hash_escrow_pro"].id},
    }
    await call(
        "dispute_market_order",
        market.dispute_market_order(disputed, dispute_body, token),
        lambda c: sdk.dispute_market_order(c, disputed, T.DisputeMarketOrderRequest(**dispute_body), token),
    )
    refund_body = {"reason": "asking for the refund"}
    await call(
        "refund_payment",
        market.refund_payment(disputed, refund_body, token),
        lambda c: sdk.refund_payment(c, disputed, T.RefundPaymentRequest(**refund_body), token),
    )

    await call(
        "list_audit_events",
        market.list_audit_events(machine_id=machine, resource_type="market-order", limit=20),
        lambda c: sdk.list_audit_events(c, machine_id=machine, resource_type="market-order", limit=20),
    )
    await call(
        "update_agent_pairing",
        market.update_agent_pairing(machine, pid, {"description": "parity run", "status": "active"}),
        lambda c: sdk.update_agent_pairing(
            c, machine, pid, T.UpdateAgentPairingRequest(description="parity run", status="active")
        ),
    )
    await call(
        "revoke_agent_pairing",
        market.revoke_agent_pairing(machine, pid),
        lambda c: sdk.revoke_agent_pairing(c, machine, pid),
    )
    await rail.aclose()
    await market.aclose()
    await http.aclose()
    return calls


async def pay_release(rail: EvmRail, req: PaymentRequest) -> Any:
    txs = await rail.prepare_release(req)
    for tx in txs:
        await rail.broadcast(tx)
        await rail.wait(tx, 30)
    return txs


@pytest.fixture(scope="module")
def recorded() -> Iterator[dict[str, tuple[Call, dict[str, Any]]]]:
    with Sandbox() as box:
        info = box.to_json()
        recorder = Recorder()
        calls = asyncio.run(_flow(info, recorder))
        yield {c.name: (c, info) for c in calls}


SHARED = [
    "get_machine",
    "list_machines",
    "create_agent_pairing_challenge",
    "create_agent_pairing",
    "list_agent_pairings",
    "create_agent_pairing_session",
    "update_agent_pairing",
    "revoke_agent_pairing",
    "list_market_services",
    "get_market_service",
    "search_market",
    "get_market_search",
    "create_market_order",
    "get_market_order",
    "list_market_orders",
    "execute_market_order[200]",
    "execute_market_order[202]",
    "confirm_market_order",
    "dispute_market_order",
    "create_payment_intent",
    "get_market_payment",
    "submit_payment_proof",
    "lock_escrow_payment",
    "release_payment",
    "refund_payment",
    "list_audit_events",
]


@pytest.mark.parametrize("name", SHARED)
def test_the_same_request_and_the_same_values_as_the_official_sdk(
    recorded: dict[str, tuple[Call, dict[str, Any]]], name: str
) -> None:
    call, info = recorded[name]
    ex = call.exchange
    session = requests.Session()
    adapter = Replay(ex)
    session.mount("http://", adapter)
    client = SimpleNamespace(orchestration_url=info["url"], api_key=info["api_key"], session=session)
    try:
        theirs: Any = call.sdk_call(client)
    except sdk.OrchestrationApiError as exc:
        theirs = exc
    assert adapter.sent is not None

    ours_req = _request_facts(ex.method, ex.url, ex.headers, ex.body)
    sent = adapter.sent
    theirs_req = _request_facts(sent.method, sent.url, dict(sent.headers), sent.body)
    assert ours_req == theirs_req

    if isinstance(call.ours, OrchestrationApiError) or isinstance(theirs, Exception):
        assert isinstance(theirs, sdk.OrchestrationApiError), theirs
        assert isinstance(call.ours, OrchestrationApiError), (theirs.code, str(theirs), theirs.details)
        assert (call.ours.code, call.ours.status_code) == (theirs.code, theirs.status_code)
        return
    _same(theirs, call.ours, name)


def test_the_flow_covered_success_and_failure_answers(
    recorded: dict[str, tuple[Call, dict[str, Any]]],
) -> None:
    # Most calls must have succeeded for the value comparison to mean anything.
    failed = sorted(n for n, (c, _i) in recorded.items() if isinstance(c.ours, Exception))
    assert set(failed) <= {"refund_payment"}, failed
    # The machine listing is a real answer with the demo machine in it, not a tolerated 404.
    machines = recorded["list_machines"][0].ours
    assert [m.id for m in machines.items] == [recorded["get_machine"][0].ours.item.id]
