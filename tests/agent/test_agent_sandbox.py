"""BuyerAgent on the embedded sandbox: buy, step by step, read back, and the sync wrapper."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buyer_agent import BuyerAgent, StateError, load_task
from buyer_agent.workflow import OrderState, ProgressEvent

pytestmark = pytest.mark.chains
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_buy_and_step_on_the_embedded_sandbox(tmp_path: Path) -> None:
    seen: list[ProgressEvent] = []
    task = load_task(EXAMPLES / "task.yaml", env={})

    async def go() -> None:
        async with BuyerAgent.from_task(task, state_dir=tmp_path, on_progress=seen.append) as agent:
            summary = await agent.buy()
            assert summary.state is OrderState.CONFIRMED
            assert summary.payment is not None and summary.payment["tx"]
            assert seen[-1].state is OrderState.CONFIRMED and seen[-1].order_id == summary.order_id

            # The same order by hand, one step at a time.
            order_id = await agent.submit(task)
            with pytest.raises(StateError) as info:
                await agent.pay(order_id)
            assert info.value.allowed == agent.allowed_actions(order_id)
            assert (await agent.search(order_id)).state is OrderState.SEARCHED
            chosen = await agent.choose(order_id)
            assert chosen.state is OrderState.QUOTED and chosen.quote is not None
            assert (await agent.place_order(order_id)).state is OrderState.ORDERED
            assert (await agent.pay(order_id)).state is OrderState.PAID
            assert (await agent.execute(order_id)).state is OrderState.EXECUTED
            assert (await agent.confirm(order_id)).state is OrderState.CONFIRMED

            assert [o.order_id for o in agent.orders(OrderState.CONFIRMED)] == [summary.order_id, order_id]
            assert agent.order(order_id).state is OrderState.CONFIRMED
            assert await agent.resume() == []

    asyncio.run(go())


def test_sync_wrapper(tmp_path: Path) -> None:
    with BuyerAgent.sync(state_dir=tmp_path) as agent:
        summary = agent.buy(load_task(EXAMPLES / "solana.yaml", env={}))
        assert summary.state is OrderState.CONFIRMED
        assert summary.payment is not None and str(summary.payment["chain"]).startswith("solana:")
        assert agent.orders()[0].order_id == summary.order_id
