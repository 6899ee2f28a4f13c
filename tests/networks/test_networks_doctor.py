"""``doctor`` against a served sandbox, with each fault made real.

The sandbox runs in this process and is reached over HTTP and JSON-RPC like a live market and its
nodes; its chains are described to the agent by a networks file (``$BUYER_AGENT_NETWORKS``), as a
user would describe a private chain. Each fault is real: an RPC port nobody listens on, a task on
another chain, a fresh wallet with nothing in it, a pairing the operator revoked, a pairing whose
policy is below the budget, a market that is down.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from eth_account import Account

from buyer_agent.cli import main
from buyer_agent.doctor import Check, Status, diagnose, exit_code
from buyer_agent.networks import dump_profiles, sandbox_profiles

pytestmark = pytest.mark.chains

TASK = """\
task: {service_type: compute.marketplace, operation: sha256, input: {data: doctor}}
budget: "2.50 USDC"
payment: {rail: wallet, chain: evm}
"""
ORDER = ("task", "key evm", "key solana", "rpc evm", "rpc solana", "gas evm", "gas solana", "token evm")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox(state_dir=tmp_path_factory.mktemp("doctor"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def env_for(box: Any, tmp_path: Path, **changes: str | None) -> dict[str, str]:
    info = box.info
    nets = tmp_path / "networks.yaml"
    nets.write_text(yaml.safe_dump(dump_profiles(sandbox_profiles(info))), encoding="utf-8")
    env = {
        "PEAQOS_ORCHESTRATION_URL": info.url,
        "PEAQOS_API_KEY": info.api_key.reveal(),
        "PEAQOS_MACHINE_ID": info.machine_id,
        "BUYER_AGENT_EVM_KEY": info.evm_private_key.reveal(),
        "BUYER_AGENT_EVM_RPC": info.evm_rpc_url,
        "BUYER_AGENT_SOLANA_KEY": info.solana_secret_key.reveal(),
        "BUYER_AGENT_SOLANA_RPC": str(info.solana_rpc_url),
        "BUYER_AGENT_NETWORKS": str(nets),
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def task_file(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "task.yaml"
    path.write_text(TASK + extra, encoding="utf-8")
    return str(path)


def by_name(checks: list[Check]) -> dict[str, list[Check]]:
    out: dict[str, list[Check]] = {}
    for c in checks:
        out.setdefault(c.name, []).append(c)
    return out


def status(checks: list[Check], name: str) -> Status:
    found = by_name(checks)[name]
    return Status.FAIL if any(c.status is Status.FAIL for c in found) else found[0].status


def platform(box: Any) -> httpx.Client:
    return httpx.Client(base_url=box.info.url + "/api/v1", headers={"x-api-key": box.info.api_key.reveal()})


def pair(box: Any, account: Any, policy: dict[str, Any] | None = None) -> tuple[str, str]:
    """A real pairing of ``account`` made the operator's way: challenge, signature, pairing."""
    from eth_account.messages import encode_defunct

    machine = box.info.machine_id
    with platform(box) as http:
        ch = http.post(
            f"/machines/{machine}/agent-pairings/challenges",
            json={"agentAddress": account.address, "agentProvider": "pytest", "agentRole": "buyer"},
        ).json()["item"]
        signature = account.sign_message(encode_defunct(text=ch["message"])).signature.hex()
        body: dict[str, Any] = {
            "agentAddress": account.address,
            "agentProvider": "pytest",
            "agentRole": "buyer",
            "agentProof": {
                "challengeId": ch["challengeId"],
                "signature": "0x" + signature.removeprefix("0x"),
            },
        }
        if policy is not None:
            body["delegationPolicy"] = policy
        resp = http.post(f"/machines/{machine}/agent-pairings", json=body)
        assert resp.status_code == 200, resp.text
        item = resp.json()["item"]
    return str(item["id"]), str(item["pairingToken"])


def test_a_healthy_setup_passes_in_order(box: Any, tmp_path: Path) -> None:
    checks = diagnose(task_file(tmp_path), env=env_for(box, tmp_path))
    assert exit_code(checks) == 0, [c.to_json() for c in checks if c.status is Status.FAIL]
    names = [c.name for c in checks]
    assert [n for n in names if n in ORDER] == [n for n in ORDER if n in names]
    assert names.index("token evm") < names.index("market") < names.index("auth") < names.index("clock")
    assert status(checks, "rpc evm") is Status.PASS and status(checks, "token evm") is Status.PASS
    assert status(checks, "market") is Status.PASS and status(checks, "clock") is Status.PASS
    text = json.dumps([c.to_json() for c in checks])
    assert box.info.evm_address in text  # addresses shown ...
    for secret in (box.info.evm_private_key, box.info.api_key, box.info.solana_secret_key):
        assert secret.reveal() not in text  # ... never a key
    for c in checks:
        assert c.status is Status.PASS or c.fix, c


