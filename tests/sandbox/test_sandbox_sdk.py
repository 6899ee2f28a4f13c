"""The official peaq-os-sdk client, pointed at the sandbox over HTTP, runs the buyer flow; its strict
decoders accept every answer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from eth_account.messages import encode_defunct
from sandbox_kit import Market, evm_wallet, started_sandbox

from buyer_agent.sandbox import Sandbox
from buyer_agent.sandbox.market._policy import DEFAULT_POLICY

sdk = pytest.importorskip("peaq_os_sdk")
from peaq_os_sdk import PeaqosClient  # noqa: E402
from peaq_os_sdk.orchestration.types import (  # noqa: E402
    AgentProofInput,
    CreateAgentPairingChallengeRequest,
    CreateAgentPairingRequest,
    CreateAgentPairingSessionRequest,
    CreateMarketOrderRequest,
    CreatePaymentIntentRequest,
    DelegationPolicy,
    DisputeMarketOrderRequest,
    ExecuteMarketOrderRequest,
    LockEscrowPaymentRequest,
    MarketSearchRequest,
    ReleasePaymentRequest,
    SubmitPaymentProofRequest,
    UpdateAgentPairingRequest,
)


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox()


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


@pytest.fixture(scope="module")
def client(market: Market) -> Iterator[PeaqosClient]:
    # The SDK would otherwise try to send analytics over the network.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DO_NOT_TRACK", "1")
        yield _client(market)


def _client(market: Market) -> PeaqosClient:
    # rpc_url and private_key are required by the constructor but unused by the orchestration calls.
    return PeaqosClient(
        rpc_url=market.info["evm"]["rpc_url"],
        private_key="0x" + "11" * 32,
        orchestration_url=market.info["url"],
        api_key=market.info["api_key"],
    )


def _pair(client: PeaqosClient, market: Market) -> tuple[str, str]:
    orch = client.orchestration
    account = market.buyer
    challenge = orch.create_agent_pairing_challenge(
        market.machine_id,
        CreateAgentPairingChallengeRequest(
            agent_address=account.address, agent_provider="sdk", agent_role="buyer"
        ),
    ).item
    assert challenge.machine_identity_ref.startswith("did:peaq:")
    signature = account.sign_message(encode_defunct(text=challenge.message)).signature.to_0x_hex()
    pairing = orch.create_agent_pairing(
        market.machine_id,
        CreateAgentPairingRequest(
            agent_address=account.address,
            agent_provider="sdk",
            agent_role="buyer",
            agent_proof=AgentProofInput(challenge_id=challenge.challenge_id, signature=signature),
        ),
    ).item
    denied = tuple(DEFAULT_POLICY["deniedServiceIds"])
    assert pairing.pairing_token and pairing.delegation_policy.denied_service_ids == denied
    return pairing.id, pairing.pairing_token


def test_sdk_runs_the_direct_payment_flow(client: PeaqosClient, market: Market, box: Sandbox) -> None:
    orch = client.orchestration
    pairing_id, token = _pair(client, market)
    search = orch.search_market(
        MarketSearchRequest(
            machine_id=market.machine_id,
            agent_pairing_id=pairing_id,
            service_type="compute.marketplace",
            operation="sha256",
        ),
        token,
    ).item
    assert search.status == "completed"
    quote = next(q for q in search.quotes if q.service_id == "svc_hash_budget")
    order = orch.create_market_order(
        CreateMarketOrderRequest(
            machine_id=market.machine_id,
            agent_pairing_id=pairing_id,
            service_id=quote.service_id,
            search_id=search.id,
            quote_id=quote.id,
            input_payload={"data": "sdk"},
        ),
        token,
    ).item
    assert order.status == "created"
    payment = orch.create_payment_intent(order.id, CreatePaymentIntentRequest(), token).item
    assert payment.status == "intent_created"
    meta = dict(payment.rail.metadata or {})
    raw = int(meta.get("raw_amount", meta.get("rawAmount")))
    assert raw == 800_000
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment.rail.payee_address, raw)
    held = orch.submit_payment_proof(
        order.id,
        SubmitPaymentProofRequest(
            verification_mode="rpc",
            chain=payment.rail.chain,
            token="USDC",
            payer_address=payment.rail.payer_address,
            payee_address=payment.rail.payee_address,
            amount=str(payment.amount),
            transaction_hash=tx,
            token_address=payment.rail.token_address,
            token_decimals=6,
            raw_amount=str(raw),
        ),
        token,
    ).item
    assert held.status == "held"
    executed = orch.execute_market_order(order.id, ExecuteMarketOrderRequest(), token)
    assert executed.execution.status_code == 200
    assert executed.execution.outcome.result["sha256"] == hashlib.sha256(b"sdk").hexdigest()
    confirmed = orch.confirm_market_order(order.id, token)
    assert confirmed.order.status == "confirmed"
    assert confirmed.payment is not None and confirmed.payment.status == "released"
    assert orch.get_market_payment(order.id).item.status == "released"
    assert orch.get_market_order(order.id).item.status == "confirmed"


def test_sdk_runs_escrow_release_dispute_and_session_calls(
    client: PeaqosClient, market: Market, box: Sandbox
) -> None:
    orch = client.orchestration
    pairing_id, token = _pair(client, market)
    buyer = evm_wallet(market.buyer)

    def escrow_order() -> tuple[str, str]:
        order = orch.create_market_order(
            CreateMarketOrderRequest(
                machine_id=market.machine_id,
                agent_pairing_id=pairing_id,
                service_id="svc_hash_escrow_pro",
                input_payload={"data": "x"},
            ),
            token,
        ).item
        payment = orch.create_payment_intent(order.id, CreatePaymentIntentRequest(), token).item
        tx = box.evm.deposit(buyer, order.id, payment.rail.payee_address, 1_600_000)
        locked = orch.lock_escrow_payment(
            order.id,
            LockEscrowPaymentRequest(
                transaction_hash=tx, chain=payment.rail.chain, escrow_address=payment.rail.escrow_address
            ),
            token,
        ).item
        assert locked.status == "held"
        assert orch.execute_market_order(order.id, ExecuteMarketOrderRequest(input={"data": "x"}), token)
        return order.id, payment.rail.payee_address

    first, _payee = escrow_order()
    assert orch.confirm_market_order(first, token).payment.status == "release_pending"
    released = orch.release_payment(
        first, ReleasePaymentRequest(notes="sandbox arbiter releases"), token
    ).item
    assert released.status == "released"

    second, _payee = escrow_order()
    disputed = orch.dispute_market_order(second, DisputeMarketOrderRequest(reason="wrong answer"), token)
    assert disputed.order.status == "disputed" and disputed.dispute.status == "open"
    assert disputed.payment is not None and disputed.payment.status == "frozen"
    market.wait_for(lambda: orch.get_market_payment(second).item.status == "refunded")

    # A policy change (PATCH) kills the token; a session rotation with a fresh proof restores access.
    policy = DelegationPolicy(
        allowed_skill_keys=(),
        denied_skill_keys=(),
        allowed_service_ids=(),
        denied_service_ids=(),
        per_transaction_limit=3.0,
        daily_spend_limit=10.0,
        currency="USDC",
    )
    updated = orch.update_agent_pairing(
        market.machine_id, pairing_id, UpdateAgentPairingRequest(delegation_policy=policy)
    ).item
    assert updated.delegation_policy.per_transaction_limit == 3
    challenge = orch.create_agent_pairing_challenge(
        market.machine_id,
        CreateAgentPairingChallengeRequest(
            agent_address=market.buyer.address, agent_provider="sdk", agent_role="buyer"
        ),
    ).item
    signature = market.buyer.sign_message(encode_defunct(text=challenge.message)).signature.to_0x_hex()
    rotated = orch.create_agent_pairing_session(
        market.machine_id,
        pairing_id,
        CreateAgentPairingSessionRequest(
            agent_proof=AgentProofInput(challenge_id=challenge.challenge_id, signature=signature)
        ),
    ).item
    assert rotated.pairing_token and rotated.pairing_token != token
    orch.revoke_agent_pairing(market.machine_id, pairing_id)
