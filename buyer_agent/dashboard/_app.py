"""The dashboard's web app (aiohttp): read-only pages over an order store, live over server-sent events.

aiohttp serves it because it is already here (web3 depends on it), runs on our own event loop beside
the async :class:`OrderStore`, and streams responses (the live updates) without another process.
Jinja2 renders the pages with autoescaping on, so every text from a market (service ids, reasons,
results, errors) reaches the browser as text; a Content-Security-Policy that allows only the page's
own script and style is the second line of defence.

Only ``GET``/``HEAD`` are answered, and only for a loopback ``Host`` (a page elsewhere cannot reach
it through DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from buyer_agent.dashboard._charts import spend_chart
from buyer_agent.dashboard._data import STATES, DashboardData, SpendSeries
from buyer_agent.dashboard._diagram import state_diagram_svg
from buyer_agent.workflow import OrderFacts
from buyer_agent.workflow._fact_quotes import Candidate

__all__ = ["LOOPBACK_HOSTS", "POLL_S", "build_app"]

log = logging.getLogger(__name__)

#: How often a live page's store is looked at for changes, in seconds.
POLL_S = 0.5
#: ``Host`` names the app answers to.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}

_DATA: web.AppKey[DashboardData] = web.AppKey("data", DashboardData)
_ENV: web.AppKey[jinja2.Environment] = web.AppKey("env", jinja2.Environment)
_LABEL: web.AppKey[str] = web.AppKey("label", str)
_CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)


def _strategy_name(strategy: Any) -> str:
    if isinstance(strategy, dict):
        return str(strategy.get("name") or "?")
    return str(strategy or "?")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("buyer_agent.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name: market text is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(pretty=_pretty, strategy_name=_strategy_name)
    return env


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        host = request.url.host
    except ValueError:  # a Host header that is not a host
        host = None
    if host not in LOOPBACK_HOSTS:
        return web.Response(status=421, text="this dashboard answers on 127.0.0.1 only\n")
    if request.method not in ("GET", "HEAD"):
        return web.Response(status=405, text="read-only\n", headers={"Allow": "GET, HEAD"})
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _page(request: web.Request, template: str, code: int = 200, **context: Any) -> web.Response:
    env = request.app[_ENV]
    html = env.get_template(template).render(store_label=request.app[_LABEL], **context)
    return web.Response(text=html, status=code, content_type="text/html", charset="utf-8")


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    state = request.query.get("state") or None
    day = request.query.get("day") or None
    if state is not None and state not in STATES:
        raise web.HTTPBadRequest(text=f"state: not one of {', '.join(STATES)}\n")
    if day is not None:
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            raise web.HTTPBadRequest(text="day: give YYYY-MM-DD\n") from None
    return state, day


async def _orders_context(data: DashboardData, state: str | None, day: str | None) -> dict[str, Any]:
    rows = await data.orders(state=state, day=day)
    return {"rows": rows, "running": sum(r.running for r in rows), "state": state, "day": day}


async def _orders(request: web.Request) -> web.Response:
    state, day = _filters(request)
    data = request.app[_DATA]
    ctx = await _orders_context(data, state, day)
    live = "/events?" + urlencode({"view": "orders", "state": state or "", "day": day or ""})
    return _page(
        request, "orders.html", page="orders", states=STATES, days=await data.days(), live_url=live, **ctx
    )


def _chosen_service(facts: OrderFacts) -> str | None:
    decision = facts.decision
    if decision is None:
        return None
    chosen = next((c for c in decision.candidates if c.quote_id == decision.quote_id), None)
    return chosen.service_id if chosen is not None else None


async def _order_context(data: DashboardData, order_id: str) -> dict[str, Any] | None:
    view = await data.order(order_id)
    if view is None:
        return None
    return {
        "view": view,
        "chosen_service": _chosen_service(view.facts),
        "candidates": _ranked(view.facts),
    }


def _ranked(facts: OrderFacts) -> list[Candidate]:
    """The decision's candidates: the chosen first, then the eligible in ranking order, then the rest."""
    decision = facts.decision
    if decision is None:
        return []
    rank = {q: i for i, q in enumerate(decision.ranking)}

    def key(item: tuple[int, Candidate]) -> tuple[int, int, int]:
        i, c = item
        if c.quote_id == decision.quote_id:
            return (0, 0, i)
        return (1, rank.get(c.quote_id, len(rank)), i) if c.eligible else (2, 0, i)

    return [c for _, c in sorted(enumerate(decision.candidates), key=key)]


