"""The runner end to end on the sandbox: real HTTP, real anvil, the LiteSVM RPC, SQLite on disk."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import Money
from buyer_agent.journal import Journal, LedgerStatus
from buyer_agent.workflow import Acceptance, OrderSpec, OrderState
from buyer_agent.workflow._crashpoint import Crash, crash_after

pytestmark = pytest.mark.chains

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SCHEMA = {
    "type": "object",
    "required": ["sha256"],
    "properties": {"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from buyer_agent.sandbox import Sandbox

    box = Sandbox(state_dir=tmp_path_factory.mktemp("sandbox"))
    info = box.start()
    try:
        yield info.to_json()
    finally:
        box.stop()


class Stack:
    """A market client, rails, pairing and runner over one journal file (rebuilt after a crash)."""

    def __init__(self, info: dict[str, Any], db: Path, policy: dict[str, Any] | None = None) -> None:
        from buyer_agent.market import AsyncMarketClient
        from buyer_agent.rails import EvmRail, SolanaRail
        from buyer_agent.workflow import PairingSession
        from buyer_agent.workflow._runner import Runner

        self.journal = Journal(db)
        self.market = AsyncMarketClient(info["url"], api_key=info["api_key"])
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
            machine_id=info["machine_id"],
            agent_key=info["wallets"]["evm"]["private_key"],
            delegation_policy=policy,
            store=self.journal,
        )
        self.runner = Runner(
            market=self.market,
            journal=self.journal,
            rails=[self.evm, self.sol],
            pairing=self.pairing,
            poll_interval=0.05,
        )

    async def aclose(self) -> None:
        await self.evm.aclose()
        await self.sol.aclose()
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


def transfers_from(info: dict[str, Any], address: str) -> int:
    """ERC-20 Transfer logs of the sandbox token sent by ``address`` (payments on chain)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    topic_from = "0x" + "0" * 24 + address.lower().removeprefix("0x")
    logs = w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": Web3.to_checksum_address(info["evm"]["token_address"]),
            "topics": [TRANSFER_TOPIC, topic_from],
        }
    )
    return len(logs)


