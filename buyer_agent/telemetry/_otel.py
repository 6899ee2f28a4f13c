"""OpenTelemetry, imported only when traces or metrics are asked for."""

from __future__ import annotations

import importlib

__all__ = ["OTEL_MISSING", "require_otel"]

#: What to tell a user whose environment lacks the optional OpenTelemetry packages.
OTEL_MISSING = "traces and metrics need OpenTelemetry: pip install 'buyer-agent[otel]'"


def require_otel() -> None:
    """Import the OpenTelemetry API and SDK, or raise ``ImportError(OTEL_MISSING)``."""
    try:
        importlib.import_module("opentelemetry.trace")
        importlib.import_module("opentelemetry.sdk")
    except ImportError as exc:
        raise ImportError(OTEL_MISSING) from exc
