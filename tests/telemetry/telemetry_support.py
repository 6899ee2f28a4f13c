"""Shared by the telemetry tests: golden journals through the hooks, and real runs on a served sandbox."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cli_fork

from buyer_agent.journal import Event, open_journal_file
from buyer_agent.workflow import DriveObserver

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def golden_events(name: str) -> list[Event]:
    """The events of a committed golden journal (``order_confirmed_v1``, ``order_refunded_v1``)."""
    out: list[Event] = []
    for _, _, doc in open_journal_file(GOLDEN / f"{name}.jsonl").events:
        assert doc is not None
        out.append(
            Event(
                str(doc["order_id"]),
                int(doc["seq"]),
                str(doc["at"]),
                str(doc["trigger"]),
                str(doc["src"]),
                str(doc["dst"]),
                dict(doc.get("payload") or {}),
                str(doc["prev_hash"]),
                str(doc["hash"]),
            )
        )
    return out


def drive(
    observer: DriveObserver,
    events: Sequence[Event],
    *,
    resumed: bool = False,
    fail: dict[str, BaseException] | None = None,
) -> None:
    """Call the hooks as the drive loop does: each state change ends a step named by its trigger.

    The events up to and including a move (``src != dst``) belong to that move's step; the first
    event (``submit``) happens before the loop takes the order up. ``fail`` makes the named step end
    with that error once, then run again (a retry) and succeed.
    """
    fail = dict(fail or {})
    order_id = events[0].order_id
    first = 1 if events[0].trigger == "submit" and not resumed else 0
    if first:
        observer.event(events[0])
    state = events[first].src
    observer.order_started(order_id, state, resumed=resumed)
    pending: list[Event] = []
    for ev in events[first:]:
        pending.append(ev)
        if ev.src == ev.dst:
            continue
        step = ev.trigger
        if step in fail:
            observer.step_started(order_id, step, state)
            observer.step_finished(order_id, step, state, error=fail.pop(step))
        observer.step_started(order_id, step, state)
        for p in pending:
            observer.event(p)
        pending.clear()
        state = ev.dst
        observer.step_finished(order_id, step, state, error=None)
    observer.order_finished(order_id, state)


# --- real runs: a served sandbox, in-memory traces, an OTLP collector, the run's secrets -----------

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PEAQOS_ / BUYER_AGENT_ / OTEL_ variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_", "OTEL_"))}
    env.update(extra)
    return env


def market_env(info: Mapping[str, Any], **extra: str) -> dict[str, str]:
    """The environment pointing the CLI (or ``BuyerAgent.from_env``) at a served sandbox's keys."""
    return clean_env(
        PEAQOS_API_KEY=info["api_key"],
        PEAQOS_MACHINE_ID=info["machine_id"],
        BUYER_AGENT_EVM_KEY=info["wallets"]["evm"]["private_key"],
        BUYER_AGENT_EVM_RPC=info["evm"]["rpc_url"],
        BUYER_AGENT_SOLANA_KEY=info["wallets"]["solana"]["secret_key"],
        BUYER_AGENT_SOLANA_RPC=info["solana"]["rpc_url"],
        **extra,
    )


def cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS``, forked off a process that imported it once (``tests/cli_fork.py``)."""
    return cli_fork.run(*args, env=env, timeout=timeout)


@contextmanager
def served_sandbox(state_dir: Path) -> Iterator[dict[str, Any]]:
    """``python -m buyer_agent sandbox`` in a subprocess (market state in memory); its JSON line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", "sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=state_dir,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the sandbox printed no JSON line"
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def secrets_of(info: Mapping[str, Any], *more: str) -> list[str]:
    """The keys a run on the sandbox holds (API key, EVM and Solana keys), plus ``more`` (a token)."""
    evm = str(info["wallets"]["evm"]["private_key"])
    found = [str(info["api_key"]), evm, evm.removeprefix("0x"), str(info["wallets"]["solana"]["secret_key"])]
    return [s for s in (*found, *more) if s]


@dataclass(frozen=True)
class SpanRecord:
    """One span as a collector sees it, whichever way it came (the in-memory exporter or OTLP)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status: str
    resource: dict[str, Any]
    start: int = 0
    """Start time in nanoseconds."""

    def attr(self, key: str) -> Any:
        """One attribute (KeyError when missing)."""
        return self.attributes[key]


def from_sdk(spans: Sequence[Any]) -> list[SpanRecord]:
    """The in-memory exporter's ``ReadableSpan``s as records."""
    out = []
    for s in spans:
        out.append(
            SpanRecord(
                name=s.name,
                trace_id=f"{s.context.trace_id:032x}",
                span_id=f"{s.context.span_id:016x}",
                parent_id=f"{s.parent.span_id:016x}" if s.parent is not None else None,
                kind=s.kind.name,
                attributes=dict(s.attributes or {}),
                events=[(e.name, dict(e.attributes or {})) for e in s.events],
                status=s.status.status_code.name,
                resource=dict(s.resource.attributes),
                start=int(s.start_time or 0),
            )
        )
    return out


def assert_no_secret(spans: Sequence[SpanRecord], secrets: Sequence[str]) -> None:
    """No secret in any span's name, attribute (key or value), event or resource attribute."""
    assert secrets
    for span in spans:
        text = json.dumps([span.name, span.attributes, span.events, span.resource, span.status], default=str)
        for secret in secrets:
            assert secret not in text, (span.name, "holds a secret")


def spans_of_order(spans: Sequence[SpanRecord], order_id: str) -> tuple[SpanRecord, list[SpanRecord]]:
    """The order's span and every span of its trace below it (steps, calls)."""
    orders = [s for s in spans if s.name == "buyer_agent.order"]
    (order,) = [s for s in orders if s.attributes.get("buyer_agent.order.id") == order_id]
    return order, [s for s in spans if s.trace_id == order.trace_id and s is not order]


class OtlpCollector:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (what a collector is to the SDK's exporter)."""

    def __init__(self) -> None:
        collector = self
        self.spans: list[SpanRecord] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector._take(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` (the exporter adds ``/v1/traces``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    def _take(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        got = []
        for rs in request.resource_spans:
            resource = {a.key: _any_value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        SpanRecord(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex() or None,
                            kind=_KINDS.get(s.kind, str(s.kind)),
                            attributes={a.key: _any_value(a.value) for a in s.attributes},
                            events=[(e.name, _attrs(e.attributes)) for e in s.events],
                            status="ERROR" if s.status.code == 2 else "OK" if s.status.code == 1 else "UNSET",
                            resource=resource,
                            start=int(s.start_time_unix_nano),
                        )
                    )
        with self._lock:
            self.spans.extend(got)


_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _attrs(attributes: Any) -> dict[str, Any]:
    return {a.key: _any_value(a.value) for a in attributes}


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None
