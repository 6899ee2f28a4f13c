"""Orders written through the real Journal API, in the shapes the runner journals (replay tests)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from buyer_agent._money import Money
from buyer_agent.history._evidence import context_from_events
from buyer_agent.journal import Journal
from buyer_agent.journal._canonical import format_at
from buyer_agent.workflow import OrderSpec
from buyer_agent.workflow._evidence import dispute_evidence

T0 = datetime(2026, 11, 22, 18, 0, 0, tzinfo=UTC)
EVM = "eip155:31337"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
BUYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

# The sandbox catalogue on the EVM wallet rail (price, score), as the workflow keeps quote facts.
CATALOGUE = {
    "svc_hash_budget": ("0.80", "0.70"),
    "svc_hash_fast": ("1.20", "0.92"),
    "svc_hash_premium": ("4.00", "0.99"),
    "svc_hash_denied": ("0.60", "0.80"),
}


def quote(service_id: str, expires_at: datetime) -> dict[str, Any]:
    """Quote facts as ``buyer_agent.workflow._quotes.quote_facts`` makes them."""
    price, score = CATALOGUE[service_id]
    return {
        "quote_id": f"q_{service_id}",
        "service_id": service_id,
        "provider_key": f"prov_{service_id}",
        "skill_key": "sha256",
        "price": Money.of(price, "USDC", 6).to_json(),
        "score": score,
        "execution_mode": "native",
        "rail": "wallet",
        "supported_rails": ["wallet"],
        "chain": EVM,
        "token": "USDC",
        "token_address": TOKEN,
        "token_mint": None,
        "payee": "0x" + hashlib.sha256(service_id.encode()).hexdigest()[:40],
        "expires_at": format_at(expires_at),
        "latency_ms": 40 if service_id == "svc_hash_fast" else None,
        "reputation": None,
        "reasons": [],
    }


def candidate(q: dict[str, Any], eligible: bool, reasons: list[str]) -> dict[str, Any]:
    return {
        "service_id": q["service_id"],
        "quote_id": q["quote_id"],
        "price": {"amount": q["price"]["amount"], "currency": "USDC"},
        "score": q["score"],
        "eligible": eligible,
        "reasons": reasons,
    }


class Clock:
    """A clock that moves on by ``step`` on every read (deterministic journals)."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(milliseconds=250)) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def spec(strategy: str = "cheapest") -> OrderSpec:
    return OrderSpec(
        service_type="compute.marketplace",
        operation="sha256",
        input={"data": "hello"},
        budget=Money.of("2.50", "USDC", 6),
        strategy=strategy,
        rail="wallet",
        chain="evm",
    )


