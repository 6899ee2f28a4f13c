"""The command line beyond `run`: the console script, `resume ORDER_ID`, and the exit codes of
`disputed` (3) and `handed_off` (0)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, clean_env, cli, market_env, transfers_from

from buyer_agent import BuyerAgent, Money
from buyer_agent.journal import Journal
from buyer_agent.workflow import OrderSpec

DISPUTE_TASK = """\
task: {service_type: compute.marketplace, task_type: hash, operation: sha256-unverified, input: {data: x}}
budget: "2.50 USDC"
payment: {rail: onchain-escrow, chain: evm}
acceptance: {outcome: completed, schema: {type: object, required: [sha256],
  properties: {sha256: {type: string, pattern: "^[0-9a-f]{64}$"}}}}
deadlines: {execution: 60, refund: 1}
"""

HANDOFF_TASK = """\
task: {service_type: compute.marketplace, task_type: hash, operation: sha256, input: {data: x},
  allow_handoff: true}
budget: "2.50 USDC"
payment: {rail: wallet, chain: evm}
policy: {per_transaction_limit: "2.00 USDC", daily_spend_limit: "10.00 USDC",
  allowed_service_ids: [svc_hash_handoff]}
"""


def test_the_console_script_runs() -> None:
    script = Path(sys.executable).parent / "buyer-agent"
    assert script.is_file(), f"no console script next to {sys.executable}"
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, cwd=ROOT, env=clean_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    for command in ("run", "resume", "orders", "show", "sandbox"):
        assert command in done.stdout
    listed = subprocess.run(
        [str(script), "orders", "--json", "--state-dir", str(ROOT / "tests" / "no-such-state-dir-xyz")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def _spec() -> OrderSpec:
    return OrderSpec(
        service_type="compute.marketplace",
        operation="sha256",
        input={"data": "resume one"},
        budget=Money.parse("2.50 USDC"),
        rail="wallet",
        chain="evm",
    )


@pytest.mark.chains
def test_resume_with_an_order_id_drives_only_that_order(external: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state"
    buyer = external["wallets"]["evm"]["address"]

    async def submit_two() -> list[str]:
        async with BuyerAgent(
            external["url"],
            machine_id=external["machine_id"],
            api_key=external["api_key"],
            evm_key=external["wallets"]["evm"]["private_key"],
            evm_rpc=external["evm"]["rpc_url"],
            state_dir=state,
        ) as agent:
            return [await agent.submit(_spec()), await agent.submit(_spec())]

    first, second = asyncio.run(submit_two())
    before = transfers_from(external, buyer)
    done = cli(
        "resume",
        first,
        "--market",
        external["url"],
        "--json",
        "--state-dir",
        str(state),
        env=market_env(external),
    )
    assert done.returncode == 0, done.stderr
    assert [(s["order_id"], s["state"]) for s in json.loads(done.stdout)] == [(first, "confirmed")]
    assert second not in done.stderr
    journal = Journal.open_dir(state)
    try:
        assert journal.order(second).state == "created"
        assert [e.trigger for e in journal.events(second)] == ["submit"]  # not touched at all
    finally:
        journal.close()
    assert transfers_from(external, buyer) == before + 1
    # Without an id, the other open order is driven; the finished one is left alone.
    rest = cli(
        "resume", "--market", external["url"], "--json", "--state-dir", str(state), env=market_env(external)
    )
    assert rest.returncode == 0, rest.stderr
    assert [(s["order_id"], s["state"]) for s in json.loads(rest.stdout)] == [(second, "confirmed")]
    assert transfers_from(external, buyer) == before + 2


@pytest.fixture(scope="module")
def slow_refunds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served sandbox that takes an hour to resolve a dispute."""
    from buyer_agent.sandbox import Sandbox
    from buyer_agent.sandbox.market import MarketSettings

    box = Sandbox(
        state_dir=tmp_path_factory.mktemp("slow-refunds"), settings=MarketSettings(dispute_delay_s=3600)
    )
    info = box.start()
    try:
        yield info.to_json()
    finally:
        box.stop()


@pytest.mark.chains
def test_an_order_left_disputed_exits_3(slow_refunds: dict[str, Any], tmp_path: Path) -> None:
    task = tmp_path / "dispute.yaml"
    task.write_text(DISPUTE_TASK, encoding="utf-8")
    state = tmp_path / "state"
    done = cli(
        "run", str(task), "--json", "--market", slow_refunds["url"], "--state-dir", str(state),
        env=market_env(slow_refunds),
    )  # fmt: skip
    out = json.loads(done.stdout)
    assert out["state"] == "disputed", done.stderr  # the refund did not come within its deadline
    assert out["error"]["code"] == "REFUND_TIMEOUT"
    assert done.returncode == 3, done.stderr
    # resume: still no refund, still disputed, still 3
    again = cli(
        "resume", "--market", slow_refunds["url"], "--state-dir", str(state), env=market_env(slow_refunds)
    )
    assert again.returncode == 3, again.stderr


@pytest.mark.chains
def test_a_handed_off_order_exits_0(tmp_path: Path) -> None:
    task = tmp_path / "handoff.yaml"
    task.write_text(HANDOFF_TASK, encoding="utf-8")
    done = cli("run", str(task), "--json", "--state-dir", str(tmp_path / "state"))
    out = json.loads(done.stdout or "{}")
    assert out.get("state") == "handed_off", done.stderr
    assert out["quote"]["service_id"] == "svc_hash_handoff"
    assert done.returncode == 0, done.stderr
