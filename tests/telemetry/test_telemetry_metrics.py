"""MetricsObserver and the Prometheus endpoint: driven through the hooks, scraped over real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from telemetry_support import drive, golden_events

from buyer_agent._errors import OrchestrationNetworkError
from buyer_agent._money import Money
from buyer_agent.journal import Journal, LedgerChange, LedgerStatus, SqliteStore
from buyer_agent.telemetry import serve_metrics


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def _value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name{labels…}`` in Prometheus text (labels matched as a subset)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def test_the_endpoint_serves_orders_spend_retries_and_step_latency_after_real_orders() -> None:
    confirmed = golden_events("order_confirmed_v1")
    refunded = golden_events("order_refunded_v1")
    with serve_metrics(0) as endpoint:
        assert endpoint.url.startswith("http://127.0.0.1:")
        drive(endpoint.observer, confirmed, fail={"execute": OrchestrationNetworkError("no answer")})
        drive(endpoint.observer, refunded)
        text = _scrape(endpoint.url)
    assert _value(text, "buyer_agent_orders_total", state="confirmed") == 1
    assert _value(text, "buyer_agent_orders_total", state="refunded") == 1
    # Spend: the two payments' base units, an integer sum (never a float of dollars).
    paid = [e for e in (*confirmed, *refunded) if e.trigger == "pay"]
    units = sum(Money.from_json(e.payload["request"]["amount"]).amount for e in paid)
    pairing = next(e for e in confirmed if e.trigger == "pair").payload["pairing_id"]
    assert _value(text, "buyer_agent_spend_total", currency="USDC", decimals="6", pairing=pairing) == units
    # The cause is the error's code (every error of ours has one), never its class name.
    assert _value(text, "buyer_agent_retries_total", step="execute", cause="MARKET_UNREACHABLE") == 1
    # A latency histogram per step, with failed runs apart from the ones that went through.
    assert _value(text, "buyer_agent_step_duration_seconds_count", step="execute", outcome="ok") == 2
    assert _value(text, "buyer_agent_step_duration_seconds_count", step="execute", outcome="error") == 1
    assert _value(text, "buyer_agent_step_duration_seconds_count", step="refund", outcome="ok") == 1
    # The delegation policy's daily limit, from the pairing the orders journaled.
    policy = next(e for e in confirmed if e.trigger == "pair").payload["policy"]
    limit = policy["daily_spend_limit"]
    assert (
        _value(text, "buyer_agent_ledger_daily_limit", pairing=pairing, currency="USDC")
        == Money.from_json(limit).amount
    )


def test_open_commitments_are_read_from_the_stores_ledger() -> None:
    async def go() -> str:
        store = SqliteStore(Journal(":memory:"))
        usdc = Money(0, 6, "USDC")
        try:
            for order_id, amount, spent in (("ord_a", 1_250_000, False), ("ord_b", 700_000, True)):
                await store.create_order(order_id, {"task": {}})
                await store.record(
                    order_id,
                    "note:ledger",
                    "created",
                    "created",
                    ledger=LedgerChange(LedgerStatus.COMMITTED, "pair_1", Money(amount, 6, "USDC")),
                )
                if spent:
                    await store.record(
                        order_id, "note:paid", "created", "created", ledger=LedgerChange(LedgerStatus.SPENT)
                    )
            with serve_metrics(0, store=store) as endpoint:
                await endpoint.observer.refresh(day=datetime.now(UTC))
                return await asyncio.to_thread(_scrape, endpoint.url)
        finally:
            assert usdc.amount == 0
            await store.aclose()

    text = asyncio.run(go())
    assert (
        _value(text, "buyer_agent_ledger_committed", pairing="pair_1", currency="USDC", decimals="6")
        == 1_250_000
    )
    assert (
        _value(text, "buyer_agent_ledger_spent", pairing="pair_1", currency="USDC", decimals="6") == 700_000
    )


def test_the_endpoint_listens_on_loopback_only_and_stops_with_its_block() -> None:
    with serve_metrics(0) as endpoint:
        port = endpoint.port
        endpoint.observer.order_finished("ord_x", "cancelled")
        assert _value(_scrape(endpoint.url), "buyer_agent_orders_total", state="cancelled") == 1
    with pytest.raises(OSError):
        _scrape(f"http://127.0.0.1:{port}/metrics")


def _sandbox_with_metrics_port(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """``sandbox --metrics-port N`` up (its line read), N a port that was free a moment before.

    The port is probed, let go, and then bound by the command: another test's server may take it in
    between, and the command then exits 2 at once saying so. Only then is another port tried.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    for attempt in range(5):
        with socket.socket() as probe:  # a free port for the flag (the endpoint is made by the command)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        errors = tmp_path / f"stderr-{attempt}.txt"
        with errors.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "buyer_agent",
                    "--metrics-port",
                    str(port),
                    "sandbox",
                    "--state-dir",
                    str(tmp_path / f"state-{attempt}"),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
                env=env,
            )
        assert proc.stdout is not None
        if proc.stdout.readline():  # the sandbox is up, so is the endpoint
            return proc, port
        proc.stdout.close()
        code = proc.wait(timeout=30)
        said = errors.read_text(encoding="utf-8")
        assert code == 2 and "Address already in use" in said, (code, said[-2000:])
    raise AssertionError("five ports in a row were taken before the command could listen on them")


def test_metrics_port_serves_the_endpoint_while_a_command_runs(tmp_path: Path) -> None:
    proc, port = _sandbox_with_metrics_port(tmp_path)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    with pytest.raises(OSError):  # stopped with the command
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
