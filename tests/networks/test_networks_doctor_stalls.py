"""``doctor`` against nodes and markets that never answer, or answer forever: said at once, bounded.

Found by the audit of issue 19: the doctor printed nothing until every check was done (a silent RPC
or market meant 10-12 s of nothing per check), and read an RPC's answer without a bound (a node
streaming forever ended in ``MemoryError`` under a 3 GB ulimit). Now each check is printed when it is
made, a request without an answer says so on stderr after 2 s, and an answer is read no further than
8 MiB. Servers here listen on 127.0.0.1 and stop with the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loopback_stalls import endless, silent

ROOT = Path(__file__).resolve().parents[2]
KEY = "0x" + "11" * 32


def doctor(tmp_path: Path, market: str, rpc: str) -> subprocess.CompletedProcess[str]:
    task = tmp_path / "task.yaml"
    task.write_text(
        f"market: {market}\n"
        "machine_id: machine_1\n"
        "keys: {api_key: '${K}', evm: '${E}'}\n"
        f"rpc: {{evm: '{rpc}'}}\n"
        "task: {service_type: compute.marketplace}\n"
        'budget: "2.50 USDC"\n',
        encoding="utf-8",
    )
    env = {"PATH": "/usr/bin:/bin", "K": "key", "E": KEY, "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "buyer_agent", "doctor", str(task)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order things were said
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_a_silent_node_and_market_are_said_while_waiting(tmp_path: Path) -> None:
    with silent() as node, silent() as market:
        proc = doctor(tmp_path, market, node)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stdout.splitlines()
    first_wait = next(i for i, line in enumerate(lines) if line.startswith("wait: "))
    # The checks made before the silent node were printed before waiting for it.
    assert any(line.startswith("PASS  task") for line in lines[:first_wait]), lines
    assert "no answer after 2 s" in lines[first_wait] and node.removeprefix("http://") in lines[first_wait]
    assert any(line.startswith("FAIL  rpc evm") and "ReadTimeout" in line for line in lines)
    assert any(line.startswith("FAIL  market") for line in lines)
    assert any(market.removeprefix("http://") in line for line in lines if line.startswith("wait: "))
    assert "Traceback" not in proc.stdout


def test_an_endless_node_answer_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    with endless() as node, silent() as market:
        proc = doctor(tmp_path, market, node)
    assert proc.returncode == 1, proc.stdout
    rpc = next(line for line in proc.stdout.splitlines() if line.startswith("FAIL  rpc evm"))
    assert "larger than the limit of 8 MiB" in rpc, rpc
    assert "MemoryError" not in proc.stdout and "Traceback" not in proc.stdout


def test_json_output_is_still_one_document(tmp_path: Path) -> None:
    import json

    with endless() as node, silent() as market:
        doctor(tmp_path, market, node)  # writes the task file
        done = subprocess.run(
            [sys.executable, "-m", "buyer_agent", "doctor", str(tmp_path / "task.yaml"), "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "K": "key", "E": KEY, "HOME": str(tmp_path)},
            timeout=120,
        )
    doc = json.loads(done.stdout)
    assert doc["ok"] is False and doc["checks"][0]["check"] == "task"
