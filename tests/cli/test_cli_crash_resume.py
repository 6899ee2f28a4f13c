"""SIGKILL the CLI right after each journaled step of an order in turn; `resume` finishes it, paying once.

Runs against an external sandbox (``python -m buyer_agent sandbox``) that deduplicates nothing (its
default ``--idempotency off``). Each kill point gets its own buyer wallet (funded here from the demo
wallet) and its own journal, so the kill points run side by side and "exactly one payment" is simply
the number of token transfers from that wallet; the market's own lists say how many market orders
there are and how often each service ran.
"""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, fund_wallets, market_env, transfers_from

pytestmark = pytest.mark.chains


def run_order(info: dict[str, Any], key: str, state_dir: Path, crash: str | None = None) -> Any:
    env = market_env(info, evm_key=key)
    if crash is not None:
        env["BUYER_AGENT_CRASH_AFTER"] = crash
    return cli(
        "run", "examples/task.yaml", "--json", "--market", info["url"], "--state-dir", str(state_dir), env=env
    )


def market_order_ids(info: dict[str, Any]) -> set[str]:
    """Every market order the sandbox holds for its machine."""
    from buyer_agent.market import MarketClient

    with MarketClient(info["url"], api_key=info["api_key"]) as market:
        return {o.id for o in market.list_market_orders_all(machine_id=info["machine_id"])}


def executions(info: dict[str, Any]) -> dict[str, int]:
    """How often the market ran each order's service: its ``market.order.executed`` audit events."""
    import httpx

    runs: dict[str, int] = {}
    cursor: str | None = None
    with httpx.Client(base_url=info["url"] + "/api/v1", headers={"x-api-key": info["api_key"]}) as api:
        while True:
            query = {
                "type": "market.order.executed",
                "limit": "500",
                **({"cursor": cursor} if cursor else {}),
            }
            page = api.get("/audit-events", params=query).json()
            for event in page["items"]:
                runs[event["resourceId"]] = runs.get(event["resourceId"], 0) + 1
            cursor = page["nextCursor"]
            if not cursor:
                return runs


def test_kill_at_every_step_then_resume_pays_exactly_once(external: dict[str, Any], tmp_path: Path) -> None:
    before = market_order_ids(external)  # the session's sandbox may hold other tests' orders
    # A reference order: how many events does an uninterrupted order journal?
    (ref_addr, ref_key), *_ = fund_wallets(external, 1)
    ref = run_order(external, ref_key, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    order_id = json.loads(ref.stdout)["order_id"]
    shown = json.loads(cli("show", order_id, "--json", "--state-dir", str(tmp_path / "ref")).stdout)
    steps = shown["timeline"]
    assert steps[-1]["dst"] == "confirmed"
    assert transfers_from(external, ref_addr) == 1
    kill_points = [step["seq"] for step in steps[:-1]]
    wallets = fund_wallets(external, len(kill_points))

    def crash_and_resume(seq: int, wallet: tuple[str, str]) -> tuple[int, str, str, int, str, str]:
        address, key = wallet
        state_dir = tmp_path / f"kill-{seq}"
        crashed = run_order(external, key, state_dir, crash=f"seq:{seq}")
        assert crashed.returncode == -signal.SIGKILL, (seq, crashed.returncode, crashed.stderr)
        env = market_env(external, evm_key=key)
        resumed = cli("resume", "--market", external["url"], "--json", "--state-dir", str(state_dir), env=env)
        summaries = json.loads(resumed.stdout or "[]")
        final = summaries[0]["state"] if summaries else "?"
        market_order = summaries[0]["market_order_id"] if summaries else "?"
        return seq, final, resumed.stderr, resumed.returncode, address, market_order

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(crash_and_resume, kill_points, wallets))
    for seq, final, stderr, code, address, _ in results:
        assert (seq, final, code) == (seq, "confirmed", 0), stderr
        assert transfers_from(external, address) == 1, f"kill after event {seq}: not exactly one payment"
    # The market saw each order once too: a resume after a kill between journaling the create and
    # its answer reads the pairing's orders before creating (the market honours no key), so the
    # market's own list holds exactly one order per journaled order ...
    journaled = {json.loads(ref.stdout)["market_order_id"], *(r[5] for r in results)}
    assert len(journaled) == 1 + len(kill_points)
    assert market_order_ids(external) - before == journaled
    # ... and it ran each order's service exactly once, whatever step the kill came after.
    runs = executions(external)
    assert {order: runs.get(order, 0) for order in journaled} == dict.fromkeys(journaled, 1)
