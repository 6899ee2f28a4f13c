"""Traces of real orders on a served sandbox, caught by the SDK's in-memory exporter.

A bought order, an order driven tool call by tool call through ``BuyerAgent.call_tool``, and an
order whose CLI run was SIGKILLed after its signed payment was journaled and which this process
resumes: each span tree is checked (order → steps → market HTTP and chain RPC calls), with the
attributes the issue lists, and every attribute of every span is scanned for the run's keys and
pairing token.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry_support import (
    ROOT,
    SpanRecord,
    assert_no_secret,
    cli,
    from_sdk,
    market_env,
    secrets_of,
    served_sandbox,
    spans_of_order,
)

from buyer_agent import BuyerAgent
from buyer_agent.journal import Journal
from buyer_agent.task import load_task
from buyer_agent.telemetry import TracingObserver
from buyer_agent.workflow import fold

pytestmark = pytest.mark.chains

TASK = ROOT / "examples" / "task.yaml"
#: The steps the issue names that a direct EVM payment goes through.
STEPS = ("pair", "search", "choose", "order", "pay", "broadcast", "prove", "execute", "confirm")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with served_sandbox(tmp_path_factory.mktemp("sandbox")) as info:
        yield info


class Traced:
    """A tracing observer whose spans land in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.observer = TracingObserver(self.provider)

    def spans(self) -> list[SpanRecord]:
        return from_sdk(self.exporter.get_finished_spans())

    def close(self) -> None:
        self.observer.close()
        self.provider.shutdown()


@pytest.fixture
def traced() -> Iterator[Traced]:
    t = Traced()
    try:
        yield t
    finally:
        t.close()


def _agent(info: dict[str, Any], state_dir: Path, observer: Any) -> BuyerAgent:
    return BuyerAgent(
        info["url"],
        machine_id=info["machine_id"],
        api_key=info["api_key"],
        evm_key=info["wallets"]["evm"]["private_key"],
        evm_rpc=info["evm"]["rpc_url"],
        solana_key=info["wallets"]["solana"]["secret_key"],
        solana_rpc=info["solana"]["rpc_url"],
        state_dir=state_dir,
        spec=load_task(TASK).spec,
        observer=observer,
    )


async def _token(agent: BuyerAgent) -> str:
    return (await (await agent.pairing()).token()).reveal()


def _children(spans: list[SpanRecord], parent: SpanRecord) -> list[SpanRecord]:
    """The spans right below ``parent``, in the order they started."""
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start)


def _steps(spans: list[SpanRecord], order: SpanRecord) -> list[SpanRecord]:
    """Every step span below ``order`` (parts of steps too), in the order they started."""
    ids = {order.span_id}
    found: list[SpanRecord] = []
    for span in sorted(spans, key=lambda s: s.start):
        if span.parent_id in ids and span.name.startswith("buyer_agent.step."):
            ids.add(span.span_id)
            found.append(span)
    return found


def _name_of(spans: list[SpanRecord], span_id: str | None) -> str:
    (span,) = [s for s in spans if s.span_id == span_id]
    return span.name


def _calls(spans: list[SpanRecord]) -> tuple[list[SpanRecord], list[SpanRecord]]:
    """The market's HTTP client spans and the chain's JSON-RPC client spans."""
    client = [s for s in spans if s.kind == "CLIENT"]
    return [s for s in client if "rpc.system" not in s.attributes], [
        s for s in client if s.attributes.get("rpc.system") == "jsonrpc"
    ]


def _check_market_span(span: SpanRecord, info: dict[str, Any]) -> None:
    """The OpenTelemetry HTTP client conventions, and a URL without query or user info."""
    attrs = span.attributes
    assert span.name in ("GET", "POST", "PATCH", "DELETE") and attrs["http.request.method"] == span.name
    assert attrs["server.address"] == "127.0.0.1"
    assert f":{attrs['server.port']}" in info["url"] and attrs["url.scheme"] == "http"
    assert str(attrs["url.full"]).startswith(info["url"]) and "?" not in str(attrs["url.full"])
    assert 200 <= int(attrs["http.response.status_code"]) < 300


