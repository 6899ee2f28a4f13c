"""TracingObserver: the span tree of an order (real journals through the drive hooks), calls, no secrets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from telemetry_support import drive, golden_events

from buyer_agent import _spans
from buyer_agent._errors import OrchestrationNetworkError
from buyer_agent.market import AsyncMarketClient
from buyer_agent.telemetry import Observers, TracingObserver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def traced() -> Iterator[tuple[TracingObserver, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = TracingObserver(provider)
    try:
        yield observer, exporter
    finally:
        observer.close()
        provider.shutdown()


def _by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_an_order_is_one_span_with_a_child_per_step_carrying_the_orders_facts(
    traced: tuple[TracingObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = traced
    events = golden_events("order_confirmed_v1")
    drive(observer, events)
    spans = exporter.get_finished_spans()
    (order,) = _by_name(spans, "buyer_agent.order")
    steps = [s for s in spans if s is not order]
    # Every step is a child of the order's span, in the order the journal moved.
    assert all(s.parent is not None and s.parent.span_id == order.context.span_id for s in steps)
    assert all(s.context.trace_id == order.context.trace_id for s in steps)
    moves = [e.trigger for e in events if e.src != e.dst]
    assert [s.name for s in sorted(steps, key=lambda s: s.start_time or 0)] == [
        f"buyer_agent.step.{m}" for m in moves
    ]
    attrs = dict(order.attributes or {})
    assert attrs["buyer_agent.order.id"] == events[0].order_id
    assert attrs["buyer_agent.order.state"] == "confirmed"
    assert attrs["buyer_agent.order.resumed"] is False
    # The order's facts, read through the one fold: service, price (integer base units), rail,
    # chain, transaction hash.
    paid = next(e for e in events if e.trigger == "paid")
    assert attrs["buyer_agent.payment.transaction_hash"] == paid.payload["tx"]
    assert isinstance(attrs["buyer_agent.price.amount"], int) and attrs["buyer_agent.price.amount"] > 0
    assert attrs["buyer_agent.price.currency"] == "USDC" and attrs["buyer_agent.price.decimals"] == 6
    assert attrs["buyer_agent.service.id"]
    assert attrs["buyer_agent.payment.rail"] and str(attrs["buyer_agent.payment.chain"]).startswith("eip155:")
    (pay,) = _by_name(spans, "buyer_agent.step.pay")
    pay_attrs = dict(pay.attributes or {})
    assert pay_attrs["buyer_agent.step"] == "pay"
    assert pay_attrs["buyer_agent.step.from_state"] == "ordered"
    assert pay_attrs["buyer_agent.order.state"] == "paying"
    assert pay_attrs["buyer_agent.step.retry_count"] == 0
    assert pay_attrs["buyer_agent.service.id"] == attrs["buyer_agent.service.id"]
    # The journal events of the step are span events.
    assert "pay" in [e.name for e in pay.events]


def test_a_resumed_order_says_so_on_every_span(traced: tuple[TracingObserver, InMemorySpanExporter]) -> None:
    observer, exporter = traced
    events = golden_events("order_refunded_v1")
    # Taken up again after the payment was journaled (as after a crash): from ``paying`` on.
    start = next(i for i, e in enumerate(events) if e.trigger == "pay") + 1
    drive(observer, events[start:], resumed=True)
    spans = exporter.get_finished_spans()
    (order,) = _by_name(spans, "buyer_agent.order")
    assert order.attributes is not None and order.attributes["buyer_agent.order.resumed"] is True
    assert order.attributes["buyer_agent.order.state"] == "refunded"
    names = [s.name for s in spans if s is not order]
    assert names == [
        "buyer_agent.step.paid",
        "buyer_agent.step.execute",
        "buyer_agent.step.dispute",
        "buyer_agent.step.refund",
    ]
    assert all((s.attributes or {}).get("buyer_agent.order.resumed") is True for s in spans)


def test_a_failed_step_is_an_error_span_and_its_rerun_counts_a_retry(
    traced: tuple[TracingObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = traced
    events = golden_events("order_confirmed_v1")
    drive(observer, events, fail={"execute": OrchestrationNetworkError("the market did not answer")})
    executes = sorted(
        _by_name(exporter.get_finished_spans(), "buyer_agent.step.execute"), key=lambda s: s.start_time or 0
    )
    assert len(executes) == 2
    failed, rerun = executes
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "MARKET_UNREACHABLE"  # its code, not its class
    assert (failed.attributes or {})["buyer_agent.step.retry_count"] == 0
    assert rerun.status.status_code is not StatusCode.ERROR
    assert (rerun.attributes or {})["buyer_agent.step.retry_count"] == 1


def test_market_http_calls_are_client_spans_under_the_running_step(
    traced: tuple[TracingObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = traced
    api_key = "sk_live_this_must_never_be_on_a_span"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/market/orders/ord_missing"):
            return httpx.Response(404, json={"error": {"code": "NOT_FOUND", "message": "no such order"}})
        return httpx.Response(200, json={"services": [], "pagination": {"total": 0}})

    async def calls() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with AsyncMarketClient("http://127.0.0.1:9/", api_key=api_key, http_client=http) as client:
            observer.order_started("ord_http", "created", resumed=False)
            observer.step_started("ord_http", "search", "paired")
            with pytest.raises(Exception, match="no such order"):
                await client.get_market_order("ord_missing", pairing_token="tok_secret_pairing_token")
            observer.step_finished("ord_http", "search", "paired", error=None)
            observer.order_finished("ord_http", "paired")

    asyncio.run(calls())
    spans = exporter.get_finished_spans()
    (get,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    (step,) = _by_name(spans, "buyer_agent.step.search")
    assert get.parent is not None and get.parent.span_id == step.context.span_id
    attrs = dict(get.attributes or {})
    # OpenTelemetry HTTP client conventions: name = method; method, url, server, status, error.type.
    assert get.name == "GET"
    assert attrs["http.request.method"] == "GET"
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == 9
    assert str(attrs["url.full"]).endswith("/market/orders/ord_missing")
    assert attrs["http.response.status_code"] == 404 and attrs["error.type"] == "404"
    assert get.status.status_code is StatusCode.ERROR
    _assert_no_secret(spans, api_key, "tok_secret_pairing_token")


def test_rpc_calls_name_their_json_rpc_method_and_keep_the_node_urls_path_out() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = TracingObserver(provider)
    try:
        span = _spans.http_client_span(
            "POST", "https://user:pw@rpc.example/v3/INFURA_KEY_abc?x=1", rpc_method="eth_chainId"
        )
        span.end()
    finally:
        observer.close()
    (rpc,) = exporter.get_finished_spans()
    attrs = dict(rpc.attributes or {})
    assert rpc.kind is SpanKind.CLIENT
    assert attrs["rpc.system"] == "jsonrpc" and attrs["rpc.method"] == "eth_chainId"
    assert attrs["server.address"] == "rpc.example" and attrs["server.port"] == 443
    # A node URL often carries an API key in its path or user info: neither is on the span.
    _assert_no_secret([rpc], "INFURA_KEY_abc", "pw", "user:")


def test_tool_calls_are_genai_execute_tool_spans(
    traced: tuple[TracingObserver, InMemorySpanExporter],
) -> None:
    _observer, exporter = traced

    async def call() -> None:
        from buyer_agent.tools import AgentTools

        tools = AgentTools.__new__(AgentTools)  # only the dispatcher's own checks run below
        tools._handlers = {}  # type: ignore[attr-defined]
        out = await tools.call("order_status", {"order_id": 42, "api_key": "sk_tool_secret"})
        assert "error" in out
        out = await tools.call("not_a_tool<script>", {})
        assert out["error"]["code"] == "UNKNOWN_TOOL"

    asyncio.run(call())
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["execute_tool order_status", "execute_tool unknown"]
    first = dict(spans[0].attributes or {})
    assert first["gen_ai.operation.name"] == "execute_tool"
    assert first["gen_ai.tool.name"] == "order_status" and first["gen_ai.tool.type"] == "function"
    assert first["error.type"]  # the tool's error code
    assert spans[0].status.status_code is StatusCode.ERROR
    _assert_no_secret(spans, "sk_tool_secret", "<script>")


def test_observers_keep_a_failing_observer_from_stopping_the_others(
    traced: tuple[TracingObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = traced

    class Broken:
        def __getattr__(self, name: str) -> Any:
            def boom(*args: Any, **kwargs: Any) -> None:
                raise RuntimeError("observer bug")

            return boom

    drive(Observers(Broken(), observer), golden_events("order_confirmed_v1"))  # type: ignore[arg-type]
    assert _by_name(exporter.get_finished_spans(), "buyer_agent.order")


def _assert_no_secret(spans: Any, *secrets: str) -> None:
    for span in spans:
        text = json.dumps(
            {
                "name": span.name,
                "attributes": dict(span.attributes or {}),
                "events": [[e.name, dict(e.attributes or {})] for e in span.events],
            },
            default=str,
        )
        for secret in secrets:
            assert secret not in text, (secret, span.name)


def test_without_tracing_nothing_of_opentelemetry_is_imported_and_asking_for_it_says_how_to_install() -> None:
    code = """
import sys, importlib.abc

import buyer_agent, buyer_agent.cli, buyer_agent.telemetry, buyer_agent.market, buyer_agent.rails
from buyer_agent import _spans
_spans.http_client_span("GET", "http://127.0.0.1:1/x").end()
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported without being asked"

class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoOtel())
from buyer_agent.telemetry import OTEL_MISSING, MetricsObserver, TracingObserver
for make in (TracingObserver, MetricsObserver):
    try:
        make()
    except ImportError as exc:
        assert str(exc) == OTEL_MISSING, exc
    else:
        raise AssertionError("made without OpenTelemetry")
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
