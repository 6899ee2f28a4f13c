"""What-if: the recorded quote decision re-run with another strategy, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replay_orders import write_order

from buyer_agent.cli import main
from buyer_agent.history._replay import replay_order
from buyer_agent.history._whatif import what_if
from buyer_agent.journal import Journal
from buyer_agent.journal._export import export_lines


def test_best_score_over_a_cheapest_journal_picks_svc_hash_fast(journal: Journal) -> None:
    write_order(journal)
    result = what_if(replay_order(journal, "ord_golden_1").events, "best_score")
    assert result["recorded"]["service_id"] == "svc_hash_budget"
    assert result["recorded"]["strategy"] == "cheapest"
    assert result["alternative"]["service_id"] == "svc_hash_fast"
    assert result["difference"] == {"amount": "+0.40", "currency": "USDC"}
    assert result["same"] is False
    # The recorded limits still hold: the premium (over budget) and denied quotes stay ineligible.
    eligible = {c["service_id"] for c in result["candidates"] if c["eligible"]}
    assert eligible == {"svc_hash_budget", "svc_hash_fast"}


def test_the_same_strategy_reproduces_the_recorded_choice(journal: Journal) -> None:
    write_order(journal)
    result = what_if(replay_order(journal, "ord_golden_1").events, "cheapest")
    assert result["same"] is True and result["difference"] == {"amount": "+0.00", "currency": "USDC"}


def test_replay_strategy_flag(journal: Journal, tmp_path: Path, capsys: Any) -> None:
    write_order(journal)
    path = tmp_path / "o.jsonl"
    path.write_text("\n".join(export_lines(journal, "ord_golden_1")) + "\n")
    assert main(["replay", str(path), "--strategy", "best_score", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["what_if"]["alternative"]["service_id"] == "svc_hash_fast"
    assert doc["what_if"]["difference"]["amount"] == "+0.40"
    assert main(["replay", str(path), "--strategy", "best_score"]) == 0
    assert "+0.40 USDC" in capsys.readouterr().out