def test_a_real_order_is_one_trace_the_order_its_steps_and_the_calls_each_step_made(
    sandbox: dict[str, Any], traced: Traced, tmp_path: Path
) -> None:
    async def go() -> tuple[Any, str]:
        async with _agent(sandbox, tmp_path, traced.observer) as agent:
            summary = await agent.buy()
            return summary, await _token(agent)

    summary, token = asyncio.run(go())
    assert summary.state.value == "confirmed"
    spans = traced.spans()
    order, below = spans_of_order(spans, summary.order_id)
    assert order.parent_id is None
    # The order's facts on its span: id, state, service, price in base units, rail, chain, tx.
    attrs = order.attributes
    assert attrs["buyer_agent.order.state"] == "confirmed" and attrs["buyer_agent.order.resumed"] is False
    assert attrs["buyer_agent.service.id"] == summary.quote["service_id"]
    payment = summary.payment
    assert attrs["buyer_agent.price.amount"] == int(Decimal(str(payment["amount"])) * 10**6)
    assert (attrs["buyer_agent.price.currency"], attrs["buyer_agent.price.decimals"]) == ("USDC", 6)
    assert attrs["buyer_agent.payment.rail"] == payment["rail"] == "wallet"
    assert attrs["buyer_agent.payment.chain"] == payment["chain"] == sandbox["evm"]["chain"]
    assert attrs["buyer_agent.payment.transaction_hash"] == payment["tx"]
    assert attrs["buyer_agent.market_order.id"] == summary.market_order_id
    # A span per step, in the order the journal moved, each with the order's facts so far; a part
    # of a step (broadcast and prove in settle, release in confirm) is a child of that step.
    steps = _steps(spans, order)
    names = [s.attributes["buyer_agent.step"] for s in steps]
    assert [n for n in names if n in STEPS] == list(STEPS)
    assert all(s.name == f"buyer_agent.step.{s.attributes['buyer_agent.step']}" for s in steps)
    by_name = {s.attributes["buyer_agent.step"]: s for s in steps}
    parent = {n: _name_of(spans, s.parent_id) for n, s in by_name.items()}
    assert parent["broadcast"] == parent["prove"] == "buyer_agent.step.settle"
    assert parent["release"] == "buyer_agent.step.confirm"
    assert all(parent[n] == "buyer_agent.order" for n in STEPS if n not in ("broadcast", "prove"))
    for step in steps:
        assert step.attributes["buyer_agent.order.id"] == summary.order_id
        assert step.attributes["buyer_agent.step.retry_count"] == 0
        assert step.attributes["buyer_agent.order.resumed"] is False
        assert step.status != "ERROR"
    assert by_name["pay"].attributes["buyer_agent.step.from_state"] == "ordered"
    assert by_name["settle"].attributes["buyer_agent.order.state"] == "paid"
    assert by_name["confirm"].attributes["buyer_agent.order.state"] == "confirmed"
    # Each fact goes on the step that learned it (all of them on the order's span): the price, rail
    # and chain on choose, the signed transaction on pay; the service on every step from choose on.
    chose = by_name["choose"].attributes
    assert chose["buyer_agent.price.amount"] == attrs["buyer_agent.price.amount"]
    assert (chose["buyer_agent.payment.rail"], chose["buyer_agent.payment.chain"]) == (
        "wallet",
        payment["chain"],
    )
    assert by_name["pay"].attributes["buyer_agent.payment.transaction_hash"] == payment["tx"]
    assert "buyer_agent.payment.transaction_hash" not in by_name["execute"].attributes
    after = names[names.index("choose") :]
    assert all(
        by_name[n].attributes["buyer_agent.service.id"] == attrs["buyer_agent.service.id"] for n in after
    )
    # Every call the order made is a client span of the step that made it.
    market, rpc = _calls(below)
    step_ids = {s.span_id: s.attributes["buyer_agent.step"] for s in steps}
    assert market and rpc and all(c.parent_id in step_ids for c in (*market, *rpc))
    for span in market:
        _check_market_span(span, sandbox)
    by_step: dict[str, set[str]] = {}
    for span in market:
        by_step.setdefault(step_ids[span.parent_id or ""], set()).add(str(span.attributes["url.full"]))
    assert any("/search" in u for u in by_step["search"])
    assert any("pair" in u for u in by_step["pair"])
    for step in ("order", "pay", "prove", "execute", "confirm"):
        assert by_step.get(step), f"no market call under {step}"
    sent = [s for s in rpc if s.attributes["rpc.method"] == "eth_sendRawTransaction"]
    assert len(sent) == 1 and step_ids[sent[0].parent_id or ""] == "broadcast"
    for span in rpc:
        assert span.attributes["server.address"] == "127.0.0.1" and "url.full" not in span.attributes
    # Nothing else was traced: every span of the run belongs to the order's trace.
    assert {s.trace_id for s in spans} == {order.trace_id}
    assert_no_secret(spans, secrets_of(sandbox, token))


