"""The official peaq-os-sdk client, pointed at the sandbox over HTTP, runs every documented buyer flow
(wallet, escrow, no payment, x402); its strict decoders accept every answer."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from sandbox_kit import Market, evm_wallet, started_sandbox
from web3 import Web3

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
    PaymentIntentRailOptions,
    ReleasePaymentRequest,
    SubmitPaymentProofRequest,
    SubmitX402PaymentProofRequest,
    UpdateAgentPairingRequest,
    X402ExecutePayment,
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
    # "On success the rail type upgrades wallet → wdk-usdt-transfer".
    assert held.rail.rail_type == "wdk-usdt-transfer"
    executed = orch.execute_market_order(order.id, ExecuteMarketOrderRequest(), token)
    assert executed.execution.status_code == 200
    assert executed.execution.outcome.result["sha256"] == hashlib.sha256(b"sdk").hexdigest()
    # The documented close: confirm moves the held payment to release_pending, the buyer releases.
    confirmed = orch.confirm_market_order(order.id, token)
    assert confirmed.order.status == "confirmed"
    assert confirmed.payment is not None and confirmed.payment.status == "release_pending"
    released = orch.release_payment(order.id, None, token).item
    assert released.status == "released" and released.rail.rail_type == "wdk-usdt-transfer"
    assert orch.get_market_payment(order.id).item.status == "released"
    assert orch.get_market_order(order.id).item.status == "confirmed"


def test_sdk_asks_for_the_wdk_usdt_transfer_rail_as_the_official_cli_does(
    client: PeaqosClient, market: Market, box: Sandbox
) -> None:
    # The CLI's intent: type = defaultRail, switched to wdk-usdt-transfer when the default is wallet
    # and supportedRails lists it; chain, token and addresses copied from order.payment.
    orch = client.orchestration
    pairing_id, token = _pair(client, market)
    order = orch.create_market_order(
        CreateMarketOrderRequest(
            machine_id=market.machine_id,
            agent_pairing_id=pairing_id,
            service_id="svc_hash_fast",
            input_payload={"data": "wdk"},
        ),
        token,
    ).item
    rec = order.payment
    assert rec.default_rail == "wallet" and "wdk-usdt-transfer" in rec.supported_rails
    rail = PaymentIntentRailOptions(
        type="wdk-usdt-transfer",
        chain=rec.chain,
        token=rec.token,
        token_address=rec.token_address,
        payer_address=market.buyer.address,
        payee_address=rec.payee_address,
        wallet_address=rec.wallet_address,
    )
    payment = orch.create_payment_intent(order.id, CreatePaymentIntentRequest(rail=rail), token).item
    assert payment.rail.rail_type == "wdk-usdt-transfer" and payment.status == "intent_created"
    raw = int(dict(payment.rail.metadata or {})["raw_amount"])
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment.rail.payee_address, raw)
    held = orch.submit_payment_proof(
        order.id,
        SubmitPaymentProofRequest(
            verification_mode="recorded",
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
    assert held.status == "held" and held.rail.rail_type == "wdk-usdt-transfer"
    assert (
        orch.execute_market_order(order.id, ExecuteMarketOrderRequest(), token).execution.status_code == 200
    )
    assert orch.confirm_market_order(order.id, token).payment.status == "release_pending"
    assert (
        orch.release_payment(order.id, ReleasePaymentRequest(notes="received"), token).item.status
        == "released"
    )


def test_sdk_runs_the_no_payment_flow(client: PeaqosClient, market: Market) -> None:
    orch = client.orchestration
    pairing_id, token = _pair(client, market)

    def free_order(data: str) -> Any:
        order = orch.create_market_order(
            CreateMarketOrderRequest(
                machine_id=market.machine_id,
                agent_pairing_id=pairing_id,
                service_id="svc_hash_free",
                input_payload={"data": data},
            ),
            token,
        ).item
        assert order.payment.required is False and order.payment.default_rail == "not-required"
        return order

    # The CLI's two steps: create, then execute; nothing is paid, proven or signed.
    order = free_order("free")
    executed = orch.execute_market_order(order.id, ExecuteMarketOrderRequest(), token)
    assert executed.execution.status_code == 200
    assert executed.execution.outcome.result["sha256"] == hashlib.sha256(b"free").hexdigest()
    confirmed = orch.confirm_market_order(order.id, token)
    assert confirmed.order.status == "confirmed" and confirmed.payment is None
    assert orch.get_market_payment(order.id).item is None

    # An intent on a not-required rail records it and moves the order straight to ready.
    order = free_order("free again")
    payment = orch.create_payment_intent(order.id, CreatePaymentIntentRequest(), token).item
    assert payment.status == "not_required" and payment.rail.rail_type == "not-required"
    assert orch.get_market_order(order.id).item.status == "ready"
    assert (
        orch.execute_market_order(order.id, ExecuteMarketOrderRequest(), token).execution.status_code == 200
    )
    confirmed = orch.confirm_market_order(order.id, token)
    assert confirmed.order.status == "confirmed" and confirmed.payment.status == "not_required"


def test_sdk_runs_the_x402_flow_and_the_market_settles_it_once(
    client: PeaqosClient, market: Market, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("x402")
    from x402.mechanisms.evm import default_assets

    orch = client.orchestration
    pairing_id, token = _pair(client, market)
    order = orch.create_market_order(
        CreateMarketOrderRequest(
            machine_id=market.machine_id,
            agent_pairing_id=pairing_id,
            service_id="svc_hash_x402",
            input_payload={"data": "x402"},
        ),
        token,
    ).item
    assert order.payment.default_rail == "x402"
    payment = orch.create_payment_intent(order.id, CreatePaymentIntentRequest(), token).item
    assert payment.rail.rail_type == "x402" and payment.status == "intent_created"
    asset = market.info["evm"]["x402_token_address"]
    payee = payment.rail.payee_address
    network = market.info["evm"]["chain"]
    # The challenge, where and as the SDK reads it.
    req = orch.parse_x402_payment_requirements(payment)
    assert (req.scheme, req.network, req.amount, req.max_timeout_seconds) == ("exact", network, "750000", 300)
    assert req.asset.lower() == asset.lower() and req.pay_to.lower() == payee.lower()
    assert (req.extra_name, req.extra_version) == ("USD Coin", "2")

    # The x402 client signs only for assets it knows: the sandbox's EIP-3009 USDC is registered the
    # way the package allows (its default-asset table), which is what a local token needs.
    sandbox_usdc = {"asset": asset, "name": "USD Coin", "version": "2", "decimals": 6, "symbol": "USDC"}
    monkeypatch.setitem(default_assets.DEFAULT_ASSETS, network, [sandbox_usdc])
    signed = orch.sign_x402_payment(payment, market.buyer)
    header = signed.payment_signature
    digest = hashlib.sha256(header.encode()).hexdigest()[:24]
    assert signed.payment_reference == f"x402:{network}:{digest}"
    decoded = json.loads(base64.b64decode(header))
    nonce = decoded["payload"]["authorization"]["nonce"]
    assert decoded["x402Version"] == 2 and decoded["accepted"]["payTo"].lower() == payee.lower()

    held = orch.submit_x402_payment_proof(
        order.id,
        SubmitX402PaymentProofRequest(
            payment_signature=header,
            payment_reference=signed.payment_reference,
            metadata={"headerName": signed.header_name, "network": signed.network, "asset": signed.asset},
        ),
        token,
    ).item
    assert held.status == "held" and held.proof.metadata.header_name == "PAYMENT-SIGNATURE"
    assert held.proof.transaction_hash is None  # nothing moved yet: the market settles at execute
    w3 = box.evm.w3
    first_block = w3.eth.block_number + 1
    buyer_before = box.evm.x402_balance(market.buyer.address)

    execute = ExecuteMarketOrderRequest(payment=X402ExecutePayment(payment_signature=header))
    executed = orch.execute_market_order(order.id, execute, token)
    assert executed.execution.status_code == 200
    assert executed.execution.outcome.result["sha256"] == hashlib.sha256(b"x402").hexdigest()
    again = orch.execute_market_order(order.id, execute, token)  # the stored execution, no settlement
    assert again.execution.outcome.id == executed.execution.outcome.id

    # The chain: exactly one transfer payer → payee of the exact amount, one AuthorizationUsed.
    logs = w3.eth.get_logs({"address": Web3.to_checksum_address(asset), "fromBlock": first_block})
    transfer = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()
    used = "0x" + Web3.keccak(text="AuthorizationUsed(address,bytes32)").hex()
    topics = [["0x" + bytes(t).hex() for t in log["topics"]] for log in logs]
    transfers = [(t, log) for t, log in zip(topics, logs, strict=True) if t[0] == transfer]
    assert len(transfers) == 1
    ((t, log),) = transfers
    assert t[1][-40:] == market.buyer.address[2:].lower() and t[2][-40:] == payee[2:].lower()
    assert int.from_bytes(bytes(log["data"]), "big") == 750_000
    assert [t[2] for t in topics if t[0] == used] == [nonce.lower()]
    assert box.evm.x402_balance(market.buyer.address) == buyer_before - 750_000
    assert box.evm.authorization_used(market.buyer.address, bytes.fromhex(nonce[2:]))

    settled = orch.get_market_payment(order.id).item
    assert settled.proof.transaction_hash == log["transactionHash"].to_0x_hex()
    assert settled.proof.metadata.payment_settlement.status == "settled"
    assert orch.confirm_market_order(order.id, token).payment.status == "release_pending"
    assert orch.release_payment(order.id, None, token).item.status == "released"


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
