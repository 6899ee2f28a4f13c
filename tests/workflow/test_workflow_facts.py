"""The one fold: ``fold(journal.events(id))`` gives, key by key, the context the runner kept in the row.

Real orders on the sandbox (real HTTP, anvil, the LiteSVM RPC, SQLite on disk) through every path the
suite produces: direct EVM, escrow, Solana, disputed then refunded, no eligible quote, an external
handoff, a fallback after the market refused the first choice, a price held for approval then
approved, and resumes after a crash at several points. Time anchors are the journaled ``at`` of the
event that set them, so they equal the runner's own clock reading to within moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback_proxy import LoopbackProxy

from buyer_agent import Money
from buyer_agent.history import order_summary
from buyer_agent.journal import Journal
from buyer_agent.workflow import Acceptance, OrderFacts, OrderSpec, OrderState, fold
from buyer_agent.workflow._crashpoint import Crash, crash_after
from buyer_agent.workflow._facts import EFFECT_KEYS

pytestmark = pytest.mark.chains

SCHEMA = {
    "type": "object",
    "required": ["sha256"],
    "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
}
ROOMY = {"per_transaction_limit": "5", "daily_spend_limit": "1000", "currency": "USDC"}
ANCHORS = frozenset(
    {"quote_window_start", "payment_started_at", "paid_at", "release_started_at", "disputed_at"}
    | {f"{name}_at" for name in EFFECT_KEYS.values()}
)
# The runner reads its clock a moment before the journal stamps the event (or, after a crash, when
# the resumed run starts the step again).
ANCHOR_SLACK_S = 5.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from buyer_agent.sandbox import Sandbox

    box = Sandbox(state_dir=tmp_path_factory.mktemp("sandbox"))
    info = box.start()
    try:
        yield dict(info.to_json())
    finally:
        box.stop()


class Stack:
    """Market client, rails, pairing and runner over one journal file."""

    def __init__(self, info: dict[str, Any], db: Path, url: str | None = None) -> None:
        from buyer_agent.market import AsyncMarketClient
        from buyer_agent.rails import EvmRail, SolanaRail, X402Rail
        from buyer_agent.workflow import PairingSession
        from buyer_agent.workflow._runner import Runner

        self.machine_id = str(info["machine_id"])
        self.journal = Journal(db)
        self.market = AsyncMarketClient(url or info["url"], api_key=info["api_key"])
        self.evm = EvmRail(
            info["evm"]["rpc_url"],
            info["wallets"]["evm"]["private_key"],
            chain=info["evm"]["chain"],
            nonce_store=self.journal,
        )
        self.sol = SolanaRail(
            info["solana"]["rpc_url"], info["wallets"]["solana"]["secret_key"], chain=info["solana"]["chain"]
        )
        self.pairing = PairingSession.with_platform_key(
            self.market,
            machine_id=self.machine_id,
            agent_key=info["wallets"]["evm"]["private_key"],
            delegation_policy=ROOMY,
            store=self.journal,
        )
        self.x402 = X402Rail(
            info["evm"]["rpc_url"], info["wallets"]["evm"]["private_key"], chain=info["evm"]["chain"]
        )
        self.runner = Runner(
            market=self.market,
            journal=self.journal,
            rails=[self.evm, self.sol, self.x402],
            pairing=self.pairing,
            poll_interval=0.05,
        )

    async def aclose(self) -> None:
        await self.evm.aclose()
        await self.sol.aclose()
        await self.x402.aclose()
        await self.market.aclose()
        self.journal.close()


def spec(**kw: Any) -> OrderSpec:
    base: dict[str, Any] = {
        "service_type": "compute.marketplace",
        "operation": "sha256",
        "input": {"data": "hello"},
        "budget": Money.parse("2.50 USDC"),
        "rail": "wallet",
        "chain": "evm",
        "acceptance": Acceptance(json_schema=SCHEMA),
    }
    base.update(kw)
    return OrderSpec(**base)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_fold_is_the_context(journal: Journal, order_id: str, machine_id: str) -> OrderFacts:
    """Every key of the row's context from the fold of the events alone; the row's columns too."""
    rec = journal.order(order_id)
    facts = fold(journal.events(order_id))
    folded = facts.to_context()
    # The submit payload names the machine only when the spec did; else the pairing's machine ran it.
    if facts.machine_id is None:
        folded["machine_id"] = machine_id
    kept = dict(rec.context)
    assert sorted(folded) == sorted(kept)
    for key, value in kept.items():
        if key in ANCHORS:
            gap = abs((_at(folded[key]) - _at(value)).total_seconds())
            assert gap < ANCHOR_SLACK_S, (key, folded[key], value)
        else:
            assert folded[key] == value, key
    assert facts.order_id == order_id
    assert facts.state == rec.state
    assert facts.market_order_id == rec.market_order_id
    assert facts.pairing_id == rec.pairing_id
    assert facts.updated_at == rec.updated_at and facts.created_at == rec.created_at
    assert facts.spec is not None and facts.spec.to_json() == dict(rec.spec)
    return facts


def assert_summary_from_facts(runner: Any, journal: Journal, order_id: str) -> None:
    """The summary read from the facts (``show``, ``orders``) is the runner's, byte for byte."""
    facts = fold(journal.events(order_id))
    mine = order_summary(facts, str(journal.path)).to_json()
    theirs = runner.summary(order_id).to_json()
    assert json.dumps(mine) == json.dumps(theirs)


