"""Everything in a task that can refuse is checked before pairing, not found after paying.

Issue 19's afternoon: an ``acceptance.callable`` that cannot be imported was found only after the
agent paid and the provider delivered (the honest delivery was then disputed); a budget in ``USD``
and ``chain: eip155:1`` were refused only after a search. Each now stops ``run`` on the embedded
sandbox before the market hears of the order: task-file faults with exit 2 and one line naming the
field (no order at all), a chain no rail pays on with exit 1 and an order failed from ``created``
(no ``pair`` event), the journal verifying.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, cli

from buyer_agent._errors import RailError, UnsupportedRailError
from buyer_agent.journal import Journal
from buyer_agent.rails._preflight import check_rails_can_pay

EXAMPLE = (ROOT / "examples" / "task.yaml").read_text(encoding="utf-8")


def task(tmp_path: Path, old: str, new: str) -> Path:
    assert old in EXAMPLE, old
    path = tmp_path / "task.yaml"
    path.write_text(EXAMPLE.replace(old, new), encoding="utf-8")
    return path


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        (
            "acceptance:\n",
            'acceptance:\n  callable: "no_such_module.checks:accept"\n',
            ["acceptance.callable", "cannot import 'no_such_module.checks'"],
        ),
        (
            "acceptance:\n",
            'acceptance:\n  callable: "json:no_such_function"\n',
            ["acceptance.callable", "'json' has no 'no_such_function'"],
        ),
        ('budget: "2.50 USDC"', 'budget: "2.50 USD"', ["budget (line", "USD is not a token"]),
        ('budget: "2.50 USDC"', 'budget: "0 USDC"', ["budget (line", "must be above zero"]),
        ("chain: evm  ", "chain: peaq", ["budget (line", "peaq (eip155:3338", "payment.tokens"]),
    ],
    ids=["callable-module", "callable-name", "usd", "zero", "peaq-without-token"],
)
def test_a_task_that_can_never_be_paid_or_accepted_stops_before_any_order(
    tmp_path: Path, old: str, new: str, fragments: list[str]
) -> None:
    path = task(tmp_path, old, new)
    state = tmp_path / "state"
    proc = cli("run", str(path), "--state-dir", str(state))
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    for fragment in fragments:
        assert fragment in line, line
    assert "OrderSpec" not in line  # never an internal class
    assert not (state / "buyer_agent.db").exists()  # no order, nothing paired


def test_a_chain_no_rail_pays_on_fails_before_pairing(tmp_path: Path) -> None:
    path = task(tmp_path, "chain: evm  ", 'chain: "eip155:1"')
    state = tmp_path / "state"
    proc = cli("run", str(path), "--state-dir", str(state), "--json")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["state"] == "failed" and summary["error"]["code"] == "UNSUPPORTED_RAIL"
    assert "eip155:1" in summary["error"]["message"] and "before pairing" in summary["error"]["message"]
    journal = Journal.open_dir(state)
    try:
        events = journal.events(summary["order_id"])
        assert [e.trigger for e in events] == ["submit", "fail"]
        assert events[-1].src == "created"
        assert journal.verify(summary["order_id"]) == 2
    finally:
        journal.close()


class FakeRail:
    """A rail that pays ``types`` on ``chain`` (None: its node is asked, ``node`` answers or fails)."""

    name = "fake"

    def __init__(self, chain: str | None, types: tuple[str, ...] = ("wallet",), node: Any = None) -> None:
        self.chain = chain
        self._types = types
        self._node = node

    def supports(self, rail_type: str, chain: str) -> bool:
        return rail_type in self._types and (self.chain is None or chain == self.chain)

    async def node_chain(self) -> str:
        if isinstance(self._node, Exception):
            raise self._node
        return str(self._node)


class Opaque:
    """A third-party rail that does not say which chain it pays on."""

    name = "opaque"

    def supports(self, rail_type: str, chain: str) -> bool:
        return False


def refused(rails: list[Any], rail_type: str | None, chain: str | None) -> bool:
    try:
        asyncio.run(check_rails_can_pay(rails, rail_type, chain))
    except UnsupportedRailError:
        return True
    return False


def test_which_rails_can_pay_which_chains() -> None:
    sandbox = [FakeRail("eip155:31337", ("wallet", "onchain-escrow")), FakeRail("solana:abc")]
    assert not refused(sandbox, "wallet", "evm") and not refused(sandbox, None, None)
    assert not refused(sandbox, "wallet", "solana:abc") and not refused(sandbox, "wallet", "solana")
    assert refused(sandbox, "wallet", "eip155:1")
    assert refused(sandbox, "onchain-escrow", "solana")  # the Solana rail has no escrow
    assert refused([FakeRail("eip155:31337")], "wallet", "solana")  # no Solana key: no Solana rail
    # An EVM rail with no fixed chain pays on its node's chain.
    assert refused([FakeRail(None, node="eip155:31337")], "wallet", "eip155:8453")
    assert not refused([FakeRail(None, node="eip155:8453")], "wallet", "eip155:8453")
    # A node that cannot be asked, or a rail that cannot say: the payment step decides.
    assert not refused([FakeRail(None, node=RailError("down", retryable=True))], "wallet", "eip155:8453")
    assert not refused([Opaque()], "wallet", "eip155:8453")
    assert not refused([], "wallet", None)  # no rails: a unit test of searching; the agent needs one
