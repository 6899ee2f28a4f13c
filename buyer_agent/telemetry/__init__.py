"""buyer_agent.telemetry: traces, metrics and log context for the drive loop (the ``otel`` extra).

Each piece is a :class:`~buyer_agent.workflow.DriveObserver`: :class:`TracingObserver` (a span per
order and per step; market HTTP, RPC and tool calls as children), :class:`MetricsObserver`
(OpenTelemetry metrics, served as Prometheus text by :func:`serve_metrics`),
:class:`LogContextObserver` (order and step on JSON log lines); :class:`Observers` joins them.
:func:`tracing_from_env` switches tracing on from the standard ``OTEL_*`` variables (the CLI's way).
OpenTelemetry is imported only when a tracing or metrics observer is made: without the extra,
importing this package changes nothing.
"""

from buyer_agent.telemetry._fanout import Observers
from buyer_agent.telemetry._logctx import LogContextObserver
from buyer_agent.telemetry._metrics import METER_NAME, MetricsObserver
from buyer_agent.telemetry._otel import OTEL_MISSING, require_otel
from buyer_agent.telemetry._prometheus import MetricsEndpoint, serve_metrics
from buyer_agent.telemetry._setup import TracingSetup, tracing_from_env
from buyer_agent.telemetry._tracing import TRACER_NAME, TracingObserver

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "LogContextObserver",
    "METER_NAME",
    "MetricsEndpoint",
    "MetricsObserver",
    "OTEL_MISSING",
    "Observers",
    "TRACER_NAME",
    "TracingObserver",
    "TracingSetup",
    "require_otel",
    "serve_metrics",
    "tracing_from_env",
]
