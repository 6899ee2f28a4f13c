"""The pytest plugin, enabled the way a user enables it; and it does not load for everyone."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from buyer_agent import SyncBuyerAgent, load_task
from buyer_agent.journal import Journal
from buyer_agent.sandbox import SandboxInfo
from buyer_agent.testing import sandbox_agent
from buyer_agent.workflow import OrderState

pytest_plugins = ["buyer_agent.testing.pytest_plugin"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_plugin_is_opt_in() -> None:
    auto = [ep for ep in entry_points(group="pytest11") if ep.value.startswith("buyer_agent")]
    assert auto == [], "the plugin must not load for everyone who installs buyer_agent"


def test_the_memory_journal_fixture(memory_journal: Journal) -> None:
    memory_journal.create_order("ord_1", {"service_type": "compute.marketplace"})
    assert memory_journal.path is None and memory_journal.verify("ord_1") == 1


@pytest.mark.chains
def test_an_agent_on_the_session_sandbox_buys(buyer_agent_on_sandbox: SyncBuyerAgent, tmp_path: Path) -> None:
    summary = buyer_agent_on_sandbox.buy(load_task(EXAMPLES / "task.yaml", env={}))
    assert summary.state is OrderState.CONFIRMED
    assert str(tmp_path) in summary.journal


@pytest.mark.chains
def test_two_agents_share_the_session_sandbox(buyer_sandbox: SandboxInfo, tmp_path: Path) -> None:
    with SyncBuyerAgent(sandbox_agent(buyer_sandbox, tmp_path / "other")) as agent:
        assert agent.market_label == buyer_sandbox.url.rstrip("/")
        summary = agent.buy(load_task(EXAMPLES / "solana.yaml", env={}))
        assert summary.state is OrderState.CONFIRMED
