"""An order bought with the EVM key outside the agent: ``keys.evm.signer`` names a signer process.

Three processes: the sandbox (this test process, reached over HTTP and JSON-RPC), the signer
(``python -m buyer_agent.testing.signer``, the only one given the key) and the agent
(``python -m buyer_agent run``, whose environment holds no key).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_fork import clean_env

from buyer_agent.journal import Journal
from buyer_agent.testing.signer import SignerProcess

pytestmark = pytest.mark.chains

ROOT = Path(__file__).resolve().parents[2]
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

TASK = """\
market: ${MARKET_URL}
machine_id: ${PEAQOS_MACHINE_ID}
keys:
  api_key: ${PEAQOS_API_KEY}
  evm:
    signer: ${SIGNER_URL}
rpc:
  evm: ${EVM_RPC}
task:
  service_type: compute.marketplace
  operation: sha256
  input: {data: "signed elsewhere"}
budget: "2.50 USDC"
payment: {rail: wallet, chain: evm}
acceptance:
  schema:
    type: object
    required: [sha256]
"""


@pytest.fixture(scope="module")
def info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("signer-market"), solana=False)
    try:
        yield sandbox.start().to_json()
    finally:
        sandbox.stop()


def transfers_from(info: dict[str, Any], address: str) -> list[str]:
    """Transaction hashes of the sandbox token's Transfer logs sent by ``address``."""
    topic_from = "0x" + "0" * 24 + address.lower().removeprefix("0x")
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_getLogs",
        "params": [
            {
                "fromBlock": "0x0",
                "toBlock": "latest",
                "address": info["evm"]["token_address"],
                "topics": [TRANSFER_TOPIC, topic_from],
            }
        ],
    }
    logs = httpx.post(info["evm"]["rpc_url"], json=body).json()["result"]
    return [str(entry["transactionHash"]) for entry in logs]


def signed_counts(url: str) -> dict[str, int]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "testing_signed", "params": []}
    return dict(httpx.post(url, json=body).json()["result"])


def test_an_order_confirms_with_the_key_only_in_the_signer_process(
    info: dict[str, Any], tmp_path: Path
) -> None:
    key = info["wallets"]["evm"]["private_key"]
    buyer = info["wallets"]["evm"]["address"]
    key_hex = key.lower().removeprefix("0x")
    before = transfers_from(info, buyer)
    with SignerProcess("SIGNER_KEY", clean_env(SIGNER_KEY=key)) as signer:
        assert signer.address == buyer
        task = tmp_path / "task.yaml"
        task.write_text(TASK, encoding="utf-8")
        state = tmp_path / "state"
        env = clean_env(
            MARKET_URL=info["url"],
            PEAQOS_MACHINE_ID=info["machine_id"],
            PEAQOS_API_KEY=info["api_key"],
            SIGNER_URL=signer.url,
            EVM_RPC=info["evm"]["rpc_url"],
        )
        # The agent's whole environment: no key in any variable.
        assert not any(key_hex in value.lower() for value in env.values())
        done = subprocess.run(
            [sys.executable, "-m", "buyer_agent", "run", str(task), "--json", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        counts = signed_counts(signer.url)
    summary = json.loads(done.stdout)
    assert summary["state"] == "confirmed"
    # The pairing's challenge and the payment were both signed by the signer process.
    assert counts.get("personal_sign", 0) >= 1
    assert counts.get("eth_signTransaction") == 1
    # Exactly one transfer, and it is the transaction the journal holds.
    paid = transfers_from(info, buyer)
    assert len(paid) == len(before) + 1
    assert paid[-1] == summary["payment"]["tx"]
    journal = Journal.open_dir(state)
    try:
        assert journal.verify(summary["order_id"]) > 0
    finally:
        journal.close()
    # The key appears nowhere the agent wrote: not its journal, not its output, not its log.
    for path in state.rglob("*"):
        if path.is_file():
            assert key_hex.encode() not in path.read_bytes().lower(), path
    assert key_hex not in done.stdout.lower() and key_hex not in done.stderr.lower()


def test_a_signer_that_is_down_is_a_clean_usage_error(info: dict[str, Any], tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(TASK, encoding="utf-8")
    env = clean_env(
        MARKET_URL=info["url"],
        PEAQOS_MACHINE_ID=info["machine_id"],
        PEAQOS_API_KEY=info["api_key"],
        SIGNER_URL="http://127.0.0.1:9",
        EVM_RPC=info["evm"]["rpc_url"],
    )
    done = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "run", str(task), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().startswith("error: the signer at http://127.0.0.1:9 did not answer")
    assert "Traceback" not in done.stderr
