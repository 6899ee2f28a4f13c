"""The command line's shared contracts, from one module: exit codes, the state directory, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from buyer_agent.cli import main
from buyer_agent.commands import _common
from buyer_agent.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUNDED,
    EXIT_USAGE,
    exit_code,
    require_journal,
    worst,
)
from buyer_agent.journal import Journal
from buyer_agent.workflow import OrderState, OrderSummary


def _summary(state: OrderState) -> OrderSummary:
    return OrderSummary(
        order_id="ord_x",
        state=state,
        market_order_id=None,
        quote=None,
        candidates=(),
        payment=None,
        outcome=None,
        error=None,
        journal=":memory:",
        updated_at="2026-01-01T00:00:00.000000Z",
    )


def test_exit_codes_are_the_documented_ones() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUNDED) == (0, 1, 2, 3)
    codes = {state: exit_code(_summary(state)) for state in OrderState}
    assert codes[OrderState.CONFIRMED] == 0
    assert codes[OrderState.HANDED_OFF] == 0
    assert codes[OrderState.DISPUTED] == 3
    assert codes[OrderState.REFUNDED] == 3
    assert codes[OrderState.FAILED] == 1
    assert codes[OrderState.CANCELLED] == 1
    assert worst([0, 3, 0]) == 3 and worst([3, 1]) == 1 and worst([]) == 0


def test_the_cli_has_no_exit_codes_of_its_own() -> None:
    import buyer_agent.cli as cli

    assert not [name for name in vars(cli) if name.startswith("EXIT_") and name != "EXIT_USAGE"]
    assert cli.EXIT_USAGE is _common.EXIT_USAGE


@pytest.mark.parametrize(
    "argv",
    [
        ["approve", "ord_x"],
        ["export", "ord_x"],
        ["evidence", "ord_x"],
        ["show", "ord_x"],
    ],
)
def test_every_command_names_the_missing_journal_the_same_way(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    code = main([*argv, "--state-dir", str(empty)])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert err.startswith(f"error: no journal in {empty}"), err
    assert "Traceback" not in err
    assert not empty.exists(), "looking for a journal must not create one"


def test_require_journal_finds_an_existing_one(tmp_path: Path) -> None:
    Journal.open_dir(tmp_path).close()
    assert require_journal(tmp_path) == tmp_path


def test_an_unexpected_error_in_any_command_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.open_dir(tmp_path)
    try:
        journal.create_order("ord_x", {"task": {}})
    finally:
        journal.close()

    def unexpected(*_a: object, **_k: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", "/gone/key")

    # A missing output folder is now a usage error of its own (exit 2, tests/cli/
    # test_cli_never_traceback.py); an error nobody foresaw inside the command is made here instead.
    monkeypatch.setattr("buyer_agent.commands.export.export_key", unexpected)
    code = main(["export", "ord_x", "-o", str(tmp_path / "x.jsonl"), "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert err.startswith("error: FileNotFoundError"), err
    assert len(err.strip().splitlines()) == 1