def buy(info: dict[str, Any], db: Path, order: OrderSpec, url: str | None = None) -> tuple[Any, OrderFacts]:
    async def go() -> tuple[Any, OrderFacts]:
        stack = Stack(info, db, url)
        try:
            summary = await stack.runner.buy(order)
            assert_summary_from_facts(stack.runner, stack.journal, summary.order_id)
            return summary, assert_fold_is_the_context(stack.journal, summary.order_id, stack.machine_id)
        finally:
            await stack.aclose()

    return asyncio.run(go())


def test_direct_escrow_and_solana_orders_fold_to_their_context(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    summary, facts = buy(sandbox, tmp_path / "j.db", spec())
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert facts.proof is not None and facts.paid_tx == summary.payment["tx"]
    assert facts.request is not None and str(facts.request.amount) == "0.60 USDC"
    assert facts.choice is not None and facts.choice.service_id == summary.quote["service_id"]
    assert facts.key("create_market_order") is not None and facts.accepted and facts.market_confirmed

    summary, facts = buy(sandbox, tmp_path / "j.db", spec(rail="onchain-escrow"))
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert facts.escrow_proof is not None and facts.release_tx is not None and facts.release_txs

    summary, facts = buy(sandbox, tmp_path / "j.db", spec(chain="solana"))
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert facts.request is not None and facts.request.chain.startswith("solana:")


def test_a_free_order_folds_to_its_context(sandbox: dict[str, Any], tmp_path: Path) -> None:
    summary, facts = buy(sandbox, tmp_path / "f.db", spec(operation="sha256-free", rail=None, chain=None))
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert facts.request is None and facts.txs is None and facts.paid_at is None
    assert facts.choice is not None and facts.choice.free and facts.market_confirmed


def test_an_x402_order_folds_to_its_context(sandbox: dict[str, Any], tmp_path: Path) -> None:
    summary, facts = buy(sandbox, tmp_path / "x.db", spec(rail="x402", budget=Money.parse("1.00 USDC")))
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert facts.authorization is not None and facts.settlement is not None
    assert facts.request is not None and facts.request.rail_type == "x402" and facts.txs == ()
    assert [t.purpose for t in facts.transactions] == ["x402_settlement"]


def test_disputed_refunded_and_failed_orders_fold_to_their_context(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    summary, facts = buy(
        sandbox, tmp_path / "d.db", spec(operation="sha256-unverified", rail="onchain-escrow")
    )
    assert summary.state is OrderState.REFUNDED, summary.error
    assert facts.dispute is not None and facts.acceptance_failure and facts.disputed_at
    assert facts.error is not None and facts.error.code == "DISPUTED"

    summary, facts = buy(sandbox, tmp_path / "d.db", spec(budget=Money.parse("0.10 USDC")))
    assert summary.state is OrderState.FAILED
    assert facts.error is not None and facts.error.code == "NO_ELIGIBLE_QUOTE"
    assert facts.candidates and not any(c.eligible for c in facts.candidates) and facts.limits is not None
    assert facts.errors == (facts.error,)


def test_a_handoff_and_an_approved_order_fold_to_their_context(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    db = tmp_path / "h.db"

    async def handoff() -> OrderFacts:
        stack = Stack(sandbox, db)
        try:
            order_id = await stack.runner.submit(spec(allow_handoff=True))
            await stack.runner.step(order_id, "pair")
            await stack.runner.step(order_id, "search")
            quotes = stack.journal.order(order_id).context["quotes"]
            handoff_quote = next(q["quote_id"] for q in quotes if q["service_id"] == "svc_hash_handoff")
            await stack.runner.step(order_id, "choose", quote_id=handoff_quote)
            summary = await stack.runner.drive(order_id)
            assert summary.state is OrderState.HANDED_OFF, summary.error
            assert_summary_from_facts(stack.runner, stack.journal, order_id)
            return assert_fold_is_the_context(stack.journal, order_id, stack.machine_id)
        finally:
            await stack.aclose()

    facts = asyncio.run(handoff())
    assert facts.handoff is not None and facts.handoff.url
    assert facts.pick is not None and facts.pick.why.startswith("chosen by the caller")

    async def approval() -> OrderFacts:
        stack = Stack(sandbox, db)
        try:
            held = await stack.runner.buy(spec(approval_threshold=Money.parse("0.10 USDC")))
            assert held.state is OrderState.AWAITING_APPROVAL, held.error
            assert_fold_is_the_context(stack.journal, held.order_id, stack.machine_id)
            assert_summary_from_facts(stack.runner, stack.journal, held.order_id)
            await stack.runner.step(held.order_id, "approve")
            summary = await stack.runner.drive(held.order_id)
            assert summary.state is OrderState.CONFIRMED, summary.error
            return assert_fold_is_the_context(stack.journal, held.order_id, stack.machine_id)
        finally:
            await stack.aclose()

    assert asyncio.run(approval()).approved


class RefusingProxy(LoopbackProxy):
    """Forwards to the market, but refuses (403) to order ``refused``."""

    def __init__(self, upstream: str, refused: str) -> None:
        self.refused = refused
        super().__init__(upstream)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self.body(req)
        ordering = req.command == "POST" and req.path.split("?")[0].endswith("/market/orders")
        if ordering and body and json.loads(body).get("serviceId") == self.refused:
            error = {"code": "AGENT_POLICY_DENIED", "message": f"service {self.refused} is denied"}
            self.reply(req, 403, "application/json", json.dumps({"error": error}).encode())
            return
        self.reply(req, *self.forward(req.command, req.path, body, dict(req.headers.items())))


def test_a_fallback_after_a_refused_order_folds_to_its_context(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    proxy = RefusingProxy(sandbox["url"], refused="svc_hash_denied")
    try:
        summary, facts = buy(sandbox, tmp_path / "f.db", spec(strategy="fallback"), url=proxy.address)
    finally:
        proxy.close()
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert facts.tried and facts.choice is not None and facts.choice.service_id == "svc_hash_fast"
    assert facts.pick is not None and facts.pick.rejected == facts.tried[-1]


@pytest.mark.parametrize("rail", ["wallet", "onchain-escrow"])
def test_orders_resumed_after_a_crash_fold_to_their_context(
    sandbox: dict[str, Any], tmp_path: Path, rail: str
) -> None:
    db = tmp_path / "crash.db"
    for point in (
        "intent:search_market",
        "intent:create_market_order",
        "pay",
        "intent:broadcast_payment",
        "paid",
        "execute",
    ):

        async def crash_then_resume(point: str = point) -> None:
            stack = Stack(sandbox, db)
            order_id = await stack.runner.submit(spec(rail=rail))
            stack.runner._crash_hook = crash_after(point)
            with contextlib.suppress(Crash):
                await stack.runner.drive(order_id)
            assert_fold_is_the_context(stack.journal, order_id, stack.machine_id)
            assert_summary_from_facts(stack.runner, stack.journal, order_id)
            await stack.aclose()
            fresh = Stack(sandbox, db)
            try:
                await fresh.runner.resume(order_id)
                assert fresh.runner.summary(order_id).state is OrderState.CONFIRMED
                assert_fold_is_the_context(fresh.journal, order_id, fresh.machine_id)
                assert_summary_from_facts(fresh.runner, fresh.journal, order_id)
            finally:
                await fresh.aclose()

        asyncio.run(crash_then_resume())


def test_a_dropped_payment_and_release_fold_to_their_new_transactions() -> None:
    """``note:*_dropped`` (a provably dropped transaction re-signed) replaces the kept transactions."""
    tx = {"chain": "eip155:31337", "tx_id": "0x01", "raw": "02", "purpose": "transfer", "meta": {"nonce": 1}}
    new = {**tx, "tx_id": "0x02", "meta": {"nonce": 2}}

    def ev(seq: int, trigger: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"order_id": "o", "seq": seq, "at": f"2026-01-01T00:00:0{seq}.000000Z", "trigger": trigger,
                "src": "paying", "dst": "paying", "payload": payload}  # fmt: skip

    facts = fold(
        [
            ev(1, "note:payment_dropped", {"dropped": "0x00", "txs": [tx]}),
            ev(2, "note:release_signed", {"txs": [tx]}),
            ev(3, "note:release_dropped", {"dropped": "0x01", "txs": [new]}),
        ]
    )
    assert facts.to_context()["txs"] == [tx]
    assert facts.to_context()["release_txs"] == [new]
    assert facts.release_started_at == "2026-01-01T00:00:02.000000Z"


GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.mark.parametrize("name", ["order_confirmed_v0", "order_confirmed_v1", "order_refunded_v1"])
def test_journals_written_by_earlier_code_fold(name: str) -> None:
    from buyer_agent.history import build_timeline, context_from_events
    from buyer_agent.journal import open_journal_file

    jf = open_journal_file(GOLDEN / f"{name}.jsonl")
    events = [ev for _, _, ev in jf.events if ev is not None]
    facts = fold(events)
    assert facts.state == jf.header["final_state"] and facts.seq == len(events)
    assert facts.spec is not None and facts.decision is not None and facts.decision.limits is not None
    assert facts.choice is not None and facts.choice.service_id == "svc_hash_budget"
    assert facts.request is not None and str(facts.request.amount) == "0.80 USDC"
    assert facts.paid_tx is not None and facts.proof is not None and facts.outcome is not None
    assert facts.market_order_id == "mord_1" and facts.key("create_market_order") is not None
    assert context_from_events(events) == facts.to_context()
    timeline = build_timeline(events)
    assert timeline["spent"] == {"amount": "0.80", "currency": "USDC"}
    if name.startswith("order_refunded"):
        assert facts.dispute is not None and facts.dispute.evidence is not None
        assert facts.error is not None and facts.error.code == "DISPUTED" and facts.acceptance_failure
        assert timeline["dispute"]["reason"] == facts.dispute.reason
    else:
        assert facts.accepted and facts.error is None and facts.dispute is None
