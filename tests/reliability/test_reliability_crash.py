"""SIGKILL the agent at seeded random moments, resume, and count the payments on chain: exactly one each.

What is random, and how: ``crash_worker.py`` (a fork server, one per batch) forks a child per CLI
invocation that runs ``buyer_agent.cli.main(["run", TASK, "--json", "--market", URL, ...])`` — the same
code as ``python -m buyer_agent run`` minus the interpreter start — against ONE sandbox served by a
separate process. Each ``run`` is SIGKILLed after a delay drawn uniformly (``random.Random(SEED)``):
with probability ``EARLY`` over the start-up before the order's first journal event (connecting),
otherwise over the rest of an uninterrupted order, timed from that first event (the child writes one
byte to a pipe when it commits). Uninterrupted orders run side by side first to measure both windows.
So kills land at arbitrary moments (mid HTTP request, between signing and broadcast, inside a SQLite
commit), not only at journal boundaries. After a kill, ``resume`` runs; with probability
``KILL_RESUME`` it is SIGKILLed too, uniformly over an order's whole length, and resumed again. The
scheduler's jitter makes exact kill points vary run to run even with the seed fixed; the seed fixes
the delays. ``--crash-runs N`` (or ``$BUYER_AGENT_CRASH_RUNS``) sets how many SIGKILLs must land while
an agent runs (default 200; 1,000 for the long run).

Every order has its own fresh wallet and journal, so "exactly one payment" is the number of token
Transfer logs on anvil sent from that wallet (a direct transfer, or the escrow's transferFrom), read
from the chain, never from the journal. The sandbox deduplicates nothing (``--idempotency off``): a kill
that lands between a write reaching the market and its answer being journaled leaves the resumed
order to read what the market holds, so "exactly one market order" and "the service ran once" are
read from the market's own lists (its orders by the agent's pairings, its audit events).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    assert_no_secrets,
    fork_cli,
    fund_wallets,
    market_env,
    market_problems,
    orders_in,
    payments_by_sender,
    write_task,
)

from buyer_agent.journal import Journal

pytestmark = pytest.mark.chains

SEED = 20261123
KILL_RESUME = 0.4
EARLY = 0.15
HANG_S = 90.0
PARALLEL = 4
RAILS = ("wallet", "wallet", "onchain-escrow")


def run_worker(
    info: dict[str, Any], orders: list[dict[str, str]], *, seed: int, windows: tuple[float, float, float]
) -> list[Any]:
    """Run one batch through the fork server with seeded kills; its per-order reports."""
    pre, post, whole = windows
    return fork_cli(
        info,
        orders,
        # EVM only, as every order pays on EVM: without a Solana key no run builds a Solana rail.
        env={k: v for k, v in market_env(info).items() if not k.startswith("BUYER_AGENT_SOLANA_")},
        kill=True,
        seed=seed,
        early=EARLY,
        pre_window=pre,
        post_window=post,
        max_delay=whole,
        kill_resume=KILL_RESUME,
        parallel=PARALLEL,
        hang_s=HANG_S,
    )


def make_orders(
    info: dict[str, Any], base: Path, start: int, count: int
) -> tuple[list[dict[str, str]], list[str]]:
    wallets = fund_wallets(info, count)
    orders = []
    for i, (_addr, key) in enumerate(wallets, start=start):
        state_dir = base / f"order-{i}"
        state_dir.mkdir(parents=True)
        task = write_task(state_dir / "task.yaml", i, rail=RAILS[i % len(RAILS)])
        orders.append({"state_dir": str(state_dir), "key": key, "task": str(task)})
    return orders, [addr.lower() for addr, _ in wallets]


def final_state(report: dict[str, Any]) -> str:
    out = json.loads(report["final"]["stdout"] or "null")
    if isinstance(out, list):
        return str(out[0]["state"]) if out else "?"
    return str(out["state"]) if isinstance(out, dict) else "?"


# The default 200 kills take ~45 s alone, ~2 minutes in the suite; --crash-runs 1000 may need more than
# the suite's 300 s limit. A stuck child is killed by the worker after HANG_S and reported, so this
# limit never hides a hang.
@pytest.mark.timeout(3600)
def test_seeded_sigkills_then_resume_pay_exactly_once(
    served: dict[str, Any], crash_runs: int, tmp_path: Path
) -> None:
    # Uninterrupted orders, as many side by side as in the loop, give the window the kills are drawn from.
    ref_orders, _ = make_orders(served, tmp_path, 0, PARALLEL)
    refs = run_worker(served, ref_orders, seed=SEED, windows=(1e6, 1e6, 1e6))
    assert all(r["kills"] == 0 and final_state(r) == "confirmed" for r in refs), refs
    runs = [r["runs"][0] for r in refs]
    windows = (
        max(run["journaled"] for run in runs),
        max(run["seconds"] - run["journaled"] for run in runs),
        max(run["seconds"] for run in runs),
    )

    reports: list[dict[str, Any]] = []
    addresses: dict[int, str] = {}
    kills, batch, next_index = 0, 0, PARALLEL
    keys: list[str] = []
    while kills < crash_runs:
        # Each order takes ~1.6 landed kills on average; size the batch to what is still missing.
        count = max(4, min(120, int((crash_runs - kills) / 1.4) + 1))
        orders, wallets = make_orders(served, tmp_path, next_index, count)
        keys += [order["key"] for order in orders]
        got = run_worker(served, orders, seed=SEED + batch, windows=windows)
        assert len(got) == count
        for report in got:
            report["index"] += next_index
            addresses[report["index"]] = wallets[report["index"] - next_index]
        reports += got
        kills += sum(r["kills"] for r in got)
        next_index += count
        batch += 1

    (tmp_path / "reports.json").write_text(json.dumps(reports, indent=1))  # for a post-mortem
    paid = payments_by_sender(served)
    problems = []
    for report in reports:
        where = (
            f"order #{report['index']} ({report['kills']} kills, runs {[r['code'] for r in report['runs']]})"
        )
        for run in report["runs"]:
            if "Traceback" in run["stderr"]:
                problems.append(f"{where}: traceback\n{run['stderr']}")
        # The journal decides (a kill after the last event leaves ``resume`` nothing to print).
        if report["final"]["code"] != 0 or report["final"]["hung"]:
            problems.append(f"{where}: exit {report['final']['code']}: {report['final']['stderr'][-800:]}")
        rows = orders_in(Path(report["state_dir"]))
        if [state for _, state in rows] != ["confirmed"]:
            problems.append(f"{where}: journal holds {rows}")
        journal = Journal.open_dir(report["state_dir"])
        try:
            for order_id, _ in rows:
                journal.verify(order_id)
        finally:
            journal.close()
        payments = paid.get(addresses[report["index"]], 0)
        if payments != 1:
            problems.append(f"{where}: {payments} payments on chain")
    problems += market_problems(served, reports, [addresses[r["index"]] for r in reports])
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:20])
    # Every stderr line of every run and resume, and every journal row: no key, API key or token.
    assert_no_secrets(served, reports, keys)
    assert kills >= crash_runs