def test_an_rpc_that_is_down_fails(box: Any, tmp_path: Path) -> None:
    checks = diagnose(task_file(tmp_path), env=env_for(box, tmp_path, BUYER_AGENT_EVM_RPC=closed_port()))
    assert status(checks, "rpc evm") is Status.FAIL and exit_code(checks) == 1
    assert "cannot reach" in by_name(checks)["rpc evm"][0].detail


def test_an_rpc_on_another_chain_than_the_tasks_fails(box: Any, tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(TASK.replace("chain: evm", "chain: base"), encoding="utf-8")
    checks = diagnose(str(path), env=env_for(box, tmp_path))
    rpc = by_name(checks)["rpc evm"][0]
    assert (
        rpc.status is Status.FAIL and "eip155:8453 (base)" in rpc.detail and box.info.evm_chain in rpc.detail
    )
    assert exit_code(checks) == 1


def test_an_empty_wallet_fails_gas_and_token(box: Any, tmp_path: Path) -> None:
    fresh = Account.create()
    env = env_for(box, tmp_path, BUYER_AGENT_EVM_KEY=fresh.key.hex())
    checks = diagnose(task_file(tmp_path), env=env)
    assert status(checks, "gas evm") is Status.FAIL and status(checks, "token evm") is Status.FAIL
    assert fresh.address in by_name(checks)["gas evm"][0].fix  # type: ignore[operator]
    assert "below the budget 2.50 USDC" in by_name(checks)["token evm"][0].detail


def test_a_revoked_pairing_fails(box: Any, tmp_path: Path) -> None:
    account = Account.create()
    pairing_id, token = pair(box, account)
    with platform(box) as http:
        resp = http.delete(f"/machines/{box.info.machine_id}/agent-pairings/{pairing_id}")
        assert resp.status_code in (200, 204), resp.text
    env = env_for(box, tmp_path, PEAQOS_AGENT_PAIRING_ID=pairing_id, PEAQOS_AGENT_PAIRING_TOKEN=token)
    checks = diagnose(task_file(tmp_path), env=env)
    check = by_name(checks)["pairing"][0]
    assert check.status is Status.FAIL and "revoked" in check.detail and exit_code(checks) == 1


def test_a_policy_below_the_budget_fails(box: Any, tmp_path: Path) -> None:
    # In the task (what the run would ask for) ...
    checks = diagnose(
        task_file(tmp_path, "policy: {per_transaction_limit: '1.00 USDC', daily_spend_limit: '100 USDC'}\n"),
        env=env_for(box, tmp_path),
    )
    assert status(checks, "policy") is Status.FAIL and exit_code(checks) == 1
    assert any("per-transaction limit 1.00 is below" in c.detail for c in by_name(checks)["policy"])
    # ... and on the market's active pairing.
    policy = {
        "perTransactionLimit": 5,
        "dailySpendLimit": 2,
        "currency": "USDC",
        "allowedSkillKeys": [],
        "deniedSkillKeys": [],
        "allowedServiceIds": [],
        "deniedServiceIds": [],
    }
    pairing_id, token = pair(box, Account.create(), policy)
    env = env_for(box, tmp_path, PEAQOS_AGENT_PAIRING_ID=pairing_id, PEAQOS_AGENT_PAIRING_TOKEN=token)
    checks = diagnose(task_file(tmp_path), env=env)
    assert status(checks, "pairing") is Status.PASS
    policy_checks = by_name(checks)["policy"]
    assert any(c.status is Status.FAIL and "daily limit 2.00 is below" in c.detail for c in policy_checks)


def test_a_market_that_is_down_fails(box: Any, tmp_path: Path) -> None:
    checks = diagnose(task_file(tmp_path), env=env_for(box, tmp_path, PEAQOS_ORCHESTRATION_URL=closed_port()))
    assert status(checks, "market") is Status.FAIL and exit_code(checks) == 1
    assert "pairing" not in by_name(checks) and "clock" not in by_name(checks)


def test_the_command_line(box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    for name, value in env_for(box, tmp_path).items():
        monkeypatch.setenv(name, value)
    path = task_file(tmp_path)
    assert main(["doctor", path]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("PASS  task") and "0 failed" in out
    assert main(["doctor", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["checks"][0]["check"] == "task"
    monkeypatch.setenv("PEAQOS_ORCHESTRATION_URL", closed_port())
    assert main(["doctor", path]) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: {}\nbudget: '1 USDC'\n", encoding="utf-8")
    assert main(["doctor", str(bad)]) == 1
    assert "FAIL  task" in capsys.readouterr().out
