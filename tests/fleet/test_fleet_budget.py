"""Eight workers racing on one pairing's orders: what they commit never passes its daily limit.

The sandbox here leaves the daily limit to the buyer (``enforce_daily_limit=False``), so the only
thing between the racing workers and an overspend is the store: each commitment is checked against
the day's total under a row lock on the pairing's ledger row, in the transaction that records it.
Every market answer is delayed, so many orders pass the eligibility check (which reads the day's
total) before any of them commits: the store's check is what refuses the ones past the limit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fleet_support import (
    Worker,
    fleet_env,
    fund_wallets,
    store_orders,
    submit,
    task_file,
    transfers_from,
    wait_until,
)

from buyer_agent.journal import LedgerStatus, open_store
from buyer_agent.sandbox import FaultConfig, Sandbox
from buyer_agent.sandbox.market import MarketSettings

pytestmark = pytest.mark.chains

WORKERS = 8
ORDERS = 24
PRICE = 600_000  # the cheapest wallet quote this policy allows (svc_hash_denied: it denies nothing)
DAILY = 3_000_000  # 3.00 USDC: five orders fit


def _committed(url: str) -> int:
    async def read() -> int:
        store = await open_store(url)
        try:
            entries = await store.ledger_entries()
        finally:
            await store.aclose()
        live = (LedgerStatus.COMMITTED, LedgerStatus.SPENT)
        return sum(e.amount.amount for e in entries if e.status in live)

    return asyncio.run(read())


@pytest.mark.timeout(600)
def test_eight_workers_never_commit_past_the_daily_limit(postgres_url: str, tmp_path: Path) -> None:
    settings = MarketSettings(enforce_daily_limit=False)
    with Sandbox(settings=settings, faults=FaultConfig(latency_ms=150)) as started:
        info = started.to_json()
        [(address, key)] = fund_wallets(info, 1, usdc=50 * 10**6)
        env = fleet_env(info, key)
        task = task_file(tmp_path / "task.yaml", info["url"], daily="3.00")
        workers = [
            Worker(postgres_url, env, tmp_path / f"w{i}.log", "--task", str(task), "--concurrency", "3")
            for i in range(WORKERS)
        ]
        try:
            wait_until(lambda: all(w.ready() for w in workers), timeout=240, what="eight workers to start")
            submit(postgres_url, task, ORDERS, env)

            def all_ended() -> bool:
                return all(o["state"] in ("confirmed", "failed") for o in store_orders(postgres_url))

            wait_until(all_ended, timeout=300, what="every order to end", every=1.0)
            for w in workers:
                w.proc.terminate()
            reports = [w.finish() for w in workers]
        finally:
            for w in workers:
                w.kill()
        paid = transfers_from(info, address)
    assert [code for code, _ in reports] == [0] * WORKERS, [w.stderr()[-1500:] for w in workers]
    orders = store_orders(postgres_url)
    confirmed = [o for o in orders if o["state"] == "confirmed"]
    left = [o for o in orders if o["state"] != "confirmed"]
    # The ledger and the chain agree, and neither passes the limit.
    assert _committed(postgres_url) == len(confirmed) * PRICE <= DAILY
    assert sum(amount for _, amount in paid) == len(confirmed) * PRICE
    assert len(confirmed) == DAILY // PRICE
    # The rest failed on the budget: refused by the store as it committed (BUDGET_EXCEEDED), or, once
    # the day's total was visible, found no quote within the daily limit (NO_ELIGIBLE_QUOTE when
    # choosing, ORDER_REJECTED when the chosen quote no longer fitted before ordering).
    assert all(o["state"] == "failed" and "daily limit" in (o["message"] or "") for o in left), [
        (o["error"], o["message"]) for o in left
    ]
    codes = {o["error"] for o in left}
    assert codes <= {"BUDGET_EXCEEDED", "NO_ELIGIBLE_QUOTE", "ORDER_REJECTED"}, codes
    # The race happened: orders that had passed the eligibility check were refused by the store.
    assert "BUDGET_EXCEEDED" in codes, codes
