"""What turning tracing on costs an order: the same orders with and without the tracing observer, alternating.

One agent on the served sandbox buys every order; a switch in front of a
:class:`~buyer_agent.telemetry.TracingObserver` turns it on for every other order (which of the two
goes first alternates), and the call hooks (market HTTP, RPC) are installed only for the traced
order, so the untraced side runs as an agent without tracing does. The traced side exports as a
process pointed at a collector would, minus the network: the SDK's ``BatchSpanProcessor`` and the
OTLP protobuf encoding of every span (the exporter's own work), the bytes then dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buyer_agent import _spans
from buyer_agent._errors import BuyerAgentError
from buyer_agent.agent import BuyerAgent
from buyer_agent.bench._stack import ServedSandbox, bench_spec
from buyer_agent.journal import Event
from buyer_agent.telemetry import TracingObserver, require_otel
from buyer_agent.workflow import FactsFolder, OrderState

__all__ = ["TracingFigures", "bench_tracing"]

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TracingFigures:
    """Mean seconds per order with tracing off and on, and the spans a traced order exported."""

    orders: int
    plain_s: float
    traced_s: float
    spans_per_order: float

    @property
    def ratio(self) -> float:
        """``traced_s / plain_s`` (target ≤ 1.10)."""
        return self.traced_s / self.plain_s


class _Switch:
    """A drive observer that passes the hooks on to the tracing observer only while it is on."""

    def __init__(self, tracing: TracingObserver) -> None:
        self.tracing = tracing
        self.on = False

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        if self.on:
            self.tracing.order_started(order_id, state, resumed=resumed)

    def step_started(self, order_id: str, step: str, state: str) -> None:
        if self.on:
            self.tracing.step_started(order_id, step, state)

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        if self.on:
            self.tracing.step_finished(order_id, step, state, error=error)

    def event(self, event: Event) -> None:
        if self.on:
            self.tracing.event(event)

    def order_finished(self, order_id: str, state: str) -> None:
        if self.on:
            self.tracing.order_finished(order_id, state)

    def order_folder(self, order_id: str, folder: FactsFolder) -> None:
        if self.on:
            self.tracing.order_folder(order_id, folder)


def _otlp_sink() -> Any:
    """A span exporter doing an OTLP exporter's work (protobuf encoding), counting the spans."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class OtlpBytes(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0
            self.bytes = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.bytes += len(encode_spans(spans).SerializeToString())
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    return OtlpBytes()


async def bench_tracing(
    sandbox: ServedSandbox, workdir: Path, n: int, progress: Progress
) -> TracingFigures | None:
    """``n`` orders each way (tracing off, on), alternating; None without the ``otel`` extra."""
    try:
        require_otel()
        sink = _otlp_sink()
    except ImportError:
        progress("tracing: skipped (pip install 'buyer-agent[otel]')")
        return None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(sink))
    tracing = TracingObserver(provider)
    _spans.uninstall(tracing)  # on for the traced orders only
    switch = _Switch(tracing)
    agent = BuyerAgent(sandbox.task.url, **sandbox.agent_kwargs(workdir / "tracing"), observer=switch)
    spec = bench_spec()

    async def order(traced: bool) -> float:
        switch.on = traced
        if traced:
            _spans.install(tracing)
        started = time.perf_counter()
        try:
            summary = await agent.buy(spec)
        finally:
            elapsed = time.perf_counter() - started
            switch.on = False
            _spans.uninstall(tracing)
        if summary.state is not OrderState.CONFIRMED:
            raise BuyerAgentError(f"benchmark order {summary.order_id} ended {summary.state.value}")
        return elapsed

    try:
        await order(False)  # pairs, and warms both paths up
        await order(True)
        provider.force_flush()
        warm = sink.spans
        plain_s = traced_s = 0.0
        for i in range(n):
            for traced in (False, True) if i % 2 == 0 else (True, False):
                took = await order(traced)
                if traced:
                    traced_s += took
                else:
                    plain_s += took
            if (i + 1) % max(1, n // 5) == 0:
                progress(f"tracing: {i + 1}/{n} orders each way")
    finally:
        await agent.aclose()
        tracing.close()
        provider.shutdown()  # exports what is still queued
    return TracingFigures(
        orders=n, plain_s=plain_s / n, traced_s=traced_s / n, spans_per_order=(sink.spans - warm) / n
    )
