"""The going-live path on a sandbox in another process: its chains as a profile file, doctor, then run.

``python -m buyer_agent sandbox --networks-file F`` writes its chains as profiles; with
``BUYER_AGENT_NETWORKS=F`` the doctor knows the sandbox token (balance checked against the budget)
and a run pins it: the same steps as against a live market and chain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))

from cli_support import clean_env, cli, market_env  # noqa: E402

pytestmark = pytest.mark.chains

TASK = """\
task: {service_type: compute.marketplace, operation: sha256, input: {data: going-live}}
budget: "2.50 USDC"
chain: sandbox-evm
payment: {rail: wallet}
"""


def test_sandbox_profile_file_then_doctor_then_run(tmp_path: Path) -> None:
    nets = tmp_path / "sandbox-networks.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", "sandbox", "--networks-file", str(nets)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        doc = yaml.safe_load(nets.read_text(encoding="utf-8"))
        evm = doc["networks"]["sandbox-evm"]
        assert evm["chain"] == info["evm"]["chain"]
        assert evm["tokens"]["USDC"] == {"address": info["evm"]["token_address"], "decimals": 6}
        assert doc["networks"]["sandbox-solana"]["tokens"]["USDC"]["mint"] == info["solana"]["mint"]

        task = tmp_path / "task.yaml"
        task.write_text(TASK, encoding="utf-8")
        env = {**market_env(info), "PEAQOS_ORCHESTRATION_URL": info["url"], "BUYER_AGENT_NETWORKS": str(nets)}
        doctor = cli("doctor", str(task), "--json", env=env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["rpc evm"]["status"] == "PASS" and "sandbox-evm" in checks["rpc evm"]["detail"]
        assert (
            checks["token evm"]["status"] == "PASS"
            and "covers the budget 2.50 USDC" in checks["token evm"]["detail"]
        )

        run = cli("run", str(task), "--json", "--state-dir", str(tmp_path / "state"), env=env)
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert summary["state"] == "confirmed" and summary["payment"]["chain"] == info["evm"]["chain"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
