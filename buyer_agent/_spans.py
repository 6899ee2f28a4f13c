"""Spans at the call sites (market HTTP, RPC, tools): no-ops until tracing is switched on.

The places that make HTTP calls (the market transport, the EVM rail's RPC) and run tools
(``BuyerAgent.call_tool``) call :func:`http_client_span` / :func:`tool_span`. Until a
:class:`~buyer_agent.telemetry.TracingObserver` installs itself (:func:`install`), they hand back
one shared object that does nothing, so a process without OpenTelemetry pays a function call and
imports nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = [
    "CallSpan",
    "SpanHooks",
    "active",
    "http_client_span",
    "install",
    "tool_span",
    "uninstall",
]


class CallSpan(Protocol):
    """One outgoing call's span, as the caller sees it."""

    def status(self, code: int) -> None:
        """The HTTP status the call answered with."""
        ...

    def fail(self, error: BaseException | str) -> None:
        """The call failed: an exception (its type, never its text, goes on the span) or an error code."""
        ...

    def end(self) -> None:
        """The call is over."""
        ...


class SpanHooks(Protocol):
    """What a tracer offers the call sites."""

    def http_client(self, method: str, url: str, *, rpc_method: str | None = None) -> CallSpan:
        """Start a client span for ``method url`` (``rpc_method``: the JSON-RPC method it carries)."""
        ...

    def tool_call(self, name: str) -> CallSpan:
        """Start an ``execute_tool`` span for the tool ``name``."""
        ...


class _Nothing:
    __slots__ = ()

    def status(self, code: int) -> None:
        pass

    def fail(self, error: BaseException | str) -> None:
        pass

    def end(self) -> None:
        pass


_NOTHING = _Nothing()
_active: SpanHooks | None = None


def install(hooks: SpanHooks) -> None:
    """Send every call site's spans to ``hooks`` (the last one installed wins)."""
    global _active
    _active = hooks


def uninstall(hooks: SpanHooks) -> None:
    """Stop, if ``hooks`` is the one installed."""
    global _active
    if _active is hooks:
        _active = None


def active() -> SpanHooks | None:
    """The installed hooks, if any."""
    return _active


def http_client_span(method: str, url: str, *, rpc_method: str | None = None) -> CallSpan:
    """A client span for one HTTP request (a no-op while no tracer is installed)."""
    hooks = _active
    if hooks is None:
        return _NOTHING
    return hooks.http_client(method, url, rpc_method=rpc_method)


@contextmanager
def tool_span(name: str) -> Iterator[CallSpan]:
    """An ``execute_tool`` span around one tool call (a no-op while no tracer is installed)."""
    hooks = _active
    span: CallSpan = _NOTHING if hooks is None else hooks.tool_call(name)
    try:
        yield span
    except BaseException as exc:
        span.fail(exc)
        raise
    finally:
        span.end()
