"""TracingObserver: one OpenTelemetry span per order, a child per step, and the calls made inside them.

The drive loop calls the :class:`~buyer_agent.workflow.DriveObserver` hooks; this observer opens
the order's span at ``order_started``, a child span per step (``pair``, ``search``, ``pay``, …) made
current while the step runs (a part of a step, ``broadcast`` inside ``settle``, nests in it), so the
market's HTTP calls and the rails' RPC calls (through :mod:`buyer_agent._spans`) and the tools
become its children. What a span says of the order comes from the one fold
(:class:`~buyer_agent.workflow.FactsFolder`): the drive loop's own, lent through the optional
``order_folder`` hook (so a resumed order's spans carry what it journaled before, and say
``buyer_agent.order.resumed``), or, for a caller of the hooks without one, the events folded here.
A step span carries the facts that step changed; the order span all of them, set when it ends.

OpenTelemetry is imported when an observer is made, never when this module is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buyer_agent import _spans as _hooks
from buyer_agent._waits import ATTEMPT
from buyer_agent.journal import Event
from buyer_agent.telemetry._attributes import (
    ORDER_ID,
    ORDER_RESUMED,
    ORDER_STATE,
    SERVICE_ID,
    STEP,
    STEP_RETRIES,
    endpoint_of,
    error_code,
    fact_attributes,
    safe_attributes,
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
    seen: dict[str, Any]
    """The order's facts (as attributes) when the step began: it ends with those it changed."""


@dataclass(slots=True)
class _OrderTrace:
    span: Span
    resumed: bool
    folder: FactsFolder = field(default_factory=FactsFolder)
    lent: bool = False
    """The folder is the drive loop's (it folds each event before telling us)."""
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
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._trace = trace
        self._context = context
        self._error = Status(StatusCode.ERROR)
        self._client = SpanKind.CLIENT
        self._tracer: Tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._orders: dict[str, _OrderTrace] = {}
        self._lent: dict[str, FactsFolder] = {}
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
        folder = self._lent.pop(order_id, None)
        attrs: dict[str, Any] = {ORDER_ID: order_id, ORDER_STATE: state, ORDER_RESUMED: resumed}
        known: dict[str, Any] = {}
        if folder is not None and resumed:  # what a resumed order had journaled before
            known = fact_attributes(folder)
            attrs.update(known)
        span = self._tracer.start_span("buyer_agent.order", attributes=safe_attributes(attrs))
        if folder is None:  # a caller of the hooks without the loop's fold: fold the events here
            trace = _OrderTrace(span, resumed, FactsFolder(), lent=False)
            trace.folder.state = state
        else:
            trace = _OrderTrace(span, resumed, folder, lent=True)
        trace.attrs, trace.dirty = known, not known
        self._orders[order_id] = trace

    def order_folder(self, order_id: str, folder: FactsFolder) -> None:
        """Read the order's facts from the drive loop's own fold (no second fold of every event)."""
        self._lent[order_id] = folder

    def step_started(self, order_id: str, step: str, state: str) -> None:
        """Open the step's span under the order's (or the open step's, for a part of it); make it current."""
        trace = self._orders.get(order_id)
        if trace is None:
            self.order_started(order_id, state, resumed=True)
            trace = self._orders[order_id]
        attempt = trace.attempts.get(step, 0)
        trace.attempts[step] = attempt + 1
        parent = trace.steps[-1].span if trace.steps else trace.span
        # The order's facts go on at the step's end: the service, and what the step changed.
        attrs: dict[str, Any] = {
            ORDER_ID: order_id,
            STEP: step,
            "buyer_agent.step.from_state": state,
            STEP_RETRIES: attempt,
            ORDER_RESUMED: trace.resumed,
        }
        set_span = self._trace.set_span_in_context
        span = self._tracer.start_span(f"buyer_agent.step.{step}", context=set_span(parent), attributes=attrs)
        trace.steps.append(_Step(step, span, self._context.attach(set_span(span)), trace.attrs))

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
        if not trace.lent:
            trace.folder.apply(event)
        trace.dirty = True
        # The step's state moves and notes (errors, fallbacks) are span events; its effects' intent:
        # and result: records are in the journal (an event each would double a step's export).
        if trace.steps and (event.src != event.dst or event.trigger.startswith("note:")):
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
            trace.attrs = fact_attributes(trace.folder)
            trace.dirty = False
        return trace.attrs

    def _end_step(self, trace: _OrderTrace, error: BaseException | None, state: str | None = None) -> None:
        """End the innermost open step with the order's facts so far (the order's span takes them last)."""
        step = trace.steps.pop()
        span = step.span
        facts, seen = self._facts(trace), step.seen
        # Every step names the service; the rest (price, rail, chain, tx, …) goes on the step that
        # learned it and on the order's span, not again on every step after (spans stay small).
        attrs = {k: v for k, v in facts.items() if k == SERVICE_ID or seen.get(k) != v}
        if state is not None:
            attrs = {**attrs, ORDER_STATE: state}
        if error is not None:
            code = error_code(error)
            attrs = {**attrs, "error.type": code, "buyer_agent.error.code": code}
            span.set_status(self._error)
        span.set_attributes(attrs)
        if step.token is not None:
            self._context.detach(step.token)  # logs (never raises) when attached in another task's context
        span.end()

    # --- span hooks (market HTTP, RPC, tools) ----------------------------------------------------

    def http_client(self, method: str, url: str, *, rpc_method: str | None = None) -> _CallSpan:
        """An HTTP client span (OpenTelemetry HTTP conventions; JSON-RPC attributes for RPC calls).

        ``url.full`` is recorded for market calls without user info or query; an RPC URL is reduced
        to its host and port, since node URLs often carry an API key in their path.
        """
        server, origin = endpoint_of(url)
        attrs: dict[str, Any] = dict(server)
        attrs["http.request.method"] = method
        if rpc_method is None:
            rest = url.split("://", 1)[-1]
            path = rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else ""
            attrs["url.full"] = f"{origin}/{path}"
        else:
            attrs["rpc.system"] = "jsonrpc"
            attrs["rpc.jsonrpc.version"] = "2.0"
            attrs["rpc.method"] = rpc_method
        attempt = ATTEMPT.get()
        if attempt is not None and attempt > 1:
            attrs["http.request.resend_count"] = attempt - 1
        # Every value is a string or an int from the lines above: nothing for safe_attributes to drop.
        span = self._tracer.start_span(method, kind=self._client, attributes=attrs)
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
