"""SIGKILL the CLI around the SPL payment of examples/solana.yaml, then `resume`: exactly one transfer.

Runs against an external sandbox (``python -m buyer_agent sandbox``) whose LiteSVM RPC is read over
JSON-RPC: the buyer's token account's signatures and balance count the SPL transfers it made.
"""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import cli, market_env

pytestmark = pytest.mark.chains

# Right after the transfer is signed and journaled (before broadcast), after the broadcast intent,
# after its result (landed, proof not yet sent), and after the proof was accepted.
KILL_AFTER = ["pay", "intent:broadcast_payment", "result:broadcast_payment", "paid"]


def _rpc(info: dict[str, Any], method: str, *params: Any) -> Any:
    resp = httpx.post(
        info["solana"]["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    )
    resp.raise_for_status()
    body = resp.json()
    assert "error" not in body, body
    return body["result"]


def _buyer_token_account(info: dict[str, Any]) -> str:
    found = _rpc(
        info,
        "getTokenAccountsByOwner",
        info["wallets"]["solana"]["address"],
        {"mint": info["solana"]["mint"]},
        {"encoding": "base64"},
    )["value"]
    assert len(found) == 1, found
    return str(found[0]["pubkey"])


def spl_state(info: dict[str, Any]) -> tuple[int, int]:
    """(successful transactions touching the buyer's token account, its raw USDC balance)."""
    account = _buyer_token_account(info)
    signatures = _rpc(info, "getSignaturesForAddress", account, {"limit": 1000})
    ok = sum(1 for s in signatures if s.get("err") is None)
    balance = int(_rpc(info, "getTokenAccountBalance", account)["value"]["amount"])
    return ok, balance


def run_solana(info: dict[str, Any], state_dir: Path, crash: str | None = None) -> Any:
    env = market_env(info)
    if crash is not None:
        env["BUYER_AGENT_CRASH_AFTER"] = crash
    return cli(
        "run",
        "examples/solana.yaml",
        "--json",
        "--market",
        info["url"],
        "--state-dir",
        str(state_dir),
        env=env,
    )


def test_kill_around_the_spl_payment_then_resume_transfers_exactly_once(
    external: dict[str, Any], tmp_path: Path
) -> None:
    before = spl_state(external)
    ref = run_solana(external, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = json.loads(ref.stdout)
    assert str(out["payment"]["chain"]).startswith("solana:")
    price = int(Decimal(out["payment"]["amount"]) * 10**6)  # USDC base units
    after_ref = spl_state(external)
    assert after_ref == (before[0] + 1, before[1] - price)
    shown = json.loads(cli("show", out["order_id"], "--json", "--state-dir", str(tmp_path / "ref")).stdout)
    triggers = [step.get("trigger") for step in shown["timeline"]]
    for point in ("pay", "paid"):
        assert point in triggers, triggers

    for point in KILL_AFTER:
        start = spl_state(external)
        state_dir = tmp_path / f"kill-{point.replace(':', '_')}"
        crashed = run_solana(external, state_dir, crash=point)
        assert crashed.returncode == -signal.SIGKILL, (point, crashed.returncode, crashed.stderr)
        resumed = cli(
            "resume", "--market", external["url"], "--json", "--state-dir", str(state_dir),
            env=market_env(external),
        )  # fmt: skip
        assert resumed.returncode == 0, (point, resumed.stderr)
        states = [s["state"] for s in json.loads(resumed.stdout or "[]")]
        assert states == ["confirmed"], (point, resumed.stderr)
        assert spl_state(external) == (start[0] + 1, start[1] - price), (
            f"kill after {point}: not one SPL transfer"
        )
