"""Identity and state on a served sandbox: pairings per agent key, resume across URLs, cancel.

``python -m buyer_agent sandbox --state-dir`` in a subprocess, restarted on another port where a
test needs it (its market state and chains persist in its state dir).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, clean_env, cli, fund_wallets, market_env, transfers_from

from buyer_agent.journal import Journal
from buyer_agent.workflow._pairing import _meta_key

pytestmark = pytest.mark.chains


class Served:
    """A served sandbox whose state lives in ``state``; :meth:`start` again restarts it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", "sandbox", "--state-dir", str(self.state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=clean_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the sandbox printed no JSON line"
        self.info = json.loads(line)
        return self.info

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    sandbox = Served(tmp_path / "sandbox")
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def pair(info: dict[str, Any], key: str, state: Path, *flags: str, url: str | None = None) -> dict[str, Any]:
    proc = cli(
        "pair", "--json", "--market", url or info["url"], "--state-dir", str(state), *flags,
        env=market_env(info, evm_key=key),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pairing_token" not in proc.stdout and "eyJ" not in proc.stdout + proc.stderr  # no token
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run(info: dict[str, Any], key: str, state: Path, url: str | None = None, crash: str | None = None) -> Any:
    env = market_env(info, evm_key=key)
    if crash is not None:
        env["BUYER_AGENT_CRASH_AFTER"] = crash
    return cli(
        "run",
        "examples/task.yaml",
        "--json",
        "--market",
        url or info["url"],
        "--state-dir",
        str(state),
        env=env,
    )


def test_two_keys_on_one_state_dir_switching_back_and_forth(served: Served, tmp_path: Path) -> None:
    info = served.info
    state = tmp_path / "agent"
    (addr_a, key_a), (addr_b, key_b) = fund_wallets(info, 2)
    first = pair(info, key_a, state)
    assert first["agent_address"] == addr_a and first["pairing_id"] and not first["reused"]
    # A second key in the same state dir gets its own pairing (it reused the first one's and failed)
    ran_b = run(info, key_b, state)
    assert ran_b.returncode == 0, ran_b.stderr
    assert "AGENT_PAIRING_PROOF_INVALID" not in ran_b.stderr
    second = pair(info, key_b, state)
    assert second["agent_address"] == addr_b and second["reused"]
    assert second["pairing_id"] != first["pairing_id"]
    # ... and switching back finds the first key's pairing again
    ran_a = run(info, key_a, state)
    assert ran_a.returncode == 0, ran_a.stderr
    again = pair(info, key_a, state)
    assert again["pairing_id"] == first["pairing_id"] and again["reused"]
    assert transfers_from(info, addr_a) == 1 and transfers_from(info, addr_b) == 1
    # one market spelt two ways is one stored pairing
    spelt = info["url"].replace("127.0.0.1", "localhost") + "/"
    assert pair(info, key_a, state, url=spelt)["pairing_id"] == first["pairing_id"]
    # --reset pairs anew
    reset = pair(info, key_a, state, "--reset")
    assert reset["reset"] and not reset["reused"] and reset["pairing_id"] != first["pairing_id"]
    # a stored pairing the market refuses for this agent (issued to the other key) is replaced
    journal = Journal.open_dir(state)
    journal.set_meta(_meta_key(info["url"], info["machine_id"], addr_a), second["pairing_id"])
    journal.close()
    replaced = pair(info, key_a, state)
    assert replaced["pairing_id"] not in (second["pairing_id"], None)
    shown = cli(
        "pair", "--market", info["url"], "--state-dir", str(state), env=market_env(info, evm_key=key_a)
    )
    assert shown.returncode == 0 and replaced["pairing_id"] in shown.stdout and addr_a in shown.stdout


def test_resume_uses_the_stored_url_and_moves_orders_to_a_restarted_sandbox(
    served: Served, tmp_path: Path
) -> None:
    info = served.info
    state = tmp_path / "agent"
    (address, key), = fund_wallets(info, 1)  # fmt: skip
    # placed on http://LOCALHOST:port/, stopped in paying; resume with no --market uses the stored URL
    spelt = info["url"].replace("127.0.0.1", "LOCALHOST") + "/"
    crashed = run(info, key, state, url=spelt, crash="pay")
    assert crashed.returncode != 0
    resumed = cli("resume", "--json", "--state-dir", str(state), env=market_env(info, evm_key=key))
    assert resumed.returncode == 0, resumed.stderr
    assert [s["state"] for s in json.loads(resumed.stdout)] == ["confirmed"]
    assert "embedded sandbox" not in resumed.stderr
    # a second order stops in paying; the sandbox comes back on another port
    crashed = run(info, key, state, crash="pay")
    order_id = json.loads(cli("orders", "--json", "--state-dir", str(state)).stdout)[-1]["order_id"]
    served.stop()
    new = served.start()
    assert new["url"] != info["url"]
    env = market_env(new, evm_key=key)
    # the old URL is gone: the order is not "nothing to resume", and the exit code says so
    moved = cli("resume", "--market", new["url"].replace("127.0.0.1", "localhost"), "--json",
                "--state-dir", str(state), env=env)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert f"moving {order_id}" in moved.stderr
    assert [(s["order_id"], s["state"]) for s in json.loads(moved.stdout)] == [(order_id, "confirmed")]
    shown = json.loads(cli("show", order_id, "--json", "--state-dir", str(state)).stdout)
    assert "note:market_moved" in [step.get("trigger") or step.get("event") for step in shown["timeline"]]
    assert transfers_from(new, address) == 2  # the chain came back with the sandbox: one payment each
