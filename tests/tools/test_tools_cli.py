"""The ``approve`` and ``mcp`` commands: registered, documented, and clear without a journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from buyer_agent.cli import COMMANDS, main


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("approve", ["ORDER_ID", "--json"]),
        ("mcp", ["--task", "--market", "search_market", "buyer-agent[mcp]"]),
    ],
)
def test_the_commands_explain_their_flags(
    command: str, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert command in COMMANDS
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--state-dir" in out and "BUYER_AGENT_STATE_DIR" in out
    for flag in flags:
        assert flag in out


def test_approve_without_a_journal_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approve", "ord_" + "0" * 32, "--state-dir", str(tmp_path / "none")]) == 1
    assert "no journal" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
