"""A fleet on PostgreSQL under fire: one of three workers SIGKILLed again and again; the database killed.

Crash suite: three ``worker`` processes drive orders from one PostgreSQL store on one served sandbox,
paying from ONE wallet (so nonces are shared). Two run throughout; the third is SIGKILLed at seeded
random moments and started again at once, by ``fleet_killer.py`` (a fork server, so a restart costs no
interpreter start) — ``--crash-runs`` landed kills (a kill lands when the dead worker held leases: it
was driving orders). One kill in ten is drawn over the worker's start-up (connecting); the others over
its first 0.8 s of claiming and driving (an order takes about half a second), so kills fall at every
step: mid request, between signing and broadcast, inside a commit. 200 landed kills take about two
minutes alone, two and a half in the suite: about 0.6 s a kill, mostly the drawn delays. Orders are fed in all
along (two on the direct-transfer rail for one on escrow), so the victim always has some. Then, read
from the store and the chain: every order confirmed (none lost), every journal verifies, exactly one
payment per order (the USDC transfers sent from the wallet are exactly the orders' journaled payments,
one each), no nonce signed twice, neither the wallet key nor the API key in any worker's output.

Database restart: two workers drive orders while the PostgreSQL server is stopped with
``pg_ctl stop -m immediate`` (as a crash) and started again: the workers say they wait (``wait:``
lines), go on, and every order ends confirmed with one payment.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleet"))

from fleet_support import (
    ROOT,
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
from reliability_support import secret_hits

from buyer_agent.testing import PostgresServer, postgres_available

pytestmark = [
    pytest.mark.chains,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed (scripts/setup)"),
]

SEED = 20261207
SURVIVORS = 2
LEASE_TTL = "2"
OPEN_ORDERS = 24  # kept open while the kills go on: the victim always finds orders to claim past the
# leases its dead predecessors still hold (LEASE_TTL each) and those the survivors drive
EARLY = 0.1  # the share of kills drawn over a worker's start-up (connecting), not over its driving
START_WINDOW_S = 0.6
MAX_DELAY_S = 0.8  # kills otherwise land up to this long after the worker starts claiming (an order ~0.5 s)
KILLER = Path(__file__).with_name("fleet_killer.py")
PAYMENT_PURPOSES = ("transfer", "escrow_deposit")


def _open_orders(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM buyer_agent.orders WHERE state NOT IN "
            "('confirmed', 'failed', 'cancelled', 'refunded', 'disputed', 'handed_off')"
        ).fetchone()
    return int(row[0]) if row else 0


def _feed(url: str, tasks: list[Path], env: dict[str, str], fed: list[str], count: int) -> None:
    """Submit ``count`` more orders, two direct transfers for each escrow order."""
    from buyer_agent.fleet import fleet_agent, submit_orders
    from buyer_agent.journal import open_store
    from buyer_agent.task import load_task

    async def go() -> None:
        store = await open_store(url)
        try:
            for _ in range(count):
                task = load_task(tasks[len(fed) % len(tasks)], env=env)
                task = replace(task, machine_id=env["PEAQOS_MACHINE_ID"])
                agent = fleet_agent(task, None)
                fed.extend(await submit_orders(store, task, agent, 1))
        finally:
            await store.aclose()

    asyncio.run(go())


def _exactly_once(info: dict[str, Any], url: str, address: str, fed: list[str]) -> list[str]:
    """The problems found reading the store and the chain (empty: every order paid exactly once)."""
    orders = store_orders(url)  # every chain verified on the way
    problems = []
    if sorted(o["order_id"] for o in orders) != sorted(fed):
        problems.append(f"{len(fed)} orders fed, {len(orders)} in the store")
    for o in orders:
        if o["state"] != "confirmed":
            problems.append(f"{o['order_id']}: {o['state']} {o['error']}: {o['message']}")
    by_nonce = signed_nonces(orders)
    problems += [f"nonce {n} signed as {sorted(txs)}" for n, txs in by_nonce.items() if len(txs) > 1]
    chain = {tx for tx, _ in transfers_from(info, address)}
    paid_total = 0
    for o in orders:
        journaled = {
            str(tx["tx_id"]).lower()
            for e in o["events"]
            for tx in (e.get("payload") or {}).get("txs") or ()
            if isinstance(tx, dict) and tx.get("purpose") in PAYMENT_PURPOSES
        }
        paid = journaled & chain
        paid_total += len(paid)
        if len(paid) != 1:
            problems.append(f"{o['order_id']}: {len(paid)} payments on chain ({sorted(paid)})")
    if paid_total != len(chain):
        problems.append(
            f"{len(chain)} transfers from the wallet on chain, {paid_total} of them orders' payments"
        )
    return problems


def _no_secrets(info: dict[str, Any], key: str, logs: list[Path]) -> None:
    texts = {str(p): p.read_text(encoding="utf-8", errors="replace") for p in logs}
    assert secret_hits(texts, {"api key": info["api_key"], "wallet key": key}) == []


@pytest.mark.timeout(3600)
def test_a_worker_killed_again_and_again_loses_no_order_and_pays_each_once(
    served: dict[str, Any], crash_runs: int, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database()
    [(address, key)] = fund_wallets(served, 1, usdc=10_000 * 10**6)
    # EVM only: the orders pay on EVM, and a worker without a Solana rail starts sooner (no RPC call).
    env = {k: v for k, v in fleet_env(served, key).items() if not k.startswith("BUYER_AGENT_SOLANA_")}
    tasks = [
        task_file(tmp_path / "wallet.yaml", served["url"]),
        task_file(tmp_path / "wallet2.yaml", served["url"]),
        task_file(tmp_path / "escrow.yaml", served["url"], rail="onchain-escrow"),
    ]
    args = ("--task", str(tasks[0]), "--lease-ttl", LEASE_TTL, "--concurrency", "3")
    survivors = [Worker(url, env, tmp_path / f"survivor-{i}.log", *args) for i in range(SURVIVORS)]
    fed: list[str] = []
    lives: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        wait_until(lambda: all(w.ready() for w in survivors), timeout=180, what="the survivors to start")
        _feed(url, tasks, env, fed, OPEN_ORDERS)
        config = {
            "argv": ["worker", "--store", url, *args],
            "env": env,
            "store": url,
            "seed": SEED,
            "kills": crash_runs,
            "early": EARLY,
            "start_window": START_WINDOW_S,
            "min_delay": 0.05,
            "max_delay": MAX_DELAY_S,
            "log_dir": str(tmp_path),
        }
        with (tmp_path / "killer.log").open("w") as killer_log:
            killer = subprocess.Popen(
                [sys.executable, str(KILLER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=killer_log,
                text=True,
                cwd=ROOT,
                env=env,
            )
            assert killer.stdin is not None
            killer.stdin.write(json.dumps(config))
            killer.stdin.close()
            while killer.poll() is None:
                missing = OPEN_ORDERS - _open_orders(url)
                if missing > 0:
                    _feed(url, tasks, env, fed, missing)
                time.sleep(0.3)
        lives = [json.loads(line) for line in (tmp_path / "lives.jsonl").read_text().splitlines() if line]
        assert killer.returncode == 0, (tmp_path / "killer.log").read_text()[-3000:]
        # The survivors finish what is left (the last victim's orders once its leases run out).
        wait_until(lambda: _open_orders(url) == 0, timeout=600, what="every order to end", every=1.0)
        for w in survivors:
            w.proc.terminate()
        codes = [w.finish()[0] for w in survivors]
    finally:
        for w in survivors:
            w.kill()
    took = time.monotonic() - started
    landed = sum(1 for life in lives if life["killed"] and life["held"])
    print(f"{landed} landed kills in {len(lives)} lives, {len(fed)} orders, {took:.0f} s")
    assert codes == [0] * SURVIVORS, [w.stderr()[-2000:] for w in survivors]
    assert landed >= crash_runs
    problems = _exactly_once(served, url, address, fed)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:20])
    logs = [w.log for w in survivors] + sorted(tmp_path.glob("victim-*.log"))
    assert not any("Traceback" in p.read_text(errors="replace") for p in logs)
    _no_secrets(served, key, logs)


@pytest.mark.timeout(900)
def test_the_database_killed_mid_run_workers_wait_and_go_on(served: dict[str, Any], tmp_path: Path) -> None:
    [(address, key)] = fund_wallets(served, 1, usdc=200 * 10**6)
    env = fleet_env(served, key)
    task = task_file(tmp_path / "task.yaml", served["url"])
    with PostgresServer(fsync=False) as server:
        url = server.create_database("fleet")
        ids = submit(url, task, 40, env)
        workers = [
            Worker(
                url,
                env,
                tmp_path / f"w{i}.log",
                "--task",
                str(task),
                "--lease-ttl",
                "10",
                "--concurrency",
                "4",
            )
            for i in range(2)
        ]
        try:
            # Cut while orders are in flight (each worker drives 4 at once; 40 take several seconds).
            wait_until(lambda: _open_orders(url) <= 36, timeout=180, what="orders under way", every=0.05)
            server.crash()  # pg_ctl stop -m immediate: every connection cut, no clean shutdown
            time.sleep(3.0)
            server.start_again()
            wait_until(lambda: _open_orders(url) == 0, timeout=300, what="every order to end", every=1.0)
            for w in workers:
                w.proc.terminate()
            codes = [w.finish()[0] for w in workers]
        finally:
            for w in workers:
                w.kill()
        problems = _exactly_once(served, url, address, ids)
    assert codes == [0, 0], [w.stderr()[-2000:] for w in workers]
    assert not problems, "\n".join(problems[:20])
    said = "".join(w.stderr() for w in workers)
    assert "wait: waiting for the store" in said  # the wait was said, not silent
    assert "Traceback" not in said
