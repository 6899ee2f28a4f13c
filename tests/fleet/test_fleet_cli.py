"""``run``, ``resume``, ``submit`` and ``worker`` on a shared store, through the real command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fleet_support import cli, fleet_env, fund_wallets, store_orders, submit, task_file

from buyer_agent.journal import open_store

pytestmark = pytest.mark.chains


def _password(url: str) -> str:
    return url.split(":")[2].split("@")[0]


def _lease(url: str, order_id: str, owner: str) -> None:
    async def take() -> None:
        store = await open_store(url)
        try:
            assert await store.acquire_lease(order_id, owner, 600.0) is not None
        finally:
            await store.aclose()

    asyncio.run(take())


@pytest.mark.timeout(600)
def test_run_resume_submit_and_a_draining_worker_on_a_store(
    served: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    [(_address, key)] = fund_wallets(served, 1, usdc=20 * 10**6)
    env = fleet_env(served, key)
    task = task_file(tmp_path / "task.yaml", served["url"])
    secret = _password(postgres_url)

    # run --store: one order end to end, journaled in the store (named without its password).
    proc = cli("run", str(task), "--store", postgres_url, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["state"] == "confirmed" and doc["journal"].startswith("postgresql://postgres@")
    assert secret not in proc.stdout + proc.stderr

    # submit: ids on stdout, nothing driven; the store from $BUYER_AGENT_STORE.
    proc = cli("submit", str(task), "--count", "2", env={**env, "BUYER_AGENT_STORE": postgres_url})
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.split()
    states = {o["order_id"]: o["state"] for o in store_orders(postgres_url)}
    assert states[first] == states[second] == "created"

    # resume --store: drives the open orders on their market, leaving one another process holds.
    _lease(postgres_url, second, "otherhost:1:worker")
    proc = cli("resume", "--store", postgres_url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"{first}  confirmed" in proc.stdout
    assert f"skipping {second}: driven elsewhere" in proc.stderr and second not in proc.stdout

    # worker --once: nothing claimable (the other process's lease) → drained at once, exit 0.
    proc = cli("worker", "--store", postgres_url, "--task", str(task), "--once", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["claimed"] == 0 and "stopped (drained)" in proc.stderr
    assert secret not in proc.stdout + proc.stderr
    states = {o["order_id"]: o["state"] for o in store_orders(postgres_url)}
    assert states[second] == "created" and sorted(states.values()).count("confirmed") == 2

    # orders --store lists all three.
    proc = cli("orders", "--store", postgres_url, "--json", env=env)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 3


def _steps_of_market_calls(stderr: str) -> set[tuple[str | None, str | None]]:
    """(order id, step) of each market call the JSON log lines show (every stderr line is JSON)."""
    docs = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    return {
        (d["order_id"], d["step"])
        for d in docs
        if d["logger"] == "buyer_agent.market" and " -> " in d["message"]
    }


@pytest.mark.timeout(600)
def test_orders_driven_on_a_store_are_heard_by_the_observers(
    served: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    """``run --store`` and ``worker`` drive with the CLI's observer: lines inside a step name it."""
    [(_address, key)] = fund_wallets(served, 1, usdc=20 * 10**6)
    env = fleet_env(served, key)
    task = task_file(tmp_path / "task.yaml", served["url"])

    proc = cli("-v", "--log-format", "json", "run", str(task), "--store", postgres_url, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    order_id = json.loads(proc.stdout)["order_id"]
    assert {(order_id, "search"), (order_id, "execute"), (order_id, "confirm")} <= _steps_of_market_calls(
        proc.stderr
    )

    (queued,) = submit(postgres_url, task, 1, env)
    proc = cli("-v", "--log-format", "json", "worker", "--store", postgres_url, "--once", env=env)
    assert proc.returncode == 0, proc.stderr
    assert {(queued, "search"), (queued, "execute")} <= _steps_of_market_calls(proc.stderr)
