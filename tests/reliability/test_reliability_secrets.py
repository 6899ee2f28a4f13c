"""Security: no key or token shows in logs, journal rows, exports or errors; a wrong payee is never paid.

The scan covers what this module produces at full verbosity — every stdout/stderr line of the CLI
(``-v``: debug logs), every log record of an in-process BuyerAgent run (caplog at DEBUG, messages and
exception text), every journal row, exported journal, evidence bundle, ``show``/``orders``/``replay``
output and error message — for the private keys, the API key and the pairing tokens (any JWT-shaped
string). The other reliability modules scan their own outputs the same way (``secret_hits``).
A tampered payment intent is covered in ``test_reliability_input.py`` (payee, token, amount).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import cli_fork
import pytest
from reliability_support import (
    clean_env,
    fund_wallets,
    journal_text,
    market_env,
    payments_by_sender,
    secret_hits,
    write_task,
)

from buyer_agent.agent import BuyerAgent
from buyer_agent.task import load_task

pytestmark = pytest.mark.chains


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS``, forked off a process that imported it once (``tests/cli_fork.py``)."""
    return cli_fork.run("-v", *args, env=env, timeout=180)


def _secrets(info: dict[str, Any], keys: list[str]) -> dict[str, str]:
    return {
        "demo evm key": info["wallets"]["evm"]["private_key"],
        "solana key": info["wallets"]["solana"]["secret_key"],
        "api key": info["api_key"],
        **{f"wallet key {i}": key for i, key in enumerate(keys)},
    }


def test_nothing_secret_in_any_output_of_a_verbose_run(served: dict[str, Any], tmp_path: Path) -> None:
    ((address, key),) = fund_wallets(served, 1)
    env = clean_env(**market_env(served, evm_key=key))
    state = tmp_path / "state"
    task = write_task(tmp_path / "task.yaml")
    texts: dict[str, str] = {}

    run = _cli("run", str(task), "--json", "--market", served["url"], "--state-dir", str(state), env=env)
    texts["run"] = run.stdout + run.stderr
    assert run.returncode == 0, run.stderr
    order_id = json.loads(run.stdout)["order_id"]
    assert payments_by_sender(served).get(address.lower()) == 1

    export, evidence = tmp_path / "order.jsonl", tmp_path / "evidence.json"
    for args in (
        ("show", order_id, "--json"),
        ("show", order_id),
        ("orders", "--json"),
        ("export", order_id, "-o", str(export)),
        ("evidence", order_id, "-o", str(evidence)),
        ("replay", order_id, "--json"),
        ("resume", "--market", served["url"], "--json"),
    ):
        done = _cli(*args, "--state-dir", str(state), env=env)
        assert done.returncode == 0, (args, done.stderr)
        texts[" ".join(args[:1])] = done.stdout + done.stderr
    texts["export"] = export.read_text(encoding="utf-8")
    texts["evidence"] = evidence.read_text(encoding="utf-8")
    texts["journal"] = journal_text(state)
    texts["replay of the export"] = (lambda d: d.stdout + d.stderr)(_cli("replay", str(export), env=env))

    # Errors: a wrong API key, a wrong agent key, an unreachable market — each message scanned too.
    for name, bad_env in (
        ("bad api key", {**env, "PEAQOS_API_KEY": "sbx_wrong-" + served["api_key"][-6:]}),
        ("bad evm key", {**env, "BUYER_AGENT_EVM_KEY": "0x" + "1" * 63}),
    ):
        done = _cli(
            "run", str(task), "--market", served["url"], "--state-dir", str(tmp_path / name), env=bad_env
        )
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, (name, done.stderr)
        texts[name] = done.stdout + done.stderr
        texts[name + " journal"] = journal_text(tmp_path / name)
    dead = _cli(
        "run", str(task), "--market", "http://127.0.0.1:9", "--state-dir", str(tmp_path / "dead"), env=env
    )
    assert dead.returncode == 1 and "Traceback" not in dead.stderr
    texts["dead market"] = dead.stdout + dead.stderr

    assert secret_hits(texts, _secrets(served, [key, "0x" + "1" * 63])) == []


def test_nothing_secret_in_log_records_of_an_in_process_agent(
    served: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ((_address, key),) = fund_wallets(served, 1)
    task = load_task(write_task(tmp_path / "task.yaml"), env={})
    agent = BuyerAgent(
        served["url"],
        machine_id=served["machine_id"],
        api_key=served["api_key"],
        evm_key=key,
        evm_rpc=served["evm"]["rpc_url"],
        solana_key=served["wallets"]["solana"]["secret_key"],
        solana_rpc=served["solana"]["rpc_url"],
        state_dir=tmp_path / "state",
    )

    async def go() -> Any:
        async with agent:
            return await agent.buy(task.spec)

    with caplog.at_level(logging.DEBUG):
        summary = asyncio.run(go())
    assert summary.state.value == "confirmed"
    texts = {
        f"log {i}": record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for i, record in enumerate(caplog.records)
    }
    assert texts, "no log records were captured"
    texts["repr"] = repr(agent) + repr(summary) + json.dumps(summary.to_json())
    texts["journal"] = journal_text(tmp_path / "state")
    assert secret_hits(texts, _secrets(served, [key])) == []
