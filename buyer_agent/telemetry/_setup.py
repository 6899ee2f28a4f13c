"""Tracing switched on by the standard OpenTelemetry environment variables, as every SDK reads them.

Tracing is on when ``OTEL_TRACES_EXPORTER`` names exporters (``otlp``, ``console``, … ; ``none`` is
off), or, without it, when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: ``otlp`` then). ``OTEL_SDK_DISABLED=true`` turns it off.
``otlp`` means OTLP over ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``
(default ``http/protobuf``, the ``otel`` extra's exporter; ``grpc`` needs
``opentelemetry-exporter-otlp-proto-grpc``). Exporters are found by name under the SDK's entry-point
group ``opentelemetry_traces_exporter`` and made with no arguments, so each reads its own settings
(endpoint, headers, timeout, compression) from the environment; spans go through the SDK's
``BatchSpanProcessor`` (``OTEL_BSP_*``), the service is ``OTEL_SERVICE_NAME`` (default
``buyer-agent``) and the sampler ``OTEL_TRACES_SAMPLER``. A tracer provider a program already
installed (``opentelemetry-instrument``) is used as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from buyer_agent._errors import OrchestrationConfigError
from buyer_agent._version import __version__
from buyer_agent.telemetry._otel import OTEL_MISSING, require_otel
from buyer_agent.telemetry._tracing import TracingObserver

__all__ = ["TracingSetup", "trace_exporter_names", "tracing_from_env"]

_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_INSTALL = {"otlp_proto_grpc": "pip install opentelemetry-exporter-otlp-proto-grpc"}


@dataclass(slots=True)
class TracingSetup:
    """The tracing a process runs with: the observer, and the provider it exports through."""

    observer: TracingObserver
    provider: Any
    owns_provider: bool

    def close(self) -> None:
        """Stop tracing calls and send every span still queued (shut the provider down if it is ours)."""
        self.observer.close()
        if self.owns_provider:
            self.provider.shutdown()
        else:
            flush = getattr(self.provider, "force_flush", None)
            if flush is not None:
                flush()


def trace_exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The trace exporters the environment asks for, as entry-point names ([] when tracing is off).

    Raises:
        OrchestrationConfigError: an OTLP protocol no exporter here speaks.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    asked = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not asked:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        asked = "otlp" if endpoint and endpoint.strip() else ""
    names = [n.strip() for n in asked.split(",") if n.strip() and n.strip() != "none"]
    out = []
    for name in names:
        if name == "otlp":
            var = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
            protocol = env.get(var, "").strip() or env.get(var := "OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
            protocol = protocol or "http/protobuf"
            if protocol not in _OTLP_BY_PROTOCOL:
                raise OrchestrationConfigError(
                    f"{var}: {protocol!r} is not an OTLP protocol buyer-agent can export traces with "
                    f"({', '.join(_OTLP_BY_PROTOCOL)})"
                )
            name = _OTLP_BY_PROTOCOL[protocol]
        if name not in out:
            out.append(name)
    return out


def tracing_from_env(environ: Mapping[str, str] | None = None) -> TracingSetup | None:
    """Tracing as the environment configures it (see the module docstring), or None when it is off.

    Raises:
        OrchestrationConfigError: the environment names an exporter that is not installed or cannot
            be made, or OpenTelemetry is missing (``pip install 'buyer-agent[otel]'``).
    """
    names = trace_exporter_names(environ)
    installed = _installed_provider()
    if not names and installed is None:
        return None
    try:
        require_otel()
    except ImportError:
        raise OrchestrationConfigError(f"OTEL_TRACES_EXPORTER: {OTEL_MISSING}") from None
    if installed is not None:
        return TracingSetup(TracingObserver(installed), installed, owns_provider=False)
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = [_exporter(name) for name in names]
    provider = TracerProvider(resource=_resource(environ))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    # Global too, so the libraries that trace on their own (the MCP server's tools/call spans)
    # send their spans to the same place, as parents and children of ours.
    trace.set_tracer_provider(provider)
    return TracingSetup(TracingObserver(provider), provider, owns_provider=True)


def _installed_provider() -> Any:
    """The SDK tracer provider a program installed globally before us, if any."""
    if "opentelemetry.sdk.trace" not in sys.modules:  # nobody made one: import nothing to find out
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    return current if isinstance(current, TracerProvider) else None


def _exporter(name: str) -> Any:
    found = list(entry_points(group=_GROUP, name=name))
    if not found:
        have = sorted({ep.name for ep in entry_points(group=_GROUP)})
        hint = _INSTALL.get(name, f"installed: {', '.join(have) or 'none'}")
        raise OrchestrationConfigError(
            f"OTEL_TRACES_EXPORTER: no trace exporter {name!r} is installed ({hint})"
        )
    try:
        cls = found[0].load()
        if name == "console":
            # stdout is the commands' output (run --json, the MCP protocol): spans go to stderr, one
            # JSON object a line (which --log-format json passes through as it is).
            return cls(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + os.linesep)
        return cls()
    except Exception as exc:  # an exporter refusing its own settings (a bad endpoint, headers)
        # Its type only: the message may echo the OTEL_EXPORTER_OTLP_HEADERS it refused (keys).
        raise OrchestrationConfigError(
            f"OTEL_TRACES_EXPORTER: the {name} exporter refused its OTEL_EXPORTER_* settings "
            f"({type(exc).__name__})"
        ) from None


def _resource(environ: Mapping[str, str] | None) -> Any:
    """The service the spans come from: ``OTEL_SERVICE_NAME`` (or its attribute), else buyer-agent."""
    from opentelemetry.sdk.resources import Resource

    env = os.environ if environ is None else environ
    given = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attrs: dict[str, str] = {}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in given:
        attrs["service.name"] = "buyer-agent"
    if "service.version=" not in given:
        attrs["service.version"] = __version__
    return Resource.create(attrs)
