"""``replay --check-chain`` on the real stack: payments read back from anvil and the LiteSVM RPC."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cli_fork
import pytest
from forge_journal import forge

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
    """A sandbox market with anvil and the LiteSVM RPC, in this process; its JSON info."""
    box = importlib.import_module("buyer_agent.sandbox").Sandbox(state_dir=tmp_path_factory.mktemp("sandbox"))
    info = box.start()
    try:
        yield dict(info.to_json())
    finally:
        box.stop()


def _market_env(info: dict[str, Any]) -> dict[str, str]:
    return _env(
        PEAQOS_API_KEY=info["api_key"],
        PEAQOS_MACHINE_ID=info["machine_id"],
        BUYER_AGENT_EVM_KEY=info["wallets"]["evm"]["private_key"],
        BUYER_AGENT_EVM_RPC=info["evm"]["rpc_url"],
        BUYER_AGENT_SOLANA_KEY=info["wallets"]["solana"]["secret_key"],
        BUYER_AGENT_SOLANA_RPC=info["solana"]["rpc_url"],
    )


def _export(info: dict[str, Any], example: str, tmp_path: Path) -> Path:
    state = tmp_path / example
    proc = _cli("run", f"examples/{example}", "--market", info["url"], "--json", "--state-dir", str(state),
                env=_market_env(info))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    oid = json.loads(proc.stdout)["order_id"]
    path = tmp_path / f"{example}.jsonl"
    proc = _cli("export", oid, "-o", str(path), "--state-dir", str(state), env=_market_env(info))
    assert proc.returncode == 0, proc.stderr
    return path


def _rpcs(info: dict[str, Any]) -> list[str]:
    return ["--evm-rpc", info["evm"]["rpc_url"], "--solana-rpc", info["solana"]["rpc_url"]]


def _inflate(ev: dict[str, Any]) -> None:
    """Ten times the amount, everywhere the journal states it (request, intent, proof)."""
    p = ev["payload"]
    if ev["trigger"] == "pay":
        p["request"]["amount"]["base_units"] *= 10
    for facts in ((p.get("intent") or {}).get("rail"), p.get("proof")):
        if isinstance(facts, dict) and facts.get("raw_amount") is not None:
            facts["raw_amount"] = str(int(facts["raw_amount"]) * 10)


@pytest.mark.parametrize("example", ["task.yaml", "solana.yaml", "escrow.yaml"])
def test_check_chain_honest_and_edited(sandbox: dict[str, Any], tmp_path: Path, example: str) -> None:
    honest = _export(sandbox, example, tmp_path)
    proc = _cli("replay", str(honest), "--check-chain", "--json", *_rpcs(sandbox), env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chain = json.loads(proc.stdout)["chain"]
    assert chain["ok"] and len(chain["checked"]) == 1, chain
    facts = chain["checked"][0]["on_chain"]
    assert {"payer", "payee", "token", "amount"} <= facts.keys()
    text = _cli("replay", str(honest), "--check-chain", *_rpcs(sandbox), env=_env())
    assert "payment transactions match the journal" in text.stdout

    edited = forge(honest, _inflate)
    proc = _cli("replay", str(edited), "--check-chain", "--json", *_rpcs(sandbox), env=_env())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verified"] is True  # the recomputed chain holds; the chain of blocks does not agree
    mismatches = doc["chain"]["mismatches"]
    amount = int(facts["amount"])
    assert any(f"amount on chain is {amount}" in m and f"says {amount * 10}" in m for m in mismatches), (
        mismatches
    )
    text = _cli("replay", str(edited), "--check-chain", *_rpcs(sandbox), env=_env())
    assert text.returncode == 1 and "CHAIN MISMATCH" in text.stdout


def test_check_chain_names_a_payee_the_chain_does_not_know(sandbox: dict[str, Any], tmp_path: Path) -> None:
    honest = _export(sandbox, "task.yaml", tmp_path)
    other = "0x" + "77" * 20

    def redirect(ev: dict[str, Any]) -> None:
        if ev["trigger"] == "pay":
            ev["payload"]["request"]["payee"] = other

    proc = _cli(
        "replay", str(forge(honest, redirect)), "--check-chain", "--json", *_rpcs(sandbox), env=_env()
    )
    assert proc.returncode == 1
    assert any("payee on chain" in m and other in m for m in json.loads(proc.stdout)["chain"]["mismatches"])


def test_check_chain_without_an_rpc_says_which_to_give(sandbox: dict[str, Any], tmp_path: Path) -> None:
    honest = _export(sandbox, "task.yaml", tmp_path)
    proc = _cli("replay", str(honest), "--check-chain", env=_env())
    assert proc.returncode == 1 and "--evm-rpc" in proc.stdout and "Traceback" not in proc.stderr
