"""What the command line shows a user (issue 19's smaller things), on the sandbox and the golden journals.

- an order's error code is printed once (``BAD_RESPONSE: …``, not ``BAD_RESPONSE: BAD_RESPONSE: …``);
- ``run --strategy`` takes the JSON form ``replay --strategy`` takes;
- ``run --json`` candidates name the market's and the strategy's scores apart;
- ``show`` lists the quotes best first by the strategy's ranking, the chosen one first;
- a directory replay does not count a refunded order's payment as spend;
- the approval line of ``run`` names the state dir ``approve`` needs.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, clean_env, cli

GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture
def junk_market() -> Iterator[str]:
    """A market that answers every request 200 with a body that is not JSON."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = b"not json"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_error_code_is_printed_once(junk_market: str, tmp_path: Path) -> None:
    env = clean_env(
        PEAQOS_API_KEY="k",
        PEAQOS_MACHINE_ID="m",
        BUYER_AGENT_EVM_KEY="0x" + "11" * 32,
        BUYER_AGENT_EVM_RPC="http://127.0.0.1:1",
    )
    proc = cli(
        "run",
        str(ROOT / "examples/task.yaml"),
        "--market",
        junk_market,
        "--state-dir",
        str(tmp_path),
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert "BAD_RESPONSE: " in proc.stdout and "BAD_RESPONSE: " in proc.stderr
    assert "BAD_RESPONSE: BAD_RESPONSE" not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One order on the embedded sandbox, its strategy given in run's JSON form."""
    state = tmp_path_factory.mktemp("weighted")
    strategy = '{"name": "weighted", "params": {"price": 1}}'
    proc = cli(
        "run", str(ROOT / "examples/task.yaml"), "--state-dir", str(state), "--json", "--strategy", strategy
    )
    assert proc.returncode == 0, proc.stderr
    return {"state": state, "summary": json.loads(proc.stdout)}


@pytest.mark.chains
def test_run_takes_the_json_strategy_and_names_both_scores(weighted_run: dict[str, Any]) -> None:
    summary = weighted_run["summary"]
    assert summary["state"] == "confirmed"
    candidates = summary["candidates"]
    eligible = [c for c in candidates if c["eligible"]]
    assert eligible and len(eligible) < len(candidates)
    for c in candidates:
        assert c["market_score"] is not None  # the market's own score, for every quote
        if c["eligible"]:
            assert c["strategy_score"] == c["score"]
        else:
            assert c["strategy_score"] is None and c["market_score"] == c["score"]
    chosen = next(c for c in candidates if c["quote_id"] == summary["quote"]["quote_id"])
    assert chosen["strategy_score"] == "1"  # the weighted strategy's best, whatever the market scored it
    assert chosen["market_score"] != chosen["strategy_score"]


@pytest.mark.chains
def test_show_lists_the_chosen_quote_first(weighted_run: dict[str, Any]) -> None:
    summary = weighted_run["summary"]
    proc = cli("show", summary["order_id"], "--state-dir", str(weighted_run["state"]))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("quotes seen (strategy ranking"))
    quotes = [line for line in lines[start + 1 :] if line.startswith("  ")]
    assert quotes[0].startswith("  * " + summary["quote"]["service_id"]), quotes[0]
    verdicts = ["not eligible" not in line for line in quotes]
    assert verdicts == sorted(verdicts, reverse=True), "eligible quotes come before the ineligible ones"
    assert "market score" in quotes[0] and "strategy score 1" in quotes[0]


def test_a_directory_replay_does_not_count_a_refund_as_spend(tmp_path: Path) -> None:
    for name in ("order_confirmed_v1.jsonl", "order_refunded_v1.jsonl"):
        shutil.copy(GOLDEN / name, tmp_path / name)
    proc = cli("replay", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["outcomes"] == {"confirmed": 1, "refunded": 1}
    assert summary["spend"] == {"USDC": "0.80"} and summary["refunded"] == {"USDC": "0.80"}
    text = cli("replay", str(tmp_path)).stdout
    assert "spend {'USDC': '0.80'}; refunded {'USDC': '0.80'}" in text


@pytest.mark.chains
def test_the_approval_line_names_the_state_dir(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(
        (ROOT / "examples/task.yaml").read_text(encoding="utf-8") + 'approval_threshold: "0.50 USDC"\n',
        encoding="utf-8",
    )
    state = tmp_path / "state"
    proc = cli("run", str(task), "--state-dir", str(state))
    assert proc.returncode == 1, proc.stderr
    assert "awaiting_approval" in proc.stderr
    assert "python -m buyer_agent approve ord_" in proc.stderr and f"--state-dir {state}`" in proc.stderr
