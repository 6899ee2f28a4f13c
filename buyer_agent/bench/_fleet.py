"""The fleet benchmark: orders/s with 1, 2 and 4 worker processes on a PostgreSQL store, and SQLite's one.

Every run is real processes: ``python -m buyer_agent worker --store STORE`` started and waited for
until each says it drives orders; then ``orders`` orders are submitted into the store at once and the
clock runs until every one of them has ended (read from the store). The workers share one fresh
wallet per store (nonces reserved in the store) and one pairing (shared through the store). The
SQLite figure is the same with one worker on a state directory: the single-process store. Each figure
is also given as a ratio to one PostgreSQL worker, all measured in one run on one served sandbox.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from buyer_agent._errors import BuyerAgentError
from buyer_agent.bench._stack import ServedSandbox
from buyer_agent.fleet import fleet_agent, submit_orders
from buyer_agent.journal import OrderStore, open_store
from buyer_agent.task import load_task
from buyer_agent.workflow import TERMINAL, OrderState

__all__ = ["WORKER_COUNTS", "FleetFigures", "FleetRun", "bench_fleet"]

#: Worker processes on the PostgreSQL store, one run each.
WORKER_COUNTS = (1, 2, 4)
#: Orders each worker process drives at once.
CONCURRENCY = 4
_READY = "driving orders of"
_START_S = 120.0
_POLL_S = 0.05
_OPEN = [s.value for s in OrderState if s not in TERMINAL]

_TASK = """\
market: {market}
task:
  service_type: compute.marketplace
  task_type: hash
  operation: sha256
  input: {{data: "benchmark"}}
  region: eu-west
budget: "2.50 USDC"
strategy: cheapest
payment: {{rail: wallet, chain: evm, max_fee_per_gas_gwei: 50}}
policy:
  per_transaction_limit: "5.00 USDC"
  daily_spend_limit: "1000000 USDC"
acceptance: {{outcome: completed}}
"""


@dataclass(frozen=True, slots=True)
class FleetRun:
    """One run: ``workers`` processes on a ``store`` (``postgresql`` or ``sqlite``) drove ``orders``."""

    store: str
    workers: int
    orders: int
    seconds: float
    failed: int

    @property
    def orders_per_s(self) -> float:
        """Orders ended (confirmed or not) per second of the run."""
        return self.orders / self.seconds


@dataclass(frozen=True, slots=True)
class FleetFigures:
    """The fleet runs of one ``bench --store``: the PostgreSQL ones, then SQLite's single process."""

    store: str
    concurrency: int
    runs: tuple[FleetRun, ...]

    @property
    def base(self) -> FleetRun:
        """One PostgreSQL worker: the figure every ratio is to."""
        return next(r for r in self.runs if r.store == "postgresql" and r.workers == 1)

    def ratio(self, run: FleetRun) -> float:
        """``run``'s orders/s over one PostgreSQL worker's."""
        return run.orders_per_s / self.base.orders_per_s

    def to_json(self) -> dict[str, Any]:
        """``{store, concurrency, runs: [{store, workers, orders, seconds, orders_per_s, ratio, failed}]}``.

        ``store`` is the PostgreSQL store's label (no password).
        """
        return {
            "store": self.store,
            "concurrency": self.concurrency,
            "runs": [
                {
                    "store": r.store,
                    "workers": r.workers,
                    "orders": r.orders,
                    "seconds": r.seconds,
                    "orders_per_s": r.orders_per_s,
                    "ratio": self.ratio(r),
                    "failed": r.failed,
                }
                for r in self.runs
            ],
        }


