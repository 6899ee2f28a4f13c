"""Real sandbox orders: run → export → import elsewhere → replay; evidence; no secret in exports."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cli_fork
import pytest

pytestmark = pytest.mark.chains

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS``, forked off a process that imported it once (``tests/cli_fork.py``)."""
    return cli_fork.run(*args, env=env, timeout=240)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A sandbox market with its local chains, in this process; its JSON info (keys included)."""
    box = importlib.import_module("buyer_agent.sandbox").Sandbox(state_dir=tmp_path_factory.mktemp("sandbox"))
    info = box.start()
    try:
        yield dict(info.to_json())
    finally:
        box.stop()


def _market_env(info: dict[str, Any]) -> dict[str, str]:
    extra = {
        "PEAQOS_API_KEY": info["api_key"],
        "PEAQOS_MACHINE_ID": info["machine_id"],
        "BUYER_AGENT_EVM_KEY": info["wallets"]["evm"]["private_key"],
        "BUYER_AGENT_EVM_RPC": info["evm"]["rpc_url"],
        "BUYER_AGENT_SOLANA_KEY": info["wallets"]["solana"]["secret_key"],
        "BUYER_AGENT_SOLANA_RPC": info["solana"]["rpc_url"],
    }
    # A sandbox started without Solana has no Solana key or RPC.
    return _env(**{k: v for k, v in extra.items() if v})


def _run(info: dict[str, Any], example: str, state: Path) -> dict[str, Any]:
    proc = _cli("run", f"examples/{example}", "--market", info["url"], "--json", "--state-dir", str(state),
                env=_market_env(info))  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_real_order_round_trip(sandbox: dict[str, Any], tmp_path: Path) -> None:
    out = _run(sandbox, "task.yaml", tmp_path / "a")
    assert out["state"] == "confirmed"
    oid = out["order_id"]
    env = _env()
    path = tmp_path / f"{oid}.jsonl"
    assert _cli("export", oid, "-o", str(path), "--state-dir", str(tmp_path / "a"), env=env).returncode == 0
    text = path.read_text()
    # Secrets are never in an export: the sandbox's keys, its API key, or any pairing token (a JWT).
    for secret in (
        sandbox["wallets"]["evm"]["private_key"].removeprefix("0x").lower(),
        sandbox["wallets"]["solana"]["secret_key"],
        sandbox["api_key"],
    ):
        assert not secret or (secret not in text and secret not in text.lower())
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", text)
    assert _cli("import", str(path), "--state-dir", str(tmp_path / "b"), env=env).returncode == 0
    # The imported order reads like the original: its context is rebuilt from the events, so show and
    # orders give the same quote, candidates, payment, outcome and decision.
    shown: dict[str, Any] = {}
    for where in ("a", "b"):
        proc = _cli("show", oid, "--json", "--state-dir", str(tmp_path / where), env=env)
        assert proc.returncode == 0, proc.stderr
        shown[where] = json.loads(proc.stdout)
        assert shown[where]["order"].pop("journal").startswith(str(tmp_path / where))
    assert shown["b"] == shown["a"]
    order = shown["b"]["order"]
    for key in ("order_id", "state", "quote", "candidates", "payment", "outcome"):
        assert order[key] == out[key], key
    assert shown["b"]["decision"] == "cheapest eligible quote: 0.80 USDC (svc_hash_budget)"
    listed: dict[str, Any] = {}
    for where in ("a", "b"):
        proc = _cli("orders", "--json", "--state-dir", str(tmp_path / where), env=env)
        (listed[where],) = json.loads(proc.stdout)
        listed[where].pop("journal")
    assert listed["b"] == listed["a"] and listed["b"]["quote"] == out["quote"]
    here = _cli("replay", oid, "--json", "--state-dir", str(tmp_path / "a"), env=env)
    there = _cli("replay", oid, "--json", "--state-dir", str(tmp_path / "b"), env=env)
    from_file = _cli("replay", str(path), "--json", env=env)
    assert here.returncode == there.returncode == from_file.returncode == 0, there.stderr
    a, b, f = json.loads(here.stdout), json.loads(there.stdout), json.loads(from_file.stdout)
    assert a["state"] == b["state"] == f["state"] == "confirmed"
    assert a["verified"] and b["verified"] and f["verified"]
    assert a["events"] == b["events"] == f["events"]
    assert a["timeline"] == b["timeline"] == f["timeline"]
    assert a["timeline"]["quote"]["service_id"] == out["quote"]["service_id"]
    assert a["timeline"]["quote"]["why"] == "cheapest eligible quote: 0.80 USDC (svc_hash_budget)"
    assert out["payment"]["tx"] in {t["tx_id"] for t in a["timeline"]["transactions"]}
    # What-if over the real journal: best_score would have paid for svc_hash_fast.
    w = _cli("replay", str(path), "--strategy", "best_score", "--json", env=env)
    assert w.returncode == 0, w.stderr
    what = json.loads(w.stdout)["what_if"]
    assert "error" not in what, what
    assert what["recorded"]["service_id"] == "svc_hash_budget"
    assert what["alternative"]["service_id"] == "svc_hash_fast"
    assert what["difference"] == {"amount": "+0.40", "currency": "USDC"}


def test_real_dispute_evidence(sandbox: dict[str, Any], tmp_path: Path) -> None:
    out = _run(sandbox, "dispute.yaml", tmp_path / "s")
    assert out["state"] in ("disputed", "refunded")
    ev = _cli("evidence", out["order_id"], "--state-dir", str(tmp_path / "s"), env=_env())
    assert ev.returncode == 0, ev.stderr
    bundle = json.loads(ev.stdout)
    for key in ("quote", "policy_decision", "payment", "outcome", "acceptance_failure", "journal"):
        assert bundle.get(key), key
    assert bundle["payment"]["tx"] and "dispute" in bundle["journal"]
    # The bundle is the one the workflow attached to the dispute (as the market received it), plus the
    # bindings of the dispute event and the journal's head.
    exported = tmp_path / "d.jsonl"
    assert _cli("export", out["order_id"], "-o", str(exported), "--state-dir", str(tmp_path / "s"),
                env=_env()).returncode == 0  # fmt: skip
    events = [json.loads(line) for line in exported.read_text().splitlines()[1:]]
    (dispute,) = [e for e in events if e["trigger"] == "dispute"]
    assert bundle["journal"].pop("dispute") == {"seq": dispute["seq"], "hash": dispute["hash"]}
    assert bundle.pop("order_id") == out["order_id"]
    assert bundle.pop("head") == {"seq": events[-1]["seq"], "hash": events[-1]["hash"]}
    assert bundle == dispute["payload"]["evidence"]
    # With the payment transaction and its proof (the escrow lock), bound to the journal's events.
    assert bundle["payment"]["tx"] == out["payment"]["tx"]
    assert bundle["payment"]["proof"]["transaction_hash"] == out["payment"]["tx"]
    assert bundle["quote"]["quote_id"] == out["quote"]["quote_id"]
    (paid,) = [e for e in events if e["trigger"] == "paid"]
    assert bundle["journal"]["payment"] == {"seq": paid["seq"], "hash": paid["hash"]}