def buyer(info: dict[str, Any]) -> str:
    return str(info["wallets"]["evm"]["address"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_direct_order_confirms_with_one_payment_and_a_clean_journal(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    db = tmp_path / "j.db"
    before = transfers_from(sandbox, buyer(sandbox))

    async def go() -> tuple[Any, str]:
        stack = Stack(sandbox, db)
        try:
            summary = await stack.runner.buy(spec())
            token = (await stack.pairing.token()).reveal()
            return summary, token
        finally:
            await stack.aclose()

    summary, token = run(go())
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert summary.quote is not None and summary.quote["service_id"] == "svc_hash_budget"
    assert summary.payment is not None and summary.payment["amount"] == "0.80"
    assert summary.outcome is not None and summary.outcome["status"] == "completed"
    by_id = {c["service_id"]: c for c in summary.candidates}
    assert by_id["svc_hash_premium"]["eligible"] is False
    assert by_id["svc_hash_denied"]["eligible"] is False
    assert transfers_from(sandbox, buyer(sandbox)) == before + 1
    journal = Journal(db)
    assert journal.verify(summary.order_id) > 10
    entry = journal.ledger_entry(summary.order_id)
    assert entry is not None and entry.status is LedgerStatus.SPENT
    # Nothing secret ever reaches the journal files.
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("j.db"))
    secrets = [
        token,
        sandbox["api_key"],
        sandbox["wallets"]["evm"]["private_key"].removeprefix("0x"),
        sandbox["wallets"]["solana"]["secret_key"],
    ]
    for secret in secrets:
        assert secret.encode() not in raw
        assert secret.lower().encode() not in raw


def test_escrow_order_locks_executes_confirms_and_releases(sandbox: dict[str, Any], tmp_path: Path) -> None:
    async def go() -> Any:
        stack = Stack(sandbox, tmp_path / "e.db")
        try:
            return await stack.runner.buy(spec(rail="onchain-escrow"))
        finally:
            await stack.aclose()

    summary = run(go())
    assert summary.state is OrderState.CONFIRMED, summary.error
    triggers = [e.trigger for e in Journal(tmp_path / "e.db").events(summary.order_id)]
    assert "lock_escrow" in triggers and "intent:release_payment" in triggers


def test_solana_order_confirms(sandbox: dict[str, Any], tmp_path: Path) -> None:
    async def go() -> Any:
        stack = Stack(sandbox, tmp_path / "s.db")
        try:
            return await stack.runner.buy(spec(chain="solana"))
        finally:
            await stack.aclose()

    summary = run(go())
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert summary.payment is not None and str(summary.payment["chain"]).startswith("solana:")


def test_failed_acceptance_disputes_and_is_refunded(sandbox: dict[str, Any], tmp_path: Path) -> None:
    async def go() -> Any:
        stack = Stack(sandbox, tmp_path / "d.db")
        try:
            return await stack.runner.buy(spec(operation="sha256-unverified", rail="onchain-escrow"))
        finally:
            await stack.aclose()

    summary = run(go())
    assert summary.state is OrderState.REFUNDED, summary.error
    events = Journal(tmp_path / "d.db").events(summary.order_id)
    dispute = next(e for e in events if e.trigger == "dispute")
    evidence = dispute.payload["evidence"]
    assert "sha256" in evidence["acceptance_failure"]
    assert evidence["journal"]["payment"]["hash"] == next(e.hash for e in events if e.trigger == "paid")


def test_budget_below_every_quote_fails_before_money_moves(sandbox: dict[str, Any], tmp_path: Path) -> None:
    before = transfers_from(sandbox, buyer(sandbox))

    async def go() -> Any:
        stack = Stack(sandbox, tmp_path / "b.db")
        try:
            return await stack.runner.buy(spec(budget=Money.parse("0.10 USDC")))
        finally:
            await stack.aclose()

    summary = run(go())
    assert summary.state is OrderState.FAILED
    assert summary.error is not None and summary.error["code"] == "NO_ELIGIBLE_QUOTE"
    assert summary.candidates and not any(c["eligible"] for c in summary.candidates)
    assert all(any("budget" in r for r in c["reasons"]) for c in summary.candidates if c["price"])
    assert transfers_from(sandbox, buyer(sandbox)) == before
    assert Journal(tmp_path / "b.db").ledger_entries() == []


def test_daily_limit_holds_across_two_orders_and_a_restart(sandbox: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "daily.db"
    policy = {
        "per_transaction_limit": "5",
        "daily_spend_limit": "1.50",
        "currency": "USDC",
        "denied_service_ids": ["svc_hash_denied"],
    }

    async def one() -> Any:
        stack = Stack(sandbox, db, policy)
        try:
            return await stack.runner.buy(spec())
        finally:
            await stack.aclose()

    first = run(one())
    assert first.state is OrderState.CONFIRMED, first.error
    second = run(one())  # a new runner and journal on the same file: the ledger remembers 0.80
    assert second.state is OrderState.FAILED
    assert second.error is not None and second.error["code"] == "NO_ELIGIBLE_QUOTE"
    assert any("daily" in r for c in second.candidates for r in c["reasons"])


def _reference_triggers(sandbox: dict[str, Any], db: Path, order_spec: OrderSpec) -> list[str]:
    async def go() -> list[str]:
        stack = Stack(sandbox, db, _ROOMY)
        try:
            summary = await stack.runner.buy(order_spec)
            assert summary.state is OrderState.CONFIRMED, summary.error
            return [e.trigger for e in stack.journal.events(summary.order_id)]
        finally:
            await stack.aclose()

    return list(run(go()))


# Twenty-odd paid orders in one test: a daily limit that the default policy would exhaust.
_ROOMY = {"per_transaction_limit": "5", "daily_spend_limit": "1000", "currency": "USDC"}


@pytest.mark.parametrize("rail", ["wallet", "onchain-escrow"])
def test_a_crash_after_any_journaled_event_resumes_to_one_payment(
    sandbox: dict[str, Any], tmp_path: Path, rail: str
) -> None:
    db = tmp_path / "crash.db"
    order_spec = spec(rail=rail)
    triggers = _reference_triggers(sandbox, db, order_spec)
    for seq in range(1, len(triggers)):
        before = transfers_from(sandbox, buyer(sandbox))

        async def crash_then_resume(seq: int = seq) -> Any:
            stack = Stack(sandbox, db, _ROOMY)
            order_id = await stack.runner.submit(order_spec)
            if seq > 1:  # seq 1 is the submit itself: that process dies before driving
                stack.runner._crash_hook = crash_after(f"seq:{seq}")
                with contextlib.suppress(Crash):
                    await stack.runner.drive(order_id)
            await stack.aclose()
            fresh = Stack(sandbox, db, _ROOMY)  # a new process: new journal handle, runner, pairing
            try:
                await fresh.runner.resume()  # every open order; one already terminal is left alone
                return fresh.runner.summary(order_id)
            finally:
                await fresh.aclose()

        summary = run(crash_then_resume())
        assert summary.state is OrderState.CONFIRMED, (seq, triggers[seq - 1], summary.error)
        # Escrow: the deposit (and the approve, which is no Transfer) — one token transfer either way.
        assert transfers_from(sandbox, buyer(sandbox)) == before + 1, (seq, triggers[seq - 1])
