"""What a new user's model tripped on (issue 19), on a real sandbox market and anvil.

- ``to`` and ``token`` inside the service ``input`` are refused, as the README says;
- a long argument error keeps its reason (the echoed value is shortened, not the reason);
- ``OTHER_MARKET`` for an order of an earlier process's embedded sandbox says so, not
  "placed on embedded-sandbox, not … (embedded-sandbox)";
- after a dispute, ``order_status`` shows the refund once the market made it, and ``wait_for`` waits
  for a state with a bound;
- the approval hint names the state dir the person must pass to ``approve``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import BuyerAgent, Money, load_task
from buyer_agent.tools._guard import check_arguments
from buyer_agent.tools._schemas import tool_spec

pytestmark = pytest.mark.chains
ROOT = Path(__file__).resolve().parents[2]
TASK = load_task(ROOT / "examples" / "task.yaml", env={})


@pytest.fixture(scope="module")
def info() -> Iterator[Any]:
    from buyer_agent.sandbox import Sandbox

    sandbox = Sandbox()
    try:
        yield sandbox.start()
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def make_agent(info: Any, loop: asyncio.Runner, tmp_path: Path) -> Iterator[Callable[..., BuyerAgent]]:
    made: list[BuyerAgent] = []

    def make(spec: Any = TASK.spec) -> BuyerAgent:
        agent = BuyerAgent(
            info.url,
            machine_id=info.machine_id,
            api_key=info.api_key,
            evm_key=info.evm_private_key,
            evm_rpc=info.evm_rpc_url,
            state_dir=tmp_path / f"state{len(made)}",
            spec=spec,
        )
        made.append(agent)
        return agent

    yield make
    for agent in made:
        loop.run(agent.aclose())


def call(loop: asyncio.Runner, agent: BuyerAgent, name: str, **arguments: Any) -> dict[str, Any]:
    result = loop.run(agent.call_tool(name, arguments))
    json.dumps(result)
    return result


@pytest.mark.parametrize("key", ["to", "token", "Token", "wallet", "escrow"])
def test_to_and_token_in_the_service_input_are_refused(key: str) -> None:
    spec = tool_spec("search_market")
    assert spec is not None
    _, refused = check_arguments(spec, {"input": {"data": "x", key: "0xabc"}})
    assert refused is not None and refused["error"]["code"] == "ARGUMENT_REFUSED"
    assert refused["error"]["field"] == "input" and refused["error"]["refused"] == [key]


def test_a_service_may_still_take_an_address_or_a_value() -> None:
    spec = tool_spec("search_market")
    assert spec is not None
    args, refused = check_arguments(spec, {"input": {"address": "Main St 1", "value": 3, "chain": "x"}})
    assert refused is None and args["input"]["value"] == 3


@pytest.mark.parametrize(
    ("tool", "arguments", "reason"),
    [
        ("choose_quote", {"order_id": "ord_" + "a" * 500}, "does not match"),
        ("search_market", {"input": {"data": "x" * 5000}}, "is too long"),
        ("dispute_order", {"order_id": "ord_" + "0" * 32, "reason": "r" * 900}, "is too long"),
    ],
)
def test_a_long_argument_error_keeps_its_reason(tool: str, arguments: dict[str, Any], reason: str) -> None:
    spec = tool_spec(tool)
    assert spec is not None
    _, refused = check_arguments(spec, arguments)
    assert refused is not None
    message = refused["error"]["message"]
    assert reason in message, message
    assert len(message) < 400 and "characters)" in message


def test_an_order_of_an_earlier_embedded_sandbox_says_so(loop: asyncio.Runner, tmp_path: Path) -> None:
    first = BuyerAgent(state_dir=tmp_path, spec=TASK.spec)
    try:
        order_id = call(loop, first, "search_market")["order_id"]
    finally:
        loop.run(first.aclose())
    second = BuyerAgent(state_dir=tmp_path, spec=TASK.spec)
    try:
        err = call(loop, second, "choose_quote", order_id=order_id)["error"]
    finally:
        loop.run(second.aclose())
    assert err["code"] == "OTHER_MARKET"
    assert "embedded sandbox of an earlier process" in err["message"], err
    assert "(embedded-sandbox)" not in err["message"] and "not on" not in err["message"]


def _disputed(loop: asyncio.Runner, agent: BuyerAgent) -> str:
    order_id = call(loop, agent, "search_market")["order_id"]
    for step in ("choose_quote", "place_order", "pay_order", "execute_order"):
        assert "error" not in call(loop, agent, step, order_id=order_id), step
    disputed = call(loop, agent, "dispute_order", order_id=order_id, reason="the hash looks wrong")
    assert disputed["state"] == "disputed" and "wait_for" in disputed["hint"]
    return order_id


def test_order_status_shows_the_refund_once_the_market_made_it(
    loop: asyncio.Runner, make_agent: Callable[..., BuyerAgent]
) -> None:
    agent = make_agent()
    order_id = _disputed(loop, agent)
    time.sleep(1.0)  # the sandbox refunds about 0.2 s after a dispute
    status = call(loop, agent, "order_status", order_id=order_id)
    assert status["state"] == "refunded", status
    assert status["payment"]["status"] == "refunded" and status["next"] == ["order_status"]


def test_wait_for_a_refund_and_a_state_that_does_not_come(
    loop: asyncio.Runner, make_agent: Callable[..., BuyerAgent]
) -> None:
    agent = make_agent()
    order_id = _disputed(loop, agent)
    done = call(loop, agent, "wait_for", order_id=order_id, state="refunded", timeout_s=30)
    assert done["reached"] is True and done["state"] == "refunded", done
    # A state the order never reaches: the answer comes at the bound, saying so.
    other = call(loop, agent, "search_market")["order_id"]
    late = call(loop, agent, "wait_for", order_id=other, state="confirmed", timeout_s=1)
    assert late["reached"] is False and late["state"] == "searched"
    assert "not confirmed, after 1 s" in late["hint"]
    # A terminal state ends the wait at once.
    ended = call(loop, agent, "wait_for", order_id=order_id, state="confirmed", timeout_s=60)
    assert ended["reached"] is False and ended["state"] == "refunded"
    err = call(loop, agent, "wait_for", order_id=order_id, state="refunded", timeout_s=600)["error"]
    assert err["code"] == "INVALID_ARGUMENTS" and err["field"] == "timeout_s"


def test_the_approval_hint_names_the_state_dir(
    loop: asyncio.Runner, make_agent: Callable[..., BuyerAgent]
) -> None:
    agent = make_agent(spec=replace(TASK.spec, approval_threshold=Money.parse("0.50 USDC")))
    order_id = call(loop, agent, "search_market")["order_id"]
    call(loop, agent, "choose_quote", order_id=order_id)
    held = call(loop, agent, "place_order", order_id=order_id)
    assert held["state"] == "awaiting_approval"
    assert f"python -m buyer_agent approve {order_id} --state-dir {agent.state_dir}" in held["hint"]
