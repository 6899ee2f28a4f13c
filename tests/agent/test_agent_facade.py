"""BuyerAgent without a market: configuration, secrets kept out of reprs, reading the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buyer_agent import BuyerAgent, Money, OrchestrationConfigError, SyncBuyerAgent
from buyer_agent.journal import Journal
from buyer_agent.workflow import OrderSpec, OrderState

KEY = "0x" + "5a" * 32


def test_repr_never_shows_keys(tmp_path: Path) -> None:
    agent = BuyerAgent(
        "https://market.example",
        api_key="platform-secret",
        evm_key=KEY,
        solana_key="solsecret",
        pairing_token="tok-secret",
        state_dir=tmp_path,
    )
    sync = SyncBuyerAgent(agent)
    for text in (repr(agent), str(agent), repr(sync)):
        assert "platform-secret" not in text and KEY not in text and "5a5a" not in text
        assert "solsecret" not in text and "tok-secret" not in text
        assert "https://market.example" in text
    sync.close()


def test_market_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BuyerAgent(state_dir=tmp_path).uses_sandbox
    assert BuyerAgent("sandbox", state_dir=tmp_path).market_label == "embedded-sandbox"
    monkeypatch.setenv("PEAQOS_ORCHESTRATION_URL", "http://127.0.0.1:9/")
    agent = BuyerAgent(state_dir=tmp_path)
    assert not agent.uses_sandbox and agent.market_label == "http://127.0.0.1:9"


def test_from_task_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2]
    agent = BuyerAgent.from_task(root / "examples" / "task.yaml", state_dir=tmp_path)
    assert agent.uses_sandbox and agent.task is not None
    monkeypatch.setenv("PEAQOS_ORCHESTRATION_URL", "http://127.0.0.1:7")
    monkeypatch.setenv("PEAQOS_MACHINE_ID", "m-1")
    agent = BuyerAgent.from_task(root / "examples" / "task.yaml", state_dir=tmp_path)
    assert agent.market_label == "http://127.0.0.1:7" and agent.machine_id == "m-1"
    agent = BuyerAgent.from_task(
        root / "examples" / "task.yaml", market="http://127.0.0.1:8", state_dir=tmp_path
    )
    assert agent.market_label == "http://127.0.0.1:8"


def test_state_dir_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BuyerAgent().state_dir == Path("state")
    monkeypatch.setenv("BUYER_AGENT_STATE_DIR", str(tmp_path / "x"))
    assert BuyerAgent().state_dir == tmp_path / "x"
    assert BuyerAgent(state_dir=tmp_path / "y").state_dir == tmp_path / "y"


def test_orders_read_the_journal_without_a_market(tmp_path: Path) -> None:
    journal = Journal.open_dir(tmp_path)
    spec = OrderSpec(service_type="compute.marketplace", budget=Money.parse("1 USDC"))
    journal.create_order("ord_1", spec.to_json(), context={}, payload={})
    journal.close()
    with SyncBuyerAgent(BuyerAgent(state_dir=tmp_path)) as agent:
        assert [o.order_id for o in agent.orders()] == ["ord_1"]
        assert agent.orders(OrderState.CONFIRMED) == []
        assert agent.order("ord_1").state is OrderState.CREATED
        assert agent.agent.allowed_actions("ord_1") == ["pair", "cancel"]


def test_external_market_without_keys_fails_clearly(tmp_path: Path) -> None:
    async def go() -> None:
        async with BuyerAgent("http://127.0.0.1:9", machine_id="m", state_dir=tmp_path) as agent:
            await agent.start()

    with pytest.raises(OrchestrationConfigError, match="BUYER_AGENT_EVM_KEY"):
        asyncio.run(go())
