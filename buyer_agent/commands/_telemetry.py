"""The command line's telemetry: log context always, metrics with ``--metrics-port``, traces from ``OTEL_*``.

``cli.main`` runs every command inside :func:`with_telemetry`, which serves the metrics endpoint for
as long as the command runs and hands the command a :class:`Telemetry` on ``args.telemetry``. The
commands that drive orders (``run``, ``resume``, ``mcp``) give their agent :func:`observer_for`:
the log context observer (each JSON line names its order and step), the endpoint's metrics observer
when ``--metrics-port`` is given, and a tracing observer when the environment switches tracing on
(:func:`buyer_agent.telemetry.tracing_from_env`). Tracing is set up only when a command asks for the
observer, and its spans are flushed when the command ends.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from buyer_agent._logformat import say
from buyer_agent.commands._common import EXIT_USAGE
from buyer_agent.telemetry import LogContextObserver, Observers
from buyer_agent.workflow import DriveObserver

if TYPE_CHECKING:
    from buyer_agent.telemetry import MetricsEndpoint, TracingSetup

__all__ = ["Telemetry", "observer_for", "with_telemetry"]


class Telemetry:
    """What one command run observes its orders with (see the module docstring)."""

    def __init__(self, metrics: MetricsEndpoint | None = None) -> None:
        self.metrics = metrics
        self.tracing: TracingSetup | None = None
        self._observer: DriveObserver | None = None

    def observer(self) -> DriveObserver:
        """The observer for the command's agents (made once; tracing set up on the first call).

        Raises:
            OrchestrationConfigError: the ``OTEL_*`` variables name an exporter that cannot be used.
        """
        if self._observer is None:
            from buyer_agent.telemetry import tracing_from_env

            parts: list[Any] = [LogContextObserver()]
            if self.metrics is not None:
                parts.append(self.metrics.observer)
            self.tracing = tracing_from_env()
            if self.tracing is not None:
                parts.append(self.tracing.observer)
            self._observer = parts[0] if len(parts) == 1 else Observers(*parts)
        return self._observer

    def close(self) -> None:
        """Send the spans still queued and stop tracing."""
        tracing, self.tracing = self.tracing, None
        if tracing is not None:
            tracing.close()


def observer_for(args: argparse.Namespace) -> DriveObserver:
    """The observer a command's agents drive orders with (log context alone outside ``cli.main``)."""
    telemetry = getattr(args, "telemetry", None)
    if isinstance(telemetry, Telemetry):
        return telemetry.observer()
    return LogContextObserver()


def with_telemetry(args: argparse.Namespace, body: Callable[[], int]) -> int:
    """Run ``body`` with ``args.telemetry`` set, the metrics endpoint up when ``--metrics-port`` asks."""
    port = getattr(args, "metrics_port", None)
    with contextlib.ExitStack() as stack:
        metrics = None
        if port is not None:
            from buyer_agent.telemetry import serve_metrics  # OpenTelemetry loads only when asked for

            try:
                metrics = stack.enter_context(serve_metrics(port))
            except ImportError as exc:
                say(str(exc), level="error", fields={"exit_code": EXIT_USAGE})
                return EXIT_USAGE
            except OSError as exc:
                say(
                    f"--metrics-port {port}: cannot listen on 127.0.0.1 ({exc.strerror or exc})",
                    level="error",
                )
                return EXIT_USAGE
        telemetry = Telemetry(metrics)
        stack.callback(telemetry.close)
        args.telemetry = telemetry
        return body()
