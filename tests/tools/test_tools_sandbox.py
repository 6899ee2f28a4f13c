"""The tools against a real market (one sandbox for the module): a scripted model buys, guard rails hold."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyer_agent import BuyerAgent, Money, load_task
from buyer_agent.workflow import OrderState, OrderSummary

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


Factory = Callable[..., BuyerAgent]


@pytest.fixture
def make_agent(info: Any, loop: asyncio.Runner, tmp_path: Path) -> Iterator[Factory]:
    made: list[BuyerAgent] = []

    def make(
        spec: Any = TASK.spec, approver: Callable[[OrderSummary], Awaitable[bool]] | None = None
    ) -> BuyerAgent:
        agent = BuyerAgent(
            info.url,
            machine_id=info.machine_id,
            api_key=info.api_key,
            evm_key=info.evm_private_key,
            evm_rpc=info.evm_rpc_url,
            state_dir=tmp_path / f"state{len(made)}",
            spec=spec,
            approver=approver,
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


def events(agent: BuyerAgent, order_id: str) -> int:
    return len(agent.journal.events(order_id))


class Scripted:
    """A model stand-in in the OpenAI chat-completions shape: follows each result's ``next`` tools."""

    def __init__(self) -> None:
        self.n = 0

    def complete(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        self.n += 1
        last = json.loads(messages[-1]["content"]) if messages[-1]["role"] == "tool" else None
        if last is None:
            return self._call("search_market", {})
        if "error" in last or last.get("state") == "confirmed":
            return {"role": "assistant", "content": json.dumps(last)}
        order_id = last["order_id"]
        if last.get("state") == "searched" and "candidates" in last and self.n == 2:
            return self._call("list_candidates", {"order_id": order_id})
        if last.get("state") == "searched":
            return self._call("choose_quote", {"order_id": order_id, "quote_id": last["recommended"]})
        step = next(
            t for t in last["next"] if t in ("place_order", "pay_order", "execute_order", "confirm_order")
        )
        return self._call(step, {"order_id": order_id})

    def _call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        call = {
            "id": f"call_{self.n}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}


def test_a_scripted_model_drives_an_order_to_confirmed(loop: asyncio.Runner, make_agent: Factory) -> None:
    agent = make_agent()
    model = Scripted()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hash my input"}]
    called: list[str] = []
    for _ in range(12):
        message = model.complete(messages)
        messages.append(message)
        if not message.get("tool_calls"):
            break
        for tc in message["tool_calls"]:
            called.append(tc["function"]["name"])
            result = loop.run(agent.call_tool(tc["function"]["name"], tc["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": json.dumps(result)})
    final = json.loads(messages[-1]["content"])
    assert final["state"] == "confirmed", final
    assert called == [
        "search_market",
        "list_candidates",
        "choose_quote",
        "place_order",
        "pay_order",
        "execute_order",
        "confirm_order",
    ]
    assert final["payment"]["amount"] == final["quote"]["price"]["amount"] == "0.80"
    assert final["outcome"]["status"] == "completed" and final["next"] == ["order_status"]
    assert agent.order(final["order_id"]).state is OrderState.CONFIRMED
    listed = call(loop, agent, "list_orders", state="confirmed")
    assert [o["order_id"] for o in listed["orders"]] == [final["order_id"]]


def test_steps_out_of_order_are_refused_with_the_allowed_next_steps(
    loop: asyncio.Runner, make_agent: Factory
) -> None:
    agent = make_agent()
    found = call(loop, agent, "search_market")
    order_id = found["order_id"]
    assert found["state"] == "searched" and found["recommended"]

    def refused(tool: str, state: str, allowed: list[str]) -> None:
        before = events(agent, order_id)
        err = call(loop, agent, tool, order_id=order_id)["error"]
        assert err["code"] == "STEP_OUT_OF_ORDER", err
        assert err["state"] == state and err["allowed"] == allowed and err["hint"]
        assert events(agent, order_id) == before  # nothing journaled, nothing moved

    refused("pay_order", "searched", ["choose_quote", "cancel_order", "order_status"])
    refused("place_order", "searched", ["choose_quote", "cancel_order", "order_status"])
    assert call(loop, agent, "choose_quote", order_id=order_id)["state"] == "quoted"
    refused("confirm_order", "quoted", ["place_order", "cancel_order", "order_status"])
    assert call(loop, agent, "place_order", order_id=order_id)["state"] == "ordered"
    refused("execute_order", "ordered", ["pay_order", "order_status"])
    assert call(loop, agent, "pay_order", order_id=order_id)["state"] == "paid"
    refused("confirm_order", "paid", ["execute_order", "dispute_order", "order_status"])
    refused("cancel_order", "paid", ["execute_order", "dispute_order", "order_status"])
    assert call(loop, agent, "execute_order", order_id=order_id)["state"] == "executed"
    disputed = call(loop, agent, "dispute_order", order_id=order_id, reason="the hash is for the wrong text")
    assert disputed["state"] == "disputed"
    refused("confirm_order", "disputed", ["order_status"])


def test_injected_amount_and_payee_never_reach_the_payment(loop: asyncio.Runner, make_agent: Factory) -> None:
    agent = make_agent()
    order_id = call(loop, agent, "search_market")["order_id"]
    call(loop, agent, "choose_quote", order_id=order_id)
    assert call(loop, agent, "place_order", order_id=order_id)["state"] == "ordered"
    before = events(agent, order_id)
    attacker = "0x000000000000000000000000000000000000dEaD"
    for injected in (
        {"amount": "0.01"},
        {"payee": attacker},
        {"amount": "9", "to": attacker, "token": "USDT"},
    ):
        err = call(loop, agent, "pay_order", order_id=order_id, **injected)["error"]
        assert err["code"] == "ARGUMENT_REFUSED" and set(injected) <= set(err["refused"])
    assert events(agent, order_id) == before and agent.order(order_id).state is OrderState.ORDERED
    paid = call(loop, agent, "pay_order", order_id=order_id)
    assert paid["state"] == "paid"
    assert paid["payment"]["amount"] == paid["quote"]["price"]["amount"] == "0.80"
    payloads = json.dumps([e.payload for e in agent.journal.events(order_id)], default=str)
    assert attacker.lower() not in payloads.lower()


def test_only_an_eligible_quote_can_be_chosen(loop: asyncio.Runner, make_agent: Factory) -> None:
    agent = make_agent()
    found = call(loop, agent, "search_market")
    order_id = found["order_id"]
    cands = found["candidates"]
    over = next(c for c in cands if not c["eligible"] and any("budget" in r for r in c["reasons"]))
    other = next(c for c in cands if c["eligible"] and c["quote_id"] != found["recommended"])
    for quote_id in (over["quote_id"], "quo_0000000000000000"):
        err = call(loop, agent, "choose_quote", order_id=order_id, quote_id=quote_id)["error"]
        assert err["code"] == "NOT_ELIGIBLE" and other["quote_id"] in err["eligible"]
        assert over["quote_id"] not in err["eligible"]
    err = call(loop, agent, "choose_quote", order_id=order_id, quote_id=over["quote_id"])["error"]
    assert "budget" in err["message"]
    assert agent.order(order_id).state is OrderState.SEARCHED
    chosen = call(loop, agent, "choose_quote", order_id=order_id, quote_id=other["quote_id"])
    assert chosen["state"] == "quoted" and chosen["quote"]["quote_id"] == other["quote_id"]
    listed = call(loop, agent, "list_candidates", order_id=order_id)
    assert listed["chosen"] == other["quote_id"] and len(listed["candidates"]) == len(cands)
    assert (
        call(loop, agent, "cancel_order", order_id=order_id, reason="changed my mind")["state"] == "cancelled"
    )


@pytest.mark.parametrize(
    ("strategy", "service", "own", "reason"),
    [
        (
            "cheapest",
            "svc_hash_budget",
            "price 0.80 USDC, the lowest",
            "cheapest eligible quote: 0.80 USDC (svc_hash_budget)",
        ),
        (
            "best_score",
            "svc_hash_fast",
            "market score 0.92, the highest",
            "best market score 0.92: svc_hash_fast at 1.20 USDC",
        ),
    ],
)
def test_list_candidates_gives_the_strategys_reasons(
    loop: asyncio.Runner, make_agent: Factory, strategy: str, service: str, own: str, reason: str
) -> None:
    agent = make_agent(spec=replace(TASK.spec, strategy=strategy))
    order_id = call(loop, agent, "search_market")["order_id"]
    listed = call(loop, agent, "list_candidates", order_id=order_id)
    assert listed["strategy_reason"] == reason
    by_id = {c["quote_id"]: c for c in listed["candidates"]}
    top = by_id[listed["recommended"]]
    assert top["service_id"] == service and top["eligible"] is True
    # The strategy's own reasons follow the guard's line; the guard's alone for the ineligible.
    assert top["reasons"][0].startswith("eligible: ") and own in top["reasons"]
    (denied,) = [c for c in listed["candidates"] if c["service_id"] == "svc_hash_denied"]
    assert denied["eligible"] is False and denied["reasons"] == [
        "service svc_hash_denied is denied by the policy"
    ]
    # Once chosen, the order's candidates still carry the reasons and the decision it was made on.
    call(loop, agent, "choose_quote", order_id=order_id)
    after = call(loop, agent, "list_candidates", order_id=order_id)
    assert after["chosen"] == listed["recommended"] and after["strategy_reason"] == reason
    assert after["candidates"] == listed["candidates"]
    assert call(loop, agent, "cancel_order", order_id=order_id)["state"] == "cancelled"


def test_the_approval_threshold_holds_the_order_until_the_cli_approves(
    loop: asyncio.Runner, make_agent: Factory
) -> None:
    agent = make_agent(spec=replace(TASK.spec, approval_threshold=Money.parse("0.50 USDC")))
    order_id = call(loop, agent, "search_market")["order_id"]
    call(loop, agent, "choose_quote", order_id=order_id)
    held = call(loop, agent, "place_order", order_id=order_id)
    assert held["state"] == "awaiting_approval" and "approve" in held["hint"]
    assert held["next"] == ["cancel_order", "order_status"] and held["market_order_id"] is None
    err = call(loop, agent, "place_order", order_id=order_id)["error"]
    assert err["code"] == "STEP_OUT_OF_ORDER" and err["state"] == "awaiting_approval"
    assert err["allowed"] == ["cancel_order", "order_status"]
    err = call(loop, agent, "pay_order", order_id=order_id)["error"]
    assert err["code"] == "STEP_OUT_OF_ORDER"

    done = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "approve", order_id, "--state-dir", str(agent.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "approved" in done.stdout and "quoted" in done.stdout
    assert call(loop, agent, "order_status", order_id=order_id)["state"] == "quoted"
    assert call(loop, agent, "place_order", order_id=order_id)["state"] == "ordered"

    again = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "approve", order_id, "--state-dir", str(agent.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert again.returncode == 1 and "cannot approve" in again.stderr


@pytest.mark.parametrize("verdict", [True, False])
def test_an_approver_callback_decides_at_place_order(
    loop: asyncio.Runner, make_agent: Factory, verdict: bool
) -> None:
    asked: list[OrderSummary] = []

    async def approver(summary: OrderSummary) -> bool:
        asked.append(summary)
        return verdict

    spec = replace(TASK.spec, approval_threshold=Money.parse("0.50 USDC"))
    agent = make_agent(spec=spec, approver=approver)
    order_id = call(loop, agent, "search_market")["order_id"]
    call(loop, agent, "choose_quote", order_id=order_id)
    placed = call(loop, agent, "place_order", order_id=order_id)
    assert placed["state"] == ("ordered" if verdict else "cancelled")
    assert len(asked) == 1 and asked[0].state is OrderState.AWAITING_APPROVAL
    assert asked[0].quote is not None and asked[0].quote["price"]["amount"] == "0.80"


def test_orders_placed_on_another_market_are_read_not_driven(
    loop: asyncio.Runner, make_agent: Factory, tmp_path: Path
) -> None:
    agent = make_agent()
    order_id = call(loop, agent, "search_market")["order_id"]
    # Another agent on the same journal, on its own embedded sandbox: it can read, not drive.
    other = BuyerAgent(state_dir=agent.state_dir, spec=TASK.spec)
    try:
        status = call(loop, other, "order_status", order_id=order_id)
        assert status["state"] == "searched"
        err = call(loop, other, "choose_quote", order_id=order_id)["error"]
        assert err["code"] == "OTHER_MARKET"
    finally:
        loop.run(other.aclose())


def test_parallel_pay_calls_pay_once(loop: asyncio.Runner, make_agent: Factory) -> None:
    # Models may emit several tool calls in one turn; the same step twice must not pay twice.
    agent = make_agent()
    order_id = call(loop, agent, "search_market")["order_id"]
    call(loop, agent, "choose_quote", order_id=order_id)
    call(loop, agent, "place_order", order_id=order_id)

    async def both() -> list[dict[str, Any]]:
        args = {"order_id": order_id}
        return list(
            await asyncio.gather(agent.call_tool("pay_order", args), agent.call_tool("pay_order", args))
        )

    results = loop.run(both())
    paid = [r for r in results if r.get("state") == "paid"]
    refused = [r["error"] for r in results if "error" in r]
    assert len(paid) == 1 and len(refused) == 1, results
    assert refused[0]["code"] == "STEP_OUT_OF_ORDER" and refused[0]["state"] == "paid"
    signed = [e for e in agent.journal.events(order_id) if e.trigger == "intent:broadcast_payment"]
    assert len(signed) == 1


_STEPS = st.sampled_from(
    [
        "list_candidates",
        "choose_quote",
        "place_order",
        "pay_order",
        "execute_order",
        "confirm_order",
        "dispute_order",
        "cancel_order",
        "order_status",
    ]
)
_EXTRA = st.sampled_from(
    [{}, {}, {"amount": "0.01"}, {"quote_id": "quo_0000000000000000"}, {"reason": "x" * 600}]
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(_STEPS, _EXTRA), min_size=1, max_size=8))
def test_random_tool_sequences_on_a_live_order_never_raise_or_pay_twice(
    loop: asyncio.Runner, info: Any, tmp_path_factory: pytest.TempPathFactory, plan: list[Any]
) -> None:
    from buyer_agent.tools import ERROR_CODES

    agent = BuyerAgent(
        info.url,
        machine_id=info.machine_id,
        api_key=info.api_key,
        evm_key=info.evm_private_key,
        evm_rpc=info.evm_rpc_url,
        state_dir=tmp_path_factory.mktemp("fuzz"),
        spec=TASK.spec,
    )
    try:
        order_id = call(loop, agent, "search_market")["order_id"]
        for tool, extra in plan:
            args = {"order_id": order_id, **extra}
            if tool == "dispute_order":
                args.setdefault("reason", "not as described")
            result = call(loop, agent, tool, **args)
            if "error" in result:
                assert result["error"]["code"] in ERROR_CODES
        summary = agent.order(order_id)
        if summary.payment is not None:
            assert summary.quote is not None
            assert summary.payment["amount"] == summary.quote["price"]["amount"]
        signed = [e for e in agent.journal.events(order_id) if e.trigger == "intent:broadcast_payment"]
        assert len(signed) <= 1
    finally:
        loop.run(agent.aclose())
