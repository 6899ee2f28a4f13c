"""`resume` with one order leased by another live process: the rest are resumed, that one is left to it.

Two real processes besides the sandbox: a holder that takes an order's lease in the journal (as a
driving runner does) and stays alive, paused; and `python -m buyer_agent resume` on the same state
directory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, clean_env, cli, market_env

from buyer_agent.journal import Journal

pytestmark = pytest.mark.chains

# Takes the order's lease exactly as a runner driving it does, says so, then holds it until stdin closes.
HOLDER = """
import sys
from buyer_agent.journal import Journal, lease_owner_id
journal = Journal.open_dir(sys.argv[1])
owner = lease_owner_id("holder")
assert journal.acquire_lease(sys.argv[2], owner, 600.0)
print(owner, flush=True)
sys.stdin.read()
journal.release_lease(sys.argv[2], owner)
journal.close()
"""


def _crash_an_order(info: dict[str, Any], state_dir: Path) -> None:
    """Leave an order in ``ordered``: a run SIGKILLed right after the market order was placed."""
    env = market_env(info)
    env["BUYER_AGENT_CRASH_AFTER"] = "order"
    done = cli("run", "examples/task.yaml", "--market", info["url"], "--state-dir", str(state_dir), env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_resume_leaves_the_leased_order_and_drives_the_rest(external: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = []
    for _ in range(2):
        before = _order_ids(state)
        _crash_an_order(external, state)
        (new,) = _order_ids(state) - before
        ids.append(new)
    leased, free = ids

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state), leased],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=clean_env(),
    )
    try:
        assert holder.stdout is not None
        owner = holder.stdout.readline().strip()
        assert owner, "the holder took no lease"

        done = cli(
            "resume",
            "--json",
            "--market",
            external["url"],
            "--state-dir",
            str(state),
            env=market_env(external),
        )
        assert done.returncode == 0, done.stderr
        resumed = {s["order_id"]: s["state"] for s in json.loads(done.stdout)}
        assert resumed == {free: "confirmed"}
        assert f"skipping {leased}: driven elsewhere, by another live process ({owner})" in done.stderr
        assert _state(state, leased) == "ordered"  # untouched: its driver is alive

        # Asked for by name, the leased order is a clear failure, not a silent skip.
        named = cli(
            "resume", leased, "--market", external["url"], "--state-dir", str(state), env=market_env(external)
        )
        assert named.returncode == 1
        assert "being driven by another process" in named.stderr and "Traceback" not in named.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()

    # The holder gone, the order is resumable again, and finishes.
    again = cli(
        "resume", "--json", "--market", external["url"], "--state-dir", str(state), env=market_env(external)
    )
    assert again.returncode == 0, again.stderr
    assert {s["order_id"]: s["state"] for s in json.loads(again.stdout)} == {leased: "confirmed"}


def _order_ids(state: Path) -> set[str]:
    if not state.exists():
        return set()
    journal = Journal.open_dir(state)
    try:
        return {rec.order_id for rec in journal.orders()}
    finally:
        journal.close()


def _state(state: Path, order_id: str) -> str:
    journal = Journal.open_dir(state)
    try:
        return journal.order(order_id).state
    finally:
        journal.close()
