"""``--metrics-port``: a Prometheus text endpoint on 127.0.0.1 over the OpenTelemetry metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from buyer_agent.journal import OrderStore
from buyer_agent.telemetry._metrics import MetricsObserver
from buyer_agent.telemetry._otel import require_otel

__all__ = ["MetricsEndpoint", "serve_metrics"]

#: The only address the endpoint listens on: metrics say what a machine spends, for this machine.
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """A running endpoint: its URL and the observer whose instruments it shows."""

    port: int
    observer: MetricsObserver
    meter_provider: Any

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/metrics``."""
        return f"http://{HOST}:{self.port}/metrics"


@contextmanager
def serve_metrics(port: int = 0, *, store: OrderStore | None = None) -> Iterator[MetricsEndpoint]:
    """Serve Prometheus text on ``http://127.0.0.1:<port>/metrics`` while the block runs.

    The metrics come from a :class:`MetricsObserver` on a meter provider of its own (the process's
    global provider is left alone), exported through ``opentelemetry-exporter-prometheus`` into a
    registry of its own; ``prometheus_client`` serves it from a daemon thread.

    Args:
        port: The TCP port (0: any free one; read it from the endpoint).
        store: The order store the ledger gauges read.

    Raises:
        ImportError: The ``otel`` extra is not installed.
        OSError: The port is taken.
    """
    require_otel()
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    server, thread = start_http_server(port, addr=HOST, registry=registry)
    try:
        yield MetricsEndpoint(server.server_port, MetricsObserver(provider, store=store), provider)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        provider.shutdown()