def write_order(journal: Journal, order_id: str = "ord_golden_1", *, disputed: bool = False) -> None:
    """A complete order on the EVM wallet rail that chose ``svc_hash_budget`` with ``cheapest``."""
    s = spec()
    j = journal
    j.create_order(
        order_id, s.to_json(), context={"machine_id": "mach_sandbox_demo"}, payload={"spec": s.to_json()}
    )
    policy = {
        "per_transaction_limit": Money.of("5", "USDC", 6).to_json(),
        "daily_spend_limit": Money.of("20", "USDC", 6).to_json(),
        "allowed_service_ids": [],
        "denied_service_ids": ["svc_hash_denied"],
        "allowed_skill_keys": [],
        "denied_skill_keys": [],
    }
    j.record(
        order_id, "pair", "created", "paired", {"pairing_id": "pair_1", "policy": policy}, pairing_id="pair_1"
    )
    j.record(order_id, "intent:search_market", "paired", "paired", {"idempotency_key": "idem_s"})
    expires = T0 + timedelta(minutes=5)
    quotes = [quote(sid, expires) for sid in CATALOGUE]
    j.record(
        order_id,
        "search",
        "paired",
        "searched",
        {"search_id": "srch_1", "status": "completed", "quotes": quotes},
    )
    by = {q["service_id"]: q for q in quotes}
    candidates = [
        candidate(by["svc_hash_budget"], True, ["cheapest eligible"]),
        candidate(by["svc_hash_fast"], True, []),
        candidate(by["svc_hash_premium"], False, ["price 4.00 USDC over order budget 2.50 USDC"]),
        candidate(by["svc_hash_denied"], False, ["service svc_hash_denied is denied by the policy"]),
    ]
    limits = {
        "order_budget": Money.of("2.50", "USDC", 6).to_json(),
        "per_transaction_limit": policy["per_transaction_limit"],
        "daily_limit": policy["daily_spend_limit"],
        "spent_today": Money(0, 6, "USDC").to_json(),
        "allowed_service_ids": [],
        "denied_service_ids": ["svc_hash_denied"],
        "allowed_skill_keys": [],
        "denied_skill_keys": [],
    }
    choice = by["svc_hash_budget"]
    j.record(
        order_id,
        "choose",
        "searched",
        "quoted",
        {
            "quotes": quotes,
            "candidates": candidates,
            "decision": {
                "quote_id": choice["quote_id"],
                "reason": "cheapest eligible quote: 0.80 USDC",
                "ranking": ["q_svc_hash_budget", "q_svc_hash_fast"],
            },
            "limits": limits,
            "strategy": "cheapest",
            "now": format_at(T0 + timedelta(seconds=2)),
        },
    )
    j.record(
        order_id,
        "intent:create_market_order",
        "quoted",
        "quoted",
        {"idempotency_key": "idem_o", "quote_id": choice["quote_id"]},
    )
    j.record(
        order_id,
        "order",
        "quoted",
        "ordered",
        {"market_order_id": "mord_1", "status": "created", "idempotency_key": "idem_o"},
        market_order_id="mord_1",
    )
    request = {
        "order_id": "mord_1", "rail_type": "wallet", "chain": EVM, "token": TOKEN, "payer": BUYER,
        "payee": choice["payee"], "amount": Money.of("0.80", "USDC", 6).to_json(), "escrow_address": None,
        "fee_cap_wei": None,
    }  # fmt: skip
    tx = {"chain": EVM, "tx_id": "0x" + "ab" * 32, "raw": "02f8", "purpose": "transfer", "meta": {"nonce": 0}}
    j.record(order_id, "pay", "ordered", "paying", {"request": request, "txs": [tx], "rail": "evm-wallet"})
    j.record(
        order_id,
        "intent:broadcast_payment",
        "paying",
        "paying",
        {"tx_id": tx["tx_id"], "purpose": "transfer"},
    )
    j.record(
        order_id,
        "result:broadcast_payment",
        "paying",
        "paying",
        {"tx_id": tx["tx_id"], "status": "confirmed"},
    )
    proof = {"transaction_hash": tx["tx_id"], "chain": EVM, "payer_address": BUYER}
    j.record(
        order_id, "paid", "paying", "paid", {"tx": tx["tx_id"], "proof": proof, "payment_status": "verified"}
    )
    result = (
        {"sha256": "not-a-hash"}
        if disputed
        else {"sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}
    )
    outcome = {"status": "completed", "result": result, "error_message": None, "id": "out_1"}
    j.record(order_id, "execute", "paid", "executed", {"outcome": outcome})
    if disputed:
        reason = "result does not match the schema"
        j.record(order_id, "result:acceptance", "executed", "executed", {"accepted": False, "reason": reason})
        # The bundle the runner attaches when it disputes.
        why = f"delivery failed acceptance: {reason}"
        events = j.events(order_id)
        evidence = dispute_evidence(events, context_from_events(events), why)
        payload = {"reason": why, "evidence": evidence, "dispute_id": "dsp_1"}
        j.record(order_id, "dispute", "executed", "disputed", payload)
        j.record(order_id, "refund", "disputed", "refunded", {"payment_status": "refunded"})
    else:
        j.record(order_id, "result:acceptance", "executed", "executed", {"accepted": True})
        j.record(order_id, "confirm", "executed", "confirmed", {"payment": "released"})
