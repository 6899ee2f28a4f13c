"""The command line without a market: help texts, bad task files, the diagram, reading the journal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from buyer_agent import Money
from buyer_agent.cli import COMMANDS, main
from buyer_agent.journal import Journal
from buyer_agent.workflow import OrderSpec, mermaid_diagram

ROOT = Path(__file__).resolve().parents[2]
ORDER_COMMANDS = ("run", "resume", "orders", "show", "diagram")


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    return subprocess.run(
        [sys.executable, "-m", "buyer_agent", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**base, **(env or {})},
        timeout=60,
    )


def test_commands_are_registered() -> None:
    assert set(ORDER_COMMANDS) <= set(COMMANDS)


@pytest.mark.parametrize("command", ORDER_COMMANDS)
def test_every_command_explains_its_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--state-dir" in out and "BUYER_AGENT_STATE_DIR" in out
    flags = {"run": ["--market", "--strategy", "--json", "TASK.yaml"], "orders": ["--state", "--json"]}
    for flag in flags.get(command, []):
        assert flag in out
    if command in ("run", "resume"):
        assert "exit codes" in out and "handed off" in out


def test_bad_task_file_exits_2_naming_field_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'task:\n  service_type: compute.marketplace\nbudget: "2.50 USDC"\npayment: {rail: paypal}\n'
    )
    proc = cli("run", str(bad), "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "payment.rail" in proc.stderr and "line 4" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()  # nothing ran


def test_missing_task_file_and_usage_errors(tmp_path: Path) -> None:
    proc = cli("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr
    assert cli("run").returncode == 2
    assert cli().returncode == 2
    assert cli("orders", "--state", "bogus").returncode == 2


def test_diagram_is_generated_and_the_readme_holds_it() -> None:
    proc = cli("diagram")
    assert proc.returncode == 0
    assert proc.stdout == mermaid_diagram()
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", readme, flags=re.S)
    assert blocks == [mermaid_diagram()]


def test_orders_and_show_read_the_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["orders", "--state-dir", str(state), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not state.exists()  # looking creates no journal

    journal = Journal.open_dir(state)
    spec = OrderSpec(service_type="compute.marketplace", operation="sha256", budget=Money.parse("1 USDC"))
    journal.create_order("ord_a", spec.to_json(), context={}, payload={"spec": spec.to_json()})
    journal.close()

    assert main(["orders", "--state-dir", str(state), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["order_id"], r["state"]) for r in rows] == [("ord_a", "created")]
    assert rows[0]["updated_at"]
    assert main(["orders", "--state-dir", str(state), "--state", "confirmed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["orders", "--state-dir", str(state)]) == 0
    assert "ord_a" in capsys.readouterr().out

    assert main(["show", "ord_a", "--state-dir", str(state), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["order"]["order_id"] == "ord_a"
    assert [s["dst"] for s in shown["timeline"]] == ["created"]
    assert main(["show", "ord_a", "--state-dir", str(state)]) == 0
    assert "ord_a" in capsys.readouterr().out

    assert main(["show", "ord_missing", "--state-dir", str(state)]) == 1
    assert "no order ord_missing" in capsys.readouterr().err


def test_state_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "envstate"
    journal = Journal.open_dir(state)
    spec = OrderSpec(service_type="s", budget=Money.parse("1 USDC"))
    journal.create_order("ord_env", spec.to_json(), context={}, payload={})
    journal.close()
    proc = cli("orders", "--json", env={"BUYER_AGENT_STATE_DIR": str(state)})
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["order_id"] == "ord_env"


def test_resume_refuses_the_embedded_sandbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = cli("resume", "--state-dir", str(state))
    assert proc.returncode == 0 and "nothing to resume" in proc.stderr
    journal = Journal.open_dir(state)
    spec = OrderSpec(service_type="s", budget=Money.parse("1 USDC"))
    journal.create_order("ord_open", spec.to_json(), context={}, payload={})
    journal.set_meta("order_market:ord_open", "embedded-sandbox")
    journal.close()
    proc = cli("resume", "--state-dir", str(state))
    assert proc.returncode == 2
    assert "embedded sandbox" in proc.stderr and "--market" in proc.stderr
    assert "Traceback" not in proc.stderr
