"""TracingObserver: one OpenTelemetry span per order, a child per step, and the calls made inside them.

The drive loop calls the :class:`~buyer_agent.workflow.DriveObserver` hooks; this observer opens
the order's span at ``order_started``, a child span per step (``pair``, ``search``, ``pay``, …) made
current while the step runs, so the market's HTTP calls and the rails' RPC calls (through
:mod:`buyer_agent.telemetry._hooks`) and the tools become its children. What a span says of the
order comes from the events the observer receives, folded by the one fold
(:class:`~buyer_agent.workflow.FactsFolder`): a resumed order's spans carry what was journaled since
it was taken up, and say ``buyer_agent.order.resumed``.

OpenTelemetry is imported when an observer is made, never when this module is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buyer_agent import _spans as _hooks
from buyer_agent._waits import ATTEMPT
from buyer_agent.journal import Event
from buyer_agent.telemetry._attributes import (
    ORDER_ID,
    ORDER_RESUMED,
    ORDER_STATE,
    STEP,
    STEP_RETRIES,
    error_code,
    fact_attributes,
    safe_attributes,
    server_of,
)
from buyer_agent.telemetry._otel import require_otel
from buyer_agent.workflow import FactsFolder

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["TRACER_NAME", "TracingObserver"]

#: The instrumentation scope of every span this package makes.
TRACER_NAME = "buyer_agent"

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Step:
    name: str
    span: Span
    token: Any
    """The context token that made the span current (detached when it ends)."""


@dataclass(slots=True)
class _OrderTrace:
    span: Span
    resumed: bool
    folder: FactsFolder = field(default_factory=FactsFolder)
    steps: list[_Step] = field(default_factory=list)
    """The open steps, outermost first: a part of a step (``broadcast`` in ``settle``) nests in it."""
    attempts: dict[str, int] = field(default_factory=dict)
    dirty: bool = True
    """Events were folded since the facts' attributes were last read."""
    attrs: dict[str, Any] = field(default_factory=dict)


class _CallSpan:
    """A started client or tool span; :meth:`end` ends it once."""

    __slots__ = ("_ended", "_span", "_status_error")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._ended = False
        self._status_error = False

    def status(self, code: int) -> None:
        self._span.set_attribute("http.response.status_code", code)
        if code >= 400:
            # HTTP client conventions: a 4xx/5xx answer is an error, its type the status code.
            self._span.set_attribute("error.type", str(code))
            self._status_error = True

    def fail(self, error: BaseException | str) -> None:
        self._span.set_attribute("error.type", error_code(error))
        self._status_error = True

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._status_error:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR))
        self._span.end()


