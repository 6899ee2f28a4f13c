"""``cancel ORDER_ID``: close an open order before money moved; ``--abandon`` one of a dead sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, fund_wallets, market_env

from buyer_agent._money import Money
from buyer_agent.journal import Journal, LedgerStatus
from buyer_agent.workflow import OrderSpec

pytestmark = pytest.mark.chains


def stopped_order(info: dict[str, Any], key: str, state: Path, after: str) -> str:
    """An order run against ``info``'s market and killed right after the ``after`` event; its id."""
    env = market_env(info, evm_key=key)
    env["BUYER_AGENT_CRASH_AFTER"] = after
    crashed = cli("run", "examples/task.yaml", "--market", info["url"], "--state-dir", str(state), env=env)
    assert crashed.returncode != 0
    orders = json.loads(cli("orders", "--json", "--state-dir", str(state)).stdout)
    order_id: str = orders[-1]["order_id"]
    return order_id


def events(state: Path, order_id: str) -> list[str]:
    journal = Journal.open_dir(state)
    try:
        return [ev.trigger for ev in journal.events(order_id)]
    finally:
        journal.close()


def test_cancel_a_created_order(tmp_path: Path) -> None:
    journal = Journal.open_dir(tmp_path)
    spec = OrderSpec(service_type="s", budget=Money.parse("1 USDC"))
    journal.create_order("ord_open", spec.to_json(), context={}, payload={})
    journal.close()
    proc = cli("cancel", "ord_open", "--reason", "changed my mind", "--json", "--state-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "cancelled"
    assert events(tmp_path, "ord_open")[-1] == "cancel"
    again = cli("cancel", "ord_open", "--state-dir", str(tmp_path))
    assert again.returncode == 1 and "already cancelled" in again.stderr
    unknown = cli("cancel", "ord_nope", "--state-dir", str(tmp_path))
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr


def test_cancel_an_ordered_order_releases_its_budget_and_refuses_once_money_moved(
    external: dict[str, Any], tmp_path: Path
) -> None:
    (_, key_1), (_, key_2) = fund_wallets(external, 2)
    ordered = stopped_order(external, key_1, tmp_path / "a", "order")
    journal = Journal.open_dir(tmp_path / "a")
    entry = journal.ledger_entry(ordered)
    journal.close()
    assert entry is not None and entry.status is LedgerStatus.COMMITTED
    proc = cli("cancel", ordered, "--state-dir", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [ordered, "cancelled"]
    journal = Journal.open_dir(tmp_path / "a")
    entry = journal.ledger_entry(ordered)
    journal.close()
    assert entry is not None and entry.status is LedgerStatus.RELEASED
    assert events(tmp_path / "a", ordered)[-1] == "cancel"

    paying = stopped_order(external, key_2, tmp_path / "b", "pay")
    refused = cli("cancel", paying, "--state-dir", str(tmp_path / "b"))
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: cannot cancel {paying}: money moved (state paying)")
    assert len(refused.stderr.strip().splitlines()) == 1
    # --abandon is only for orders of an embedded sandbox
    refused = cli("cancel", paying, "--abandon", "--state-dir", str(tmp_path / "b"))
    assert refused.returncode == 1 and "not the embedded sandbox" in refused.stderr
    # ... which is what an order of a dead embedded sandbox is marked as: abandoned, journaled
    journal = Journal.open_dir(tmp_path / "b")
    journal.set_meta(f"order_market:{paying}", "embedded-sandbox")
    journal.close()
    abandoned = cli("cancel", paying, "--abandon", "--json", "--state-dir", str(tmp_path / "b"))
    assert abandoned.returncode == 0, abandoned.stderr
    summary = json.loads(abandoned.stdout)
    assert summary["state"] == "failed" and summary["error"]["code"] == "ORDER_ABANDONED"
    assert events(tmp_path / "b", paying)[-1] == "fail"
    # and resume no longer lists it
    resumed = cli("resume", "--state-dir", str(tmp_path / "b"))
    assert resumed.returncode == 0 and "nothing to resume" in resumed.stderr


def test_resume_lists_each_open_order_it_cannot_resume_and_exits_non_zero(tmp_path: Path) -> None:
    journal = Journal.open_dir(tmp_path)
    spec = OrderSpec(service_type="s", budget=Money.parse("1 USDC"))
    journal.create_order("ord_nowhere", spec.to_json(), context={}, payload={})
    journal.create_order("ord_embedded", spec.to_json(), context={}, payload={})
    journal.set_meta("order_market:ord_embedded", "embedded-sandbox")
    journal.close()
    proc = cli("resume", "--state-dir", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith("error: cannot resume ord_nowhere: no market is recorded") for line in lines)
    embedded = "error: cannot resume ord_embedded: it was placed on the embedded sandbox"
    assert any(line.startswith(embedded) for line in lines)
    assert "nothing to resume" not in proc.stderr
