"""Run every benchmark in one go, side by side on one served sandbox."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from buyer_agent.bench._fleet import FleetFigures, bench_fleet
from buyer_agent.bench._journal import bench_journal
from buyer_agent.bench._orders import bench_concurrency, bench_overhead, bench_resume
from buyer_agent.bench._replay import bench_replay
from buyer_agent.bench._report import BenchReport
from buyer_agent.bench._sizes import BenchSizes
from buyer_agent.bench._stack import ServedSandbox
from buyer_agent.bench._tracing import bench_tracing

__all__ = ["run_benchmarks"]

# Test USDC minted to the demo wallet first: every order of a full run costs at most 2.50.
_MINT_PER_ORDER = 3 * 10**6


def run_benchmarks(
    sizes: BenchSizes, progress: Callable[[str], None] = lambda _: None, *, store: str | None = None
) -> BenchReport:
    """Measure everything at ``sizes``; ``progress`` gets one line per step (the CLI sends it to stderr).

    With ``store`` (a ``postgresql://`` URL) the fleet figures are measured too, on the same sandbox:
    orders/s with 1, 2 and 4 worker processes on that store, and one worker on SQLite.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="buyer-agent-bench-") as tmp:
        workdir = Path(tmp)
        progress(f"journal: {sizes.journal_events:,} events each way")
        journal = bench_journal(workdir, sizes.journal_events)
        (workdir / "full").mkdir()
        journal_full = bench_journal(
            workdir / "full", max(100, sizes.journal_events // 10), durability="full"
        )
        progress(f"replay: {sizes.replay_events:,} synthetic events")
        replay = bench_replay(sizes.replay_events)
        progress("starting the sandbox (market, anvil, Solana RPC)")
        sandbox = ServedSandbox(workdir / "sandbox.log")
        try:
            orders = 4 * sizes.overhead_orders + 3 * sum(sizes.in_flight) + sizes.resume_orders + 30
            sandbox.mint(orders * _MINT_PER_ORDER)
            overhead = asyncio.run(bench_overhead(sandbox, workdir, sizes.overhead_orders, progress))
            tracing = asyncio.run(bench_tracing(sandbox, workdir, sizes.overhead_orders, progress))
            concurrency = asyncio.run(bench_concurrency(sandbox, workdir, sizes.in_flight, progress))
            resume = asyncio.run(bench_resume(sandbox, workdir, sizes.resume_orders, progress))
            fleet: FleetFigures | None = None
            if store is not None:
                progress(
                    f"fleet: {sizes.fleet_orders} orders per run, worker processes on {store.split('@')[-1]}"
                )
                fleet = bench_fleet(sandbox, workdir, store, sizes.fleet_orders, progress)
        finally:
            sandbox.stop()
    return BenchReport(
        sizes=sizes,
        overhead=overhead,
        journal=journal,
        journal_full=journal_full,
        replay_events_per_s=replay,
        resume=resume,
        concurrency=tuple(concurrency),
        fleet=fleet,
        seconds=time.perf_counter() - started,
        tracing=tracing,
    )
