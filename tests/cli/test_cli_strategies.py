"""Each built-in strategy end to end on the sandbox catalogue, through the command line.

The runs of a test share one state directory on purpose: each starts a fresh embedded sandbox (a
new anvil under the same chain id), and a journal that outlives its chain must not stall the next
payment on a nonce reserved on the old one.

Every strategy must show its own reasons and its decision, not only the eligibility guard's lines
(which any strategy gets), so a strategy that quietly ran another one's code would fail here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, cli

pytestmark = pytest.mark.chains

# What each strategy picks from the demo catalogue for examples/task.yaml (budget 2.50 USDC,
# EVM wallet rail): only svc_hash_budget (0.80, score 0.70) and svc_hash_fast (1.20, score 0.92)
# are eligible; svc_hash_denied (0.60) is cheaper but denied by the demo policy.
# name -> (service chosen, a reason only this strategy gives the chosen quote, its decision line)
EXPECTED = {
    "cheapest": (
        "svc_hash_budget",
        "price 0.80 USDC, the lowest",
        "cheapest eligible quote: 0.80 USDC (svc_hash_budget)",
    ),
    "best_score": (
        "svc_hash_fast",
        "market score 0.92, the highest",
        "best market score 0.92: svc_hash_fast at 1.20 USDC",
    ),
    "weighted": ("svc_hash_fast", "weighted score ", "highest weighted score "),
    "native_first": ("svc_hash_budget", "native execution", "native: svc_hash_budget at 0.80 USDC"),
    # The default chain: cheapest, then best_score (whose choice is next in line).
    "fallback": (
        "svc_hash_budget",
        "cheapest: choice 1 of the chain",
        "cheapest: cheapest eligible quote: 0.80 USDC (svc_hash_budget)",
    ),
}
# The reasons of the other quote each strategy ranked (svc_hash_fast or svc_hash_budget).
RUNNER_UP = {
    "cheapest": ("svc_hash_fast", "price 1.20 USDC, 0.40 USDC over the lowest"),
    "best_score": ("svc_hash_budget", "market score 0.70, 0.22 below the best"),
    "weighted": ("svc_hash_budget", "weighted score "),
    "native_first": ("svc_hash_fast", "native execution"),
    "fallback": ("svc_hash_fast", "best_score: choice 2 of the chain"),
}


def _reasons_of(out: dict[str, Any], service: str) -> list[str]:
    (cand,) = [c for c in out["candidates"] if c["service_id"] == service]
    return list(cand["reasons"])


def _starts(reasons: list[str], prefix: str) -> bool:
    return any(r.startswith(prefix) for r in reasons)


def _run(task: str | Path, state: str, *extra: str) -> dict[str, Any]:
    proc = cli("run", str(task), *extra, "--json", "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _check_show(out: dict[str, Any], state: str, service: str, own: str, decision: str) -> None:
    """``show`` (text and JSON) holds the strategy's own reasons for the pick and its decision."""
    shown = cli("show", out["order_id"], "--state-dir", state)
    assert shown.returncode == 0, shown.stderr
    (line,) = [ln for ln in shown.stdout.splitlines() if ln.startswith(f"  * {service} ")]
    assert own in line, line
    (chosen,) = [ln for ln in shown.stdout.splitlines() if ln.startswith("chosen ")]
    assert decision in chosen, chosen
    doc = json.loads(cli("show", out["order_id"], "--json", "--state-dir", state).stdout)
    assert doc["decision"].startswith(decision), doc["decision"]
    (again,) = [c for c in doc["order"]["candidates"] if c["service_id"] == service]
    assert again["reasons"] == _reasons_of(out, service)


def test_every_builtin_strategy_chooses_its_quote_and_explains_it(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for name, (service, own, decision) in EXPECTED.items():
        out = _run("examples/task.yaml", state, "--strategy", name)
        assert out["state"] == "confirmed", name
        assert out["quote"]["service_id"] == service, name
        by_service = {c["service_id"]: c for c in out["candidates"]}
        chosen = by_service[service]
        assert chosen["eligible"] is True and chosen["quote_id"] == out["quote"]["quote_id"]
        # The strategy's own reasons, after the guard's "eligible: …" line.
        assert chosen["reasons"][0].startswith("eligible: ")
        assert _starts(chosen["reasons"], own), (name, chosen["reasons"])
        other, other_reason = RUNNER_UP[name]
        if other != service:
            assert _starts(_reasons_of(out, other), other_reason), (name, _reasons_of(out, other))
        if name == "weighted":
            assert any(r.startswith("price 1.20 USDC -> ") for r in chosen["reasons"]), chosen["reasons"]
        # The guard's reasons are there for the ones no strategy may take.
        assert by_service["svc_hash_denied"]["eligible"] is False
        assert any("denied" in r for r in by_service["svc_hash_denied"]["reasons"])
        assert any("over order budget" in r for r in by_service["svc_hash_premium"]["reasons"])
        # Every eligible quote is no cheaper than the pick for cheapest.
        if name == "cheapest":
            cheapest = Decimal(chosen["price"]["amount"])
            assert all(cheapest <= Decimal(c["price"]["amount"]) for c in out["candidates"] if c["eligible"])
        _check_show(out, state, service, own, decision)


def test_native_first_and_fallback_choose_what_cheapest_would_not(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    # A task that accepts a handoff: svc_hash_handoff_lite (0.50, external handoff) is the cheapest.
    text = (ROOT / "examples" / "task.yaml").read_text()
    assert "allow_handoff: false" in text
    handoff_task = tmp_path / "handoff.yaml"
    handoff_task.write_text(text.replace("allow_handoff: false", "allow_handoff: true"))

    cheap = _run(handoff_task, state, "--strategy", "cheapest")
    assert cheap["quote"]["service_id"] == "svc_hash_handoff_lite"
    assert cheap["state"] == "handed_off"

    native = _run(handoff_task, state, "--strategy", "native_first")
    assert native["state"] == "confirmed"
    assert native["quote"]["service_id"] == "svc_hash_budget"
    assert _starts(_reasons_of(native, "svc_hash_budget"), "native execution")
    handoff_reasons = _reasons_of(native, "svc_hash_handoff_lite")
    assert _starts(handoff_reasons, "external-handoff (not native)"), handoff_reasons
    _check_show(native, state, "svc_hash_budget", "native execution", "native: svc_hash_budget at 0.80 USDC")

    # A fallback chain from the task file: best_score first, then cheapest.
    chain_task = tmp_path / "chain.yaml"
    chain_task.write_text(
        text.replace(
            "strategy: cheapest ",
            "strategy: {name: fallback, params: {chain: [best_score, cheapest]}} ",
        )
    )
    chained = _run(chain_task, state)
    assert chained["quote"]["service_id"] == "svc_hash_fast"
    assert _starts(_reasons_of(chained, "svc_hash_fast"), "best_score: choice 1 of the chain")
    assert _starts(_reasons_of(chained, "svc_hash_budget"), "cheapest: choice 2 of the chain")
    _check_show(
        chained,
        state,
        "svc_hash_fast",
        "best_score: choice 1 of the chain",
        "best_score: best market score 0.92: svc_hash_fast at 1.20 USDC",
    )
