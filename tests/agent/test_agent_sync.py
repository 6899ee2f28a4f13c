"""SyncBuyerAgent forwards every public method of BuyerAgent, generically, and a forwarded call works."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from buyer_agent import BuyerAgent, SyncBuyerAgent, load_task
from buyer_agent.workflow import OrderState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _public(cls: type) -> dict[str, object]:
    return {name: member for name, member in inspect.getmembers(cls) if not name.startswith("_")}


def test_it_has_every_public_method_and_property_of_buyer_agent() -> None:
    mine = _public(SyncBuyerAgent)
    theirs = _public(BuyerAgent)
    missing = sorted(set(theirs) - set(mine))
    assert missing == [], f"SyncBuyerAgent lacks {missing}"
    for name, member in theirs.items():
        if inspect.iscoroutinefunction(member):
            assert not inspect.iscoroutinefunction(mine[name]), f"{name} must block, not return a coroutine"
    # The ones the hand-written copy had left out.
    for name in ("pair", "cancel", "candidates", "drive", "start", "allowed_actions", "resumable"):
        assert callable(getattr(SyncBuyerAgent, name))
    assert inspect.signature(SyncBuyerAgent.cancel).parameters.keys() >= {"order_id", "reason"}


def test_a_subclass_method_and_plain_attributes_read_through(tmp_path: Path) -> None:
    class Mine(BuyerAgent):
        async def twice(self, n: int) -> int:
            return 2 * n

    with SyncBuyerAgent(Mine(state_dir=tmp_path)) as agent:
        assert agent.twice(21) == 42
        assert agent.state_dir == tmp_path and agent.uses_sandbox
        with pytest.raises(AttributeError):
            agent.no_such_thing  # noqa: B018


@pytest.mark.chains
def test_forwarded_calls_drive_an_order_on_the_sandbox(tmp_path: Path) -> None:
    task = load_task(EXAMPLES / "task.yaml", env={})
    with SyncBuyerAgent.from_task(task, state_dir=tmp_path) as agent:
        order_id = agent.submit()
        assert agent.pair(order_id).state is OrderState.PAIRED
        assert agent.search(order_id).state is OrderState.SEARCHED
        preview = agent.candidates(order_id)
        assert preview["recommended"] in preview["ranking"]
        assert agent.drive(order_id).state is OrderState.CONFIRMED
        other = agent.submit()
        assert agent.cancel(other, "changed my mind").state is OrderState.CANCELLED
        assert {o.order_id for o in agent.orders()} == {order_id, other}
