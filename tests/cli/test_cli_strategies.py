"""Each built-in strategy end to end on the sandbox catalogue, through the command line.

The five runs share one state directory on purpose: each starts a fresh embedded sandbox (a new
anvil under the same chain id), and a journal that outlives its chain must not stall the next
payment on a nonce reserved on the old one.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from cli_support import cli

pytestmark = pytest.mark.chains

# What each strategy picks from the demo catalogue for examples/task.yaml (budget 2.50 USDC,
# EVM wallet rail): only svc_hash_budget (0.80, score 0.70) and svc_hash_fast (1.20, score 0.92)
# are eligible; svc_hash_denied (0.60) is cheaper but denied by the demo policy.
EXPECTED = {
    "cheapest": "svc_hash_budget",
    "best_score": "svc_hash_fast",
    "weighted": "svc_hash_fast",
    "native_first": "svc_hash_budget",
    "fallback": "svc_hash_budget",
}


def test_every_builtin_strategy_chooses_its_quote_and_explains_it(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for name, service in EXPECTED.items():
        proc = cli("run", "examples/task.yaml", "--strategy", name, "--json", "--state-dir", state)
        assert proc.returncode == 0, (name, proc.stderr)
        out = json.loads(proc.stdout)
        assert out["state"] == "confirmed", name
        assert out["quote"]["service_id"] == service, name
        by_service = {c["service_id"]: c for c in out["candidates"]}
        chosen = by_service[service]
        assert chosen["eligible"] is True and chosen["quote_id"] == out["quote"]["quote_id"]
        assert chosen["reasons"], name
        # The guard's reasons are there for the ones no strategy may take.
        assert by_service["svc_hash_denied"]["eligible"] is False
        assert any("denied" in r for r in by_service["svc_hash_denied"]["reasons"])
        assert any("over order budget" in r for r in by_service["svc_hash_premium"]["reasons"])
        # Every eligible quote is no cheaper than the pick for cheapest.
        if name == "cheapest":
            cheapest = Decimal(chosen["price"]["amount"])
            assert all(cheapest <= Decimal(c["price"]["amount"]) for c in out["candidates"] if c["eligible"])

        shown = cli("show", out["order_id"], "--state-dir", state)
        assert shown.returncode == 0, shown.stderr
        assert f"* {service}" in shown.stdout
        assert "denied by the policy" in shown.stdout
        shown_json = json.loads(cli("show", out["order_id"], "--json", "--state-dir", state).stdout)
        (again,) = [c for c in shown_json["order"]["candidates"] if c["service_id"] == service]
        assert again["reasons"] == chosen["reasons"]