class TracingObserver:
    """Spans for orders, steps, HTTP/RPC calls and tool calls (a :class:`DriveObserver`).

    Args:
        tracer_provider: Where spans go (an SDK ``TracerProvider`` with an exporter); default the
            global one OpenTelemetry was configured with.
        calls: Also trace the market's HTTP calls, the rails' RPC calls and tool calls (installs
            this observer as the process's span hooks; :meth:`close` removes it).

    Raises:
        ImportError: OpenTelemetry is not installed (the message says ``pip install 'buyer-agent[otel]'``).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, calls: bool = True) -> None:
        require_otel()
        from opentelemetry import trace

        self._trace = trace
        self._tracer: Tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._orders: dict[str, _OrderTrace] = {}
        self._history: dict[str, FactsFolder] = {}
        self._calls = calls
        if calls:
            _hooks.install(self)

    def close(self) -> None:
        """Stop tracing calls (spans of orders still open are ended)."""
        _hooks.uninstall(self)
        for order_id in list(self._orders):
            self.order_finished(order_id, self._orders[order_id].folder.state)

    # --- DriveObserver ---------------------------------------------------------------------------

    def order_started(self, order_id: str, state: str, *, resumed: bool) -> None:
        """Open the order's span (a child of whatever span is current, e.g. a tool call)."""
        old = self._orders.pop(order_id, None)
        if old is not None:  # taken up again without being let go: close what was left open
            while old.steps:
                self._end_step(old, None)
            old.span.end()
        folder = self._history.pop(order_id, None)
        attrs: dict[str, Any] = {ORDER_ID: order_id, ORDER_STATE: state, ORDER_RESUMED: resumed}
        if folder is not None:  # a resumed order: what it had journaled before
            attrs.update(fact_attributes(folder.facts()))
        span = self._tracer.start_span("buyer_agent.order", attributes=safe_attributes(attrs))
        trace = _OrderTrace(span, resumed, folder if folder is not None else FactsFolder())
        trace.folder.state = state
        self._orders[order_id] = trace

    def order_history(self, order_id: str, events: Sequence[Event]) -> None:
        """Fold what a resumed order journaled before, for the spans :meth:`order_started` opens."""
        folder = FactsFolder()
        for event in events:
            folder.apply(event)
        self._history[order_id] = folder

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """Open the step's span under the order's (or the open step's, for a part of it); make it current."""
        trace = self._orders.get(order_id)
        if trace is None:
            self.order_started(order_id, state, resumed=True)
            trace = self._orders[order_id]
        attempt = trace.attempts.get(step, 0)
        trace.attempts[step] = attempt + 1
        parent = trace.steps[-1].span if trace.steps else trace.span
        attrs = {
            ORDER_ID: order_id,
            STEP: step,
            "buyer_agent.step.from_state": state,
            STEP_RETRIES: attempt,
            ORDER_RESUMED: trace.resumed,
            **self._facts(trace),
        }
        span = self._tracer.start_span(
            f"buyer_agent.step.{step}",
            context=self._trace.set_span_in_context(parent),
            attributes=safe_attributes(attrs),
        )
        from opentelemetry import context

        trace.steps.append(_Step(step, span, context.attach(self._trace.set_span_in_context(span))))

    def step_finished(self, order_id: str, step: str, state: str, *, error: BaseException | None) -> None:
        """End the step's span (and any part of it left open) with the order's state, facts and error."""
        trace = self._orders.get(order_id)
        if trace is None or all(s.name != step for s in trace.steps):
            return
        while trace.steps:
            name = trace.steps[-1].name
            self._end_step(trace, error if name == step else None, state)
            if name == step:
                return

    def event(self, event: Event) -> None:
        """Fold the event into the order's facts (put on the spans when each ends); note it on the step."""
        trace = self._orders.get(event.order_id)
        if trace is None:
            return
        trace.folder.apply(event)
        trace.dirty = True
        if trace.steps:
            trace.steps[-1].span.add_event(event.trigger, {"buyer_agent.event.seq": event.seq})

    def order_finished(self, order_id: str, state: str) -> None:
        """End the order's span in ``state``."""
        trace = self._orders.pop(order_id, None)
        if trace is None:
            return
        while trace.steps:
            self._end_step(trace, None)
        trace.span.set_attributes(self._facts(trace))
        trace.span.set_attribute(ORDER_STATE, state)
        if state == "failed":
            from opentelemetry.trace import Status, StatusCode

            facts = trace.folder.facts()
            code = facts.error.code if facts.error is not None and facts.error.code else "failed"
            trace.span.set_attribute("error.type", code)
            trace.span.set_status(Status(StatusCode.ERROR))
        trace.span.end()

    @staticmethod
    def _facts(trace: _OrderTrace) -> dict[str, Any]:
        """The order's facts as attributes (folded again only after new events, not per span)."""
        if trace.dirty:
            trace.attrs = fact_attributes(trace.folder.facts())
            trace.dirty = False
        return trace.attrs

    def _end_step(self, trace: _OrderTrace, error: BaseException | None, state: str | None = None) -> None:
        """End the innermost open step: the facts so far on it and on the order's span."""
        step = trace.steps.pop()
        span = step.span
        attrs = self._facts(trace)
        span.set_attributes(attrs)
        trace.span.set_attributes(attrs)
        if state is not None:
            span.set_attribute(ORDER_STATE, state)
        if step.token is not None:
            from opentelemetry import context

            context.detach(step.token)  # logs (never raises) when attached in another task's context
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            code = error_code(error)
            span.set_attribute("error.type", code)
            span.set_attribute("buyer_agent.error.code", code)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    # --- span hooks (market HTTP, RPC, tools) ----------------------------------------------------

    def http_client(self, method: str, url: str, *, rpc_method: str | None = None) -> _CallSpan:
        """An HTTP client span (OpenTelemetry HTTP conventions; JSON-RPC attributes for RPC calls).

        ``url.full`` is recorded for market calls without user info or query; an RPC URL is reduced
        to its host and port, since node URLs often carry an API key in their path.
        """
        from opentelemetry.trace import SpanKind

        host, port, scheme = server_of(url)
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "server.address": host,
            "server.port": port,
            "url.scheme": scheme,
        }
        if rpc_method is None:
            path = url.split("://", 1)[-1].split("/", 1)[1] if "/" in url.split("://", 1)[-1] else ""
            path = path.split("?", 1)[0]
            attrs["url.full"] = f"{scheme}://{host}{f':{port}' if port else ''}/{path}"
        else:
            attrs["rpc.system"] = "jsonrpc"
            attrs["rpc.jsonrpc.version"] = "2.0"
            attrs["rpc.method"] = rpc_method
        attempt = ATTEMPT.get()
        if attempt is not None and attempt > 1:
            attrs["http.request.resend_count"] = attempt - 1
        span = self._tracer.start_span(method, kind=SpanKind.CLIENT, attributes=safe_attributes(attrs))
        return _CallSpan(span)

    def tool_call(self, name: str) -> _CallSpan:
        """An ``execute_tool`` span (OpenTelemetry GenAI conventions), current while the tool runs."""
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
        }
        span = self._tracer.start_span(f"execute_tool {name}", attributes=safe_attributes(attrs))
        return _ToolSpan(span)


class _ToolSpan(_CallSpan):
    """A tool span that is the current span while the tool runs (orders it drives nest under it)."""

    __slots__ = ("_token",)

    def __init__(self, span: Span) -> None:
        super().__init__(span)
        from opentelemetry import context, trace

        self._token: Any = context.attach(trace.set_span_in_context(span))

    def end(self) -> None:
        if self._token is not None:
            from opentelemetry import context

            context.detach(self._token)
            self._token = None
        super().end()