def bench_fleet(
    sandbox: ServedSandbox, workdir: Path, store: str, orders: int, progress: Callable[[str], None]
) -> FleetFigures:
    """Orders/s with :data:`WORKER_COUNTS` workers on ``store`` (PostgreSQL), then one on SQLite."""
    task_path = workdir / "fleet-task.yaml"
    task_path.write_text(_TASK.format(market=sandbox.task.url), encoding="utf-8")
    label = ""
    runs = []
    plan: list[tuple[str, str, int]] = [("postgresql", store, n) for n in WORKER_COUNTS]
    plan.append(("sqlite", str(workdir / "fleet-sqlite"), 1))
    keys = {"postgresql": sandbox.new_wallet(orders * len(WORKER_COUNTS) * 3 * 10**6)}
    keys["sqlite"] = sandbox.new_wallet(orders * 3 * 10**6)
    for kind, target, workers in plan:
        env = _env(sandbox.task.info, keys[kind])
        run, where = _one_run(kind, target, workers, orders, task_path, env, workdir)
        label = label or where
        progress(
            f"fleet: {workers} worker(s) on {kind}: {run.orders_per_s:.1f} orders/s "
            f"({orders} orders in {run.seconds:.2f} s, {run.failed} not confirmed)"
        )
        runs.append(run)
    return FleetFigures(store=label, concurrency=CONCURRENCY, runs=tuple(runs))


def _env(info: Mapping[str, Any], evm_key: str) -> dict[str, str]:
    """The workers' environment: this one's, without buyer_agent / peaq settings, plus the sandbox's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUYER_AGENT_", "PEAQOS_"))}
    env.update(
        PEAQOS_API_KEY=str(info["api_key"]),
        PEAQOS_MACHINE_ID=str(info["machine_id"]),
        BUYER_AGENT_EVM_KEY=evm_key,
        BUYER_AGENT_EVM_RPC=str(info["evm"]["rpc_url"]),
    )
    return env


def _one_run(
    kind: str, target: str, workers: int, orders: int, task_path: Path, env: dict[str, str], workdir: Path
) -> tuple[FleetRun, str]:
    logs = [workdir / f"fleet-{kind}-{workers}-{i}.log" for i in range(workers)]
    procs = [_start(target, task_path, env, log) for log in logs]
    try:
        _wait_ready(procs, logs)
        seconds, failed, label = asyncio.run(_submit_and_wait(target, task_path, env, orders))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return FleetRun(kind, workers, orders, seconds, failed), label


def _start(target: str, task_path: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "buyer_agent", "worker", "--store", target),
                *("--task", str(task_path), "--concurrency", str(CONCURRENCY)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


def _wait_ready(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until every worker said it drives orders (it connected and paired)."""
    deadline = time.monotonic() + _START_S
    while not all(_READY in log.read_text(encoding="utf-8", errors="replace") for log in logs):
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace")[-500:]
                raise BuyerAgentError(f"a benchmark worker exited {proc.returncode} before starting: {tail}")
        if time.monotonic() > deadline:
            raise BuyerAgentError(f"the benchmark workers did not start in {_START_S:g} s; see {logs[0]}")
        time.sleep(_POLL_S)


async def _submit_and_wait(
    target: str, task_path: Path, env: dict[str, str], orders: int
) -> tuple[float, int, str]:
    """Submit ``orders`` orders and wait for them all to end: seconds, how many did not confirm, label."""
    task = replace(load_task(task_path, env=env), machine_id=env["PEAQOS_MACHINE_ID"])
    agent = fleet_agent(task, None)
    store = await open_store(target, create=True, field="--store")
    try:
        started = time.perf_counter()
        ids = set(await submit_orders(store, task, agent, orders))
        while not await _ended(store, ids):
            await asyncio.sleep(_POLL_S)
        seconds = time.perf_counter() - started
        failed = 0
        for order_id in ids:
            failed += (await store.order(order_id)).state != OrderState.CONFIRMED.value
        return seconds, failed, store.label
    finally:
        await store.aclose()


async def _ended(store: OrderStore, ids: set[str]) -> bool:
    return not ids & {r.order_id for r in await store.orders(_OPEN)}
