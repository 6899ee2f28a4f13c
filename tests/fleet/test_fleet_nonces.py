"""Two worker processes paying from one wallet on anvil never sign one nonce twice (the store reserves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fleet_support import (
    Worker,
    fleet_env,
    fund_wallets,
    pairings_of,
    signed_nonces,
    store_orders,
    submit,
    task_file,
    transfers_from,
    wait_until,
)

pytestmark = pytest.mark.chains

ORDERS = 16


@pytest.mark.timeout(600)
def test_two_workers_paying_from_one_wallet_sign_each_nonce_once(
    served: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    [(address, key)] = fund_wallets(served, 1, usdc=100 * 10**6)
    env = fleet_env(served, key)
    task = task_file(tmp_path / "task.yaml", served["url"])
    workers = [
        Worker(postgres_url, env, tmp_path / f"w{i}.log", "--task", str(task), "--concurrency", "4")
        for i in range(2)
    ]
    try:
        wait_until(lambda: all(w.ready() for w in workers), timeout=120, what="both workers to start")
        ids = submit(postgres_url, task, ORDERS, env)

        def all_ended() -> bool:
            return all(o["state"] in ("confirmed", "failed") for o in store_orders(postgres_url))

        wait_until(all_ended, timeout=300, what="every order to end", every=1.0)
        for w in workers:
            w.proc.terminate()  # SIGTERM: idle workers hand back and exit 0
        reports = [w.finish() for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [code for code, _ in reports] == [0, 0], [w.stderr()[-2000:] for w in workers]
    # Both took part: the test is about two processes reserving from one counter.
    assert all(report["claimed"] > 0 for _, report in reports), reports
    orders = store_orders(postgres_url)
    assert sorted(o["order_id"] for o in orders) == sorted(ids)
    states = [(o["state"], o["message"]) for o in orders]
    assert [o["state"] for o in orders] == ["confirmed"] * ORDERS, states
    by_nonce = signed_nonces(orders)
    assert by_nonce and all(len(txs) == 1 for txs in by_nonce.values()), by_nonce
    # The chain agrees: one transfer per order from the shared wallet, each one an order's journaled tx.
    paid = transfers_from(served, address)
    assert len(paid) == ORDERS
    assert {tx for tx, _ in paid} <= set().union(*by_nonce.values())
    assert all(o["lease_owner"] is None for o in orders)  # every lease given back
    # One pairing for the fleet: the workers shared its session instead of rotating it from one another.
    assert len(pairings_of(served, address)) == 1
