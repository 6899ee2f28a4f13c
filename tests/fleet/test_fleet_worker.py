"""A worker's life: SIGTERM hands orders back at a safe point; after a kill -9 another worker resumes them.

Every market answer is slowed down while the first worker drives, so the signal or the kill lands
with orders in flight; the second worker drives them on from their journals. The chain decides
"exactly once": one USDC transfer per order from the fleet's wallet, no nonce signed twice.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_support import (
    Worker,
    fleet_env,
    fund_wallets,
    signed_nonces,
    store_orders,
    submit,
    task_file,
    transfers_from,
    wait_until,
)

pytestmark = pytest.mark.chains

ORDERS = 4


def _latency(info: dict[str, Any], ms: int) -> None:
    httpx.post(
        f"{info['url']}/sandbox/faults", json={"latencyMs": ms}, headers={"x-api-key": info["api_key"]}
    ).raise_for_status()


def _in_flight(url: str) -> bool:
    orders = store_orders(url)
    return bool(orders) and all(o["state"] not in ("created", "confirmed", "failed") for o in orders)


def _before_paying(url: str) -> bool:
    """Every order taken up and none paying yet: several steps each still to go."""
    orders = store_orders(url)
    return bool(orders) and all(o["state"] in ("paired", "searched", "quoted", "ordered") for o in orders)


def _exactly_once(info: dict[str, Any], url: str, address: str, ids: list[str]) -> list[dict[str, Any]]:
    orders = store_orders(url)
    assert sorted(o["order_id"] for o in orders) == sorted(ids)
    assert [o["state"] for o in orders] == ["confirmed"] * len(ids), [
        (o["state"], o["message"]) for o in orders
    ]
    by_nonce = signed_nonces(orders)
    assert all(len(txs) == 1 for txs in by_nonce.values()), by_nonce
    assert len(transfers_from(info, address)) == len(ids)
    return orders


@pytest.mark.timeout(600)
def test_sigterm_hands_orders_back_at_a_safe_point_and_another_worker_finishes_them(
    served: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    [(address, key)] = fund_wallets(served, 1, usdc=20 * 10**6)
    env = fleet_env(served, key)
    task = task_file(tmp_path / "task.yaml", served["url"])
    ids = submit(postgres_url, task, ORDERS, env)
    _latency(served, 300)
    first = Worker(postgres_url, env, tmp_path / "first.log", "--task", str(task), "--lease-ttl", "60")
    try:
        wait_until(lambda: _before_paying(postgres_url), timeout=120, what="every order in flight", every=0.1)
        first.proc.send_signal(signal.SIGTERM)
        code, report = first.finish(timeout=120)
    finally:
        first.kill()
        _latency(served, 0)
    assert code == 0, first.stderr()[-2000:]
    assert report["signal"] == "SIGTERM" and report["claimed"] == ORDERS
    assert "SIGTERM: no new orders" in first.stderr() and "leases given back" in first.stderr()
    stopped = store_orders(postgres_url)
    # Handed back (a 60 s lease, so nothing expired): no lease left, each order where its last step put it.
    assert all(o["lease_owner"] is None for o in stopped)
    assert all(o["state"] != "confirmed" for o in stopped)  # each stopped after the step it was in
    second = Worker(postgres_url, env, tmp_path / "second.log", "--task", str(task), "--once")
    code, report = second.finish(timeout=240)
    assert code == 0, second.stderr()[-2000:]
    assert report["ended"] == {"confirmed": ORDERS}
    _exactly_once(served, postgres_url, address, ids)


@pytest.mark.timeout(600)
def test_after_a_kill_9_another_worker_resumes_the_orders_once_their_leases_run_out(
    served: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    [(address, key)] = fund_wallets(served, 1, usdc=20 * 10**6)
    env = fleet_env(served, key)
    task = task_file(tmp_path / "task.yaml", served["url"])
    ids = submit(postgres_url, task, ORDERS, env)
    _latency(served, 300)
    first = Worker(postgres_url, env, tmp_path / "first.log", "--task", str(task), "--lease-ttl", "3")
    second: Worker | None = None
    try:
        wait_until(lambda: _in_flight(postgres_url), timeout=120, what="every order in flight")
        first.proc.kill()
        first.kill()
        held = store_orders(postgres_url)
        assert all(
            o["lease_owner"] is not None for o in held if o["state"] != "confirmed"
        )  # still the dead one's
        _latency(served, 0)
        second = Worker(postgres_url, env, tmp_path / "second.log", "--task", str(task), "--lease-ttl", "3")
        wait_until(
            lambda: all(o["state"] == "confirmed" for o in store_orders(postgres_url)),
            timeout=240,
            what="the second worker to finish the orders",
            every=0.5,
        )
        second.proc.terminate()
        code, report = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert code == 0, second.stderr()[-2000:]
    resumed = sum(1 for o in held if o["state"] != "confirmed")
    assert report["claimed"] == resumed and report["ended"] == {"confirmed": resumed}
    orders = _exactly_once(served, postgres_url, address, ids)
    assert all(o["lease_owner"] is None for o in orders)
    assert json.dumps(orders).count(key.removeprefix("0x")) == 0  # no key in any journal
