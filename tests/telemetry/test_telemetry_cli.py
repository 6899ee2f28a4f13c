"""Tracing on the command line: the standard ``OTEL_*`` variables send run, resume and mcp spans out.

A small OTLP/HTTP receiver on 127.0.0.1 stands in for the collector; the CLI runs as a subprocess
against a served sandbox, with nothing but the environment switching tracing on. The agent runs in
token mode with a pairing this test made, so the token is known and every exported attribute
(resource included) is scanned for it and for the keys.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from telemetry_support import (
    ROOT,
    OtlpCollector,
    SpanRecord,
    assert_no_secret,
    clean_env,
    cli,
    market_env,
    secrets_of,
    served_sandbox,
    spans_of_order,
)

from buyer_agent._errors import OrchestrationConfigError
from buyer_agent.journal import DB_NAME
from buyer_agent.market import AsyncMarketClient
from buyer_agent.telemetry._setup import trace_exporter_names
from buyer_agent.workflow import PairingSession

TASK = str(ROOT / "examples" / "task.yaml")
STEPS = ("pair", "search", "choose", "order", "pay", "broadcast", "prove", "execute", "confirm")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with served_sandbox(tmp_path_factory.mktemp("sandbox")) as info:
        yield info


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    c = OtlpCollector()
    try:
        yield c
    finally:
        c.close()


def _pairing(info: dict[str, Any]) -> tuple[str, str]:
    """A pairing made here (the operator's), so the run's token is known to the test."""

    async def go() -> tuple[str, str]:
        async with AsyncMarketClient(info["url"], api_key=info["api_key"]) as market:
            session = PairingSession.with_platform_key(
                market, machine_id=info["machine_id"], agent_key=info["wallets"]["evm"]["private_key"]
            )
            token = await session.token()
            return str(session.pairing_id), token.reveal()

    return asyncio.run(go())


def _traced_env(info: dict[str, Any], collector: OtlpCollector, **extra: str) -> tuple[dict[str, str], str]:
    pairing_id, token = _pairing(info)
    env = market_env(
        info,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        PEAQOS_AGENT_PAIRING_ID=pairing_id,
        PEAQOS_AGENT_PAIRING_TOKEN=token,
        **extra,
    )
    return env, token


def _steps(spans: list[SpanRecord], order: SpanRecord) -> list[str]:
    ids = {order.span_id}
    names = []
    for span in sorted(spans, key=lambda s: s.start):
        if span.parent_id in ids and span.name.startswith("buyer_agent.step."):
            ids.add(span.span_id)
            names.append(str(span.attributes["buyer_agent.step"]))
    return names


def _in_order(names: list[str], wanted: tuple[str, ...]) -> bool:
    """``wanted`` appear in ``names`` in this order (others may come between)."""
    rest = iter(names)
    return all(any(n == w for n in rest) for w in wanted)


def _named(spans: list[SpanRecord], name: str) -> list[SpanRecord]:
    return [s for s in spans if s.name == name]


def _calls_under_steps(below: list[SpanRecord], *, rpc: bool = True) -> None:
    """Market HTTP calls (and chain RPC calls, when the steps pay) are client spans of the steps."""
    steps = {s.span_id for s in below if s.name.startswith("buyer_agent.step.")}
    calls = [s for s in below if s.kind == "CLIENT"]
    assert any("url.full" in s.attributes for s in calls)
    assert any("rpc.method" in s.attributes for s in calls) is rpc
    assert all(c.parent_id in steps for c in calls)


def test_run_sends_the_orders_trace_to_the_collector_the_otlp_endpoint_names(
    sandbox: dict[str, Any], collector: OtlpCollector, tmp_path: Path
) -> None:
    env, token = _traced_env(sandbox, collector)
    proc = cli("run", TASK, "--json", "--market", sandbox["url"], "--state-dir", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # stdout is still the command's JSON alone
    # The spans were sent before the command exited (the batch is flushed at the end).
    order, below = spans_of_order(collector.spans, out["order_id"])
    assert order.resource["service.name"] == "buyer-agent" and order.resource["service.version"]
    assert order.attributes["buyer_agent.order.state"] == "confirmed"
    assert order.attributes["buyer_agent.payment.transaction_hash"] == out["payment"]["tx"]
    assert order.attributes["buyer_agent.order.resumed"] is False
    names = _steps(below, order)
    # In token mode the agent does not know the pairing's policy: the market refuses the denied
    # service first and the order falls back to the next quote (a second run of the order step).
    assert _in_order(names, STEPS), names
    _calls_under_steps(below)
    assert_no_secret(collector.spans, secrets_of(sandbox, token))


def test_resume_sends_spans_that_say_the_order_was_resumed(
    sandbox: dict[str, Any], collector: OtlpCollector, tmp_path: Path
) -> None:
    env, token = _traced_env(sandbox, collector, OTEL_SERVICE_NAME="buyer-fleet-a")
    crashed = cli(
        "run", TASK, "--market", sandbox["url"], "--state-dir", str(tmp_path),
        env={**env, "BUYER_AGENT_CRASH_AFTER": "paid"},
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    before = {s.span_id for s in collector.spans}  # what the killed process had sent, if anything
    resumed = cli("resume", "--json", "--state-dir", str(tmp_path), env=env)
    assert resumed.returncode == 0, resumed.stderr
    (summary,) = json.loads(resumed.stdout)
    spans = [s for s in collector.spans if s.span_id not in before]
    order, below = spans_of_order(spans, summary["order_id"])
    assert order.resource["service.name"] == "buyer-fleet-a"  # OTEL_SERVICE_NAME wins
    assert order.attributes["buyer_agent.order.resumed"] is True
    # The payment made before the kill is on the resumed order's span, from its journal.
    assert order.attributes["buyer_agent.payment.transaction_hash"] == summary["payment"]["tx"]
    names = _steps(below, order)
    assert names[0] == "execute" and "confirm" in names and "pay" not in names
    steps = [s for s in below if "buyer_agent.step" in s.attributes]
    assert steps and all(s.attributes["buyer_agent.order.resumed"] is True for s in steps)
    _calls_under_steps(below, rpc=False)  # paid before the kill: execute and confirm move no money
    assert_no_secret(collector.spans, secrets_of(sandbox, token))


def test_mcp_tool_calls_are_execute_tool_spans_under_the_servers_tools_call_spans(
    sandbox: dict[str, Any], collector: OtlpCollector, tmp_path: Path
) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    env, token = _traced_env(sandbox, collector, OTEL_BSP_SCHEDULE_DELAY="50")
    env["PEAQOS_ORCHESTRATION_URL"] = sandbox["url"]
    env["PYTHONPATH"] = str(ROOT)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "buyer_agent", "mcp", "--task", TASK, "--state-dir", str(tmp_path)],
        env=env,
        cwd=ROOT,
    )
    tools = ["search_market", "choose_quote", "place_order", "pay_order", "execute_order", "confirm_order"]

    async def go() -> str:
        async with (
            stdio_client(params, errlog=sys.stderr) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            order_id = ""
            for name in tools:
                res = await session.call_tool(name, {"order_id": order_id} if order_id else {})
                data = json.loads(res.content[0].text)  # type: ignore[union-attr]
                assert "error" not in data, data
                order_id = order_id or data["order_id"]
            assert data["state"] == "confirmed"
            return order_id

    order_id = asyncio.run(asyncio.wait_for(go(), timeout=120))
    deadline = time.monotonic() + 30  # the batch goes out every 50 ms, and at the end
    while time.monotonic() < deadline and not _named(collector.spans, "tools/call confirm_order"):
        time.sleep(0.1)
    spans = collector.spans
    for name in tools:
        (server,) = [s for s in spans if s.name == f"tools/call {name}"]
        # The MCP server's own span (the mcp package's), then ours inside it: GenAI conventions.
        assert server.kind == "SERVER" and server.attributes["gen_ai.tool.name"] == name
        (tool,) = [s for s in spans if s.name == f"execute_tool {name}"]
        assert tool.parent_id == server.span_id and tool.trace_id == server.trace_id
        assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
        assert (
            tool.attributes["gen_ai.tool.name"] == name and tool.attributes["gen_ai.tool.type"] == "function"
        )
    # The order's spans are below the tool that drove them: pay_order holds the payment's steps.
    (pay_tool,) = _named(spans, "execute_tool pay_order")
    (pay_order,) = [s for s in _named(spans, "buyer_agent.order") if s.parent_id == pay_tool.span_id]
    assert pay_order.attributes["buyer_agent.order.id"] == order_id
    assert {"pay", "broadcast"} <= set(_steps(spans, pay_order))
    assert_no_secret(spans, secrets_of(sandbox, token))


def test_a_bad_tracing_setting_is_one_line_and_exit_2_before_any_order(tmp_path: Path) -> None:
    for extra, named in (
        ({"OTEL_TRACES_EXPORTER": "zipkin-nope"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/xml"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ):
        proc = cli("run", TASK, "--state-dir", str(tmp_path), env=clean_env(**extra), timeout=120)
        assert proc.returncode == 2, proc.stderr
        (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
        assert line.startswith("error: ") and named in line, line
        assert not (tmp_path / DB_NAME).exists()  # refused before any order was journaled


def test_without_otel_variables_a_run_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    code = f"""
import sys
from buyer_agent.cli import main
code = main(["run", {TASK!r}, "--state-dir", {str(tmp_path)!r}])
assert code == 0, code
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported without being asked"
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=clean_env(), timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp_proto_http"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        (
            {"OTEL_TRACES_EXPORTER": "console, otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            ["console", "otlp_proto_grpc"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["otlp_proto_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_which_exporters_the_standard_variables_ask_for(env: dict[str, str], names: list[str]) -> None:
    assert trace_exporter_names(env) == names


def test_an_otlp_protocol_no_exporter_speaks_names_the_variable() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "carrier"}
    with pytest.raises(OrchestrationConfigError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        trace_exporter_names(env)