async def _order(request: web.Request) -> web.Response:
    order_id = request.match_info["order_id"]
    ctx = await _order_context(request.app[_DATA], order_id)
    if ctx is None:
        return _page(request, "error.html", 404, page="", status="404", message=f"no order {order_id}")
    live = "/events?" + urlencode({"view": "order", "id": order_id})
    return _page(request, "order.html", page="orders", live_url=live, **ctx)


def _today_spent(series: SpendSeries) -> int:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return sum(spent + committed for day, spent, committed in series.days if day == today)


async def _spend_context(data: DashboardData) -> dict[str, Any]:
    series = await data.spend()
    return {"charts": [(s, spend_chart(s)) for s in series], "today_spent": _today_spent}


async def _spend(request: web.Request) -> web.Response:
    ctx = await _spend_context(request.app[_DATA])
    return _page(request, "spend.html", page="spend", live_url="/events?view=spend", **ctx)


async def _machine(request: web.Request) -> web.Response:
    try:
        diagram = await asyncio.to_thread(state_diagram_svg)
        error = None
    except (OSError, RuntimeError, ValueError) as exc:
        diagram, error = None, str(exc)
    return _page(request, "machine.html", page="machine", diagram=diagram, diagram_error=error)


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    body = resources.files("buyer_agent.dashboard").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=_STATIC[name], charset="utf-8")


async def _fragment(request: web.Request, view: str) -> str | None:
    """The live part of a page, rendered now (None: nothing to show, e.g. an unknown order)."""
    data, env = request.app[_DATA], request.app[_ENV]
    if view == "orders":
        state, day = _filters(request)
        return env.get_template("_orders.html").render(**await _orders_context(data, state, day))
    if view == "order":
        ctx = await _order_context(data, request.query.get("id", ""))
        return None if ctx is None else env.get_template("_order.html").render(**ctx)
    if view == "spend":
        return env.get_template("_spend.html").render(**await _spend_context(data))
    raise web.HTTPBadRequest(text="view: orders, order or spend\n")


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: an ``update`` with the fragment's HTML each time the store changes."""
    view = request.query.get("view", "")
    if view not in ("orders", "order", "spend"):
        raise web.HTTPBadRequest(text="view: orders, order or spend\n")
    _filters(request)  # a bad filter is a 400 before the stream starts
    data, closing = request.app[_DATA], request.app[_CLOSING]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    response.headers["Content-Security-Policy"] = _CSP
    await response.prepare(request)
    seen = await data.signature()
    quiet = 0
    try:
        while not closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), POLL_S)
            if closing.is_set():
                break
            now = await data.signature()
            if now != seen:
                seen, quiet = now, 0
                html = await _fragment(request, view)
                if html is not None:
                    await response.write(
                        b"event: update\ndata: " + json.dumps({"html": html}).encode() + b"\n\n"
                    )
            else:
                quiet += 1
                if quiet * POLL_S >= 15:  # a comment now and then finds a closed tab
                    quiet = 0
                    await response.write(b": ping\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


def build_app(data: DashboardData, *, label: str | None = None) -> web.Application:
    """The dashboard over ``data``'s store.

    Args:
        data: The reads the pages are made of.
        label: Where the orders live, shown in the header (default: the store's label).
    """
    app = web.Application(middlewares=[_guard])
    app[_DATA] = data
    app[_ENV] = _environment()
    app[_LABEL] = label if label is not None else data.store.label
    app[_CLOSING] = asyncio.Event()

    async def closing(app: web.Application) -> None:
        app[_CLOSING].set()

    app.on_shutdown.append(closing)
    app.router.add_get("/", _orders)
    app.router.add_get("/orders/{order_id}", _order)
    app.router.add_get("/spend", _spend)
    app.router.add_get("/machine", _machine)
    app.router.add_get("/events", _events)
    app.router.add_get("/static/{name}", _static)
    return app
