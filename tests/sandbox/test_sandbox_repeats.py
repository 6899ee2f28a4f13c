"""A repeated write on the sandbox, which by default deduplicates nothing: each endpoint's own rule decides.

Every repeat here carries the same ``Idempotency-Key`` as the first call, to show that the header
changes nothing unless the sandbox is started with ``--idempotency on`` (the docs promise no such
header). The semantic rules kept are the documented ones (payment-intent returns the existing payment,
escrow-lock is idempotent for ``held``) and the ones the sandbox README lists where the docs are silent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sandbox_kit import Market, Pairing, evm_wallet, started_sandbox

from buyer_agent.sandbox import Sandbox


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox(solana=False)


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


def _twice(market: Market, pairing: Pairing, path: str, body: Any = None) -> tuple[httpx.Response, ...]:
    """The same POST twice, both with the same Idempotency-Key."""
    return tuple(
        market.agent(pairing, "POST", path, body, headers={"Idempotency-Key": f"same-{path}"})
        for _ in range(2)
    )


def _audit(market: Market, resource_id: str, kind: str) -> int:
    items = market.http.get("/audit-events", params={"resourceId": resource_id, "limit": "500"}).json()[
        "items"
    ]
    return sum(1 for e in items if e["type"] == kind)


def test_the_default_sandbox_deduplicates_nothing_and_says_so(box: Sandbox, market: Market) -> None:
    assert box.idempotency is False and box.market.idempotency is False
    assert market.http.get("/sandbox/info").json()["item"]["idempotency"] == "off"


def test_a_repeated_create_makes_a_second_order_whatever_the_key(market: Market) -> None:
    pairing = market.pair()
    quote = market.quote(pairing, "svc_hash_budget")
    body = {
        "machineId": market.machine_id,
        "agentPairingId": pairing.id,
        "serviceId": "svc_hash_budget",
        "quoteId": quote["id"],
        "input": {"data": "twice"},
    }
    first, again = _twice(market, pairing, "/market/orders", body)
    assert first.status_code == again.status_code == 200
    assert first.json()["item"]["id"] != again.json()["item"]["id"]
    listed = market.http.get("/market/orders", params={"machineId": market.machine_id, "limit": "500"})
    held = [o for o in listed.json()["items"] if o["quoteId"] == quote["id"]]
    assert len(held) == 2  # what an agent that repeats a lost create leaves behind


def test_a_direct_order_repeated_at_every_write(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_fast", data="repeat me")
    path = f"/market/orders/{order['id']}"
    # payment-intent: documented idempotent, the existing payment comes back.
    intents = _twice(market, pairing, path + "/payment-intent", {"rail": {}})
    assert intents[0].json()["item"]["id"] == intents[1].json()["item"]["id"]
    payment = intents[0].json()["item"]
    tx = box.evm.transfer_usdc(evm_wallet(market.buyer), payment["rail"]["payeeAddress"], 1_200_000)
    # A repeated proof of the same transaction: the same held payment, recorded once.
    proofs = _twice(market, pairing, path + "/payment-proof", market.evm_proof(payment, tx))
    assert [r.status_code for r in proofs] == [200, 200]
    assert proofs[0].json()["item"] == proofs[1].json()["item"]
    assert _audit(market, payment["id"], "market.payment.proof-recorded") == 1
    # A repeated execute: the stored execution comes back, the service ran once.
    runs = _twice(market, pairing, path + "/execute", {})
    assert [r.status_code for r in runs] == [200, 200]
    outcome = runs[0].json()["execution"]["outcome"]
    assert runs[1].json()["execution"]["outcome"] == outcome
    assert _audit(market, order["id"], "market.order.executed") == 1
    # The owner's view of the order shows that execution; the platform's view does not.
    own = market.agent(pairing, "GET", path).json()["item"]
    assert own["status"] == "delivered" and own["execution"]["outcome"] == outcome
    assert "execution" not in market.http.get(path).json()["item"]
    # A repeated confirm: confirmed again, the payment left as the first confirm left it.
    confirms = _twice(market, pairing, path + "/confirm", {})
    assert [r.status_code for r in confirms] == [200, 200]
    assert [r.json()["payment"]["status"] for r in confirms] == ["release_pending", "release_pending"]
    assert _audit(market, order["id"], "market.order.confirmed") == 1
    # A repeated release: released again, released once.
    releases = _twice(market, pairing, path + "/payment/release", {})
    assert [r.json()["item"]["status"] for r in releases] == ["released", "released"]
    assert _audit(market, payment["id"], "market.payment.released") == 1
    # A dispute of the closed (confirmed, paid out) order is refused.
    late = market.agent(pairing, "POST", path + "/dispute", {"reason": "too late"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "ORDER_CLOSED"


def test_a_repeated_escrow_lock_and_dispute(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_escrow")
    path = f"/market/orders/{order['id']}"
    payment = market.intent(pairing, order["id"])
    rail = payment["rail"]
    tx = box.evm.deposit(evm_wallet(market.buyer), order["id"], rail["payeeAddress"], 1_000_000)
    lock = {"transactionHash": tx, "chain": rail["chain"], "escrowAddress": rail["escrowAddress"]}
    locks = _twice(market, pairing, path + "/payment/escrow-lock", lock)
    assert [r.json()["item"]["status"] for r in locks] == ["held", "held"]  # documented: idempotent for held
    assert _audit(market, payment["id"], "market.payment.escrow-held") == 1
    # A repeated dispute: the second is refused (the order is closed), one dispute stands.
    disputes = _twice(market, pairing, path + "/dispute", {"reason": "never delivered"})
    assert disputes[0].status_code == 200
    assert disputes[1].status_code == 409 and disputes[1].json()["error"]["code"] == "ORDER_CLOSED"
    assert _audit(market, order["id"], "market.order.disputed") == 1
    # Confirm of a disputed order is refused too.
    closed = market.agent(pairing, "POST", path + "/confirm", {})
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "ORDER_CLOSED"


def test_with_idempotency_on_the_same_key_gets_the_first_answer(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    quote = market.quote(pairing, "svc_hash_budget")
    body = {
        "machineId": market.machine_id,
        "agentPairingId": pairing.id,
        "serviceId": "svc_hash_budget",
        "quoteId": quote["id"],
        "input": {"data": "once"},
    }
    box.market.idempotency = True
    try:
        assert market.http.get("/sandbox/info").json()["item"]["idempotency"] == "on"
        first, again = _twice(market, pairing, "/market/orders", body)
    finally:
        box.market.idempotency = False
    assert first.json()["item"]["id"] == again.json()["item"]["id"]