def test_tool_calls_are_genai_spans_with_the_orders_spans_below_them(
    sandbox: dict[str, Any], traced: Traced, tmp_path: Path
) -> None:
    calls = [
        ("search_market", {}),
        ("list_candidates", None),
        ("choose_quote", None),
        ("place_order", None),
        ("pay_order", {"amount": "0.01"}),  # refused: the model never sets an amount
        ("pay_order", None),
        ("execute_order", None),
        ("confirm_order", None),
    ]

    async def go() -> tuple[str, str, list[dict[str, Any]]]:
        async with _agent(sandbox, tmp_path, traced.observer) as agent:
            results: list[dict[str, Any]] = []
            order_id = ""
            for name, extra in calls:
                args = {"order_id": order_id} if order_id else {}
                args.update(extra or {})
                results.append(await agent.call_tool(name, args))
                order_id = order_id or results[0]["order_id"]
            return order_id, await _token(agent), results

    order_id, token, results = asyncio.run(go())
    assert results[-1]["state"] == "confirmed"
    assert results[4]["error"]["code"] == "ARGUMENT_REFUSED"
    spans = traced.spans()
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert [s.name for s in tools] == [f"execute_tool {name}" for name, _ in calls]
    for span in tools:
        # The GenAI semantic conventions for a tool run.
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.attributes["gen_ai.tool.name"] == span.name.removeprefix("execute_tool ")
        assert span.attributes["gen_ai.tool.type"] == "function"
        assert span.kind == "INTERNAL" and span.parent_id is None
    refused = tools[4]
    assert refused.status == "ERROR" and refused.attributes["error.type"] == "ARGUMENT_REFUSED"
    assert all(s.status != "ERROR" for i, s in enumerate(tools) if i != 4)
    # Each tool that drove the order holds that drive's order span, and the steps below it.
    pay = tools[5]
    (order,) = [s for s in _children(spans, pay) if s.name == "buyer_agent.order"]
    assert order.attributes["buyer_agent.order.id"] == order_id
    assert order.attributes["buyer_agent.order.resumed"] is True  # taken up again by each tool call
    pay_steps = {s.attributes["buyer_agent.step"] for s in _steps(spans, order)}
    assert {"pay", "settle", "broadcast", "prove"} <= pay_steps
    # search_market pairs, then searches: each step a take-up of the order, both under the tool.
    searched = [s for s in _children(spans, tools[0]) if s.name == "buyer_agent.order"]
    assert [[x.attributes["buyer_agent.step"] for x in _steps(spans, o)] for o in searched] == [
        ["pair"],
        ["search"],
    ]
    assert_no_secret(spans, secrets_of(sandbox, token))


def test_a_resumed_order_s_spans_say_so_and_carry_what_was_journaled_before_the_crash(
    sandbox: dict[str, Any], traced: Traced, tmp_path: Path
) -> None:
    # The CLI is killed right after the signed payment is journaled, before it is broadcast.
    env = market_env(sandbox, BUYER_AGENT_CRASH_AFTER="intent:broadcast_payment")
    crashed = cli("run", str(TASK), "--market", sandbox["url"], "--state-dir", str(tmp_path), env=env)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    journal = Journal.open_dir(tmp_path)
    try:
        (record,) = journal.orders()
        before = fold(journal.events(record.order_id))
    finally:
        journal.close()
    assert record.state == "paying" and before.txs
    signed = before.txs[-1].tx_id

    async def go() -> tuple[list[Any], str]:
        async with _agent(sandbox, tmp_path, traced.observer) as agent:
            return await agent.resume(), await _token(agent)

    (summary,), token = asyncio.run(go())
    assert summary.state.value == "confirmed" and summary.payment["tx"] == signed  # never signed anew
    spans = traced.spans()
    order, below = spans_of_order(spans, record.order_id)
    attrs = order.attributes
    assert attrs["buyer_agent.order.resumed"] is True
    # What the crashed run journaled is on the resumed order's span: service, price, rail, the tx.
    assert attrs["buyer_agent.service.id"] == before.choice.service_id  # type: ignore[union-attr]
    assert attrs["buyer_agent.payment.transaction_hash"] == signed
    assert attrs["buyer_agent.price.amount"] == before.request.amount.amount  # type: ignore[union-attr]
    assert attrs["buyer_agent.payment.rail"] == "wallet" and attrs["buyer_agent.order.state"] == "confirmed"
    steps = _steps(spans, order)
    names = [s.attributes["buyer_agent.step"] for s in steps]
    # Only what was left runs: settling the journaled payment (its broadcast first), then the rest.
    assert names[:2] == ["settle", "broadcast"]
    assert not {"pair", "search", "choose", "order", "pay"} & set(names)
    assert {"prove", "execute", "confirm"} <= set(names)
    for step in steps:
        assert step.attributes["buyer_agent.order.resumed"] is True
        assert step.attributes["buyer_agent.step.from_state"]
    first = steps[1]
    assert first.attributes["buyer_agent.step.from_state"] == "paying"
    assert first.attributes["buyer_agent.service.id"] == before.choice.service_id  # type: ignore[union-attr]
    market, rpc = _calls(below)
    step_ids = {s.span_id for s in steps}
    assert all(c.parent_id in step_ids for c in (*market, *rpc))
    for span in market:
        _check_market_span(span, sandbox)
    # The journaled bytes go out under the broadcast step (the same transaction, not a new one).
    assert [s.parent_id for s in rpc if s.attributes["rpc.method"] == "eth_sendRawTransaction"] == [
        first.span_id
    ]
    assert_no_secret(spans, secrets_of(sandbox, token))
