"""Span attributes of an order and its steps, read from the order's facts (the one fold), never a secret.

Names follow the OpenTelemetry semantic conventions where one exists (``error.type``, the HTTP
client and GenAI tool attributes in ``_tracing``); the order's own facts live under ``buyer_agent.``.
Every attribute passes :func:`safe_attributes`, which drops any whose name says it may hold a secret
(the same rule as :func:`buyer_agent._redact.is_sensitive_key`) and any :class:`Secret` value.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from buyer_agent._redact import Secret, is_sensitive_key
from buyer_agent.workflow import FactsFolder, OrderFacts

__all__ = [
    "ORDER_ID",
    "ORDER_RESUMED",
    "ORDER_STATE",
    "SERVICE_ID",
    "STEP",
    "STEP_RETRIES",
    "endpoint_of",
    "error_code",
    "fact_attributes",
    "safe_attributes",
    "server_of",
]

ORDER_ID = "buyer_agent.order.id"
ORDER_STATE = "buyer_agent.order.state"
ORDER_RESUMED = "buyer_agent.order.resumed"
SERVICE_ID = "buyer_agent.service.id"
STEP = "buyer_agent.step"
STEP_RETRIES = "buyer_agent.step.retry_count"

AttrValue = str | bool | int | float


@functools.lru_cache(maxsize=512)
def _key_allowed(key: str) -> bool:
    # Attribute names are a small fixed set: decided once each, not per span.
    return not is_sensitive_key(key.rsplit(".", 1)[-1])


def safe_attributes(attrs: Mapping[str, Any]) -> dict[str, AttrValue]:
    """The attributes a span may carry: no None, no secret by name or by type, scalars only."""
    out: dict[str, AttrValue] = {}
    for key, value in attrs.items():
        if value is None or isinstance(value, Secret) or not _key_allowed(key):
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def error_code(error: BaseException | str) -> str:
    """The code an error goes by on a span: its ``code`` (our errors), else its type's name."""
    if isinstance(error, str):
        return error
    code = getattr(error, "code", None)
    return str(code) if isinstance(code, str) and code else type(error).__name__


def fact_attributes(facts: OrderFacts | FactsFolder) -> dict[str, AttrValue]:
    """What a span says of an order so far: state, service, price, rail, chain, transaction, error.

    A :class:`FactsFolder` is read as it stands (the fields are the facts'), without copying it into
    an :class:`OrderFacts` first.
    """
    attrs: dict[str, Any] = {ORDER_STATE: facts.state}
    quote = facts.choice or (facts.pick.quote if facts.pick is not None else None)
    if quote is not None:
        attrs[SERVICE_ID] = quote.service_id
        attrs["buyer_agent.quote.id"] = quote.quote_id
        if quote.price is not None:
            attrs["buyer_agent.price.amount"] = quote.price.amount
            attrs["buyer_agent.price.decimals"] = quote.price.decimals
            attrs["buyer_agent.price.currency"] = quote.price.currency
        attrs["buyer_agent.payment.rail"] = quote.rail or None
        attrs["buyer_agent.payment.chain"] = quote.chain
    if facts.request is not None:
        attrs["buyer_agent.payment.rail"] = facts.request.rail_type
        attrs["buyer_agent.payment.chain"] = facts.request.chain
        attrs["buyer_agent.price.amount"] = facts.request.amount.amount
        attrs["buyer_agent.price.decimals"] = facts.request.amount.decimals
        attrs["buyer_agent.price.currency"] = facts.request.amount.currency
    tx = facts.paid_tx or (facts.txs[-1].tx_id if facts.txs else None)
    attrs["buyer_agent.payment.transaction_hash"] = tx
    attrs["buyer_agent.market_order.id"] = facts.market_order_id
    if facts.error is not None and facts.error.code:
        attrs["buyer_agent.error.code"] = facts.error.code
    return safe_attributes(attrs)


@functools.lru_cache(maxsize=256)
def server_of(url: str) -> tuple[str | None, int | None, str | None]:
    """``(host, port, scheme)`` of ``url``: never its user info, path or query, where keys can hide."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port, parts.scheme or None


def endpoint_of(url: str) -> tuple[tuple[tuple[str, str | int], ...], str]:
    """A URL's server attributes (``server.address``, ``server.port``, ``url.scheme``) and its origin.

    Read once per endpoint (the market's, a node's), not per call: the market's URLs name an order
    each, so they are reduced to their scheme and authority before the lookup, which is remembered;
    never the user info, path or query.
    """
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return _endpoint(f"{scheme}{sep}{authority}")


@functools.lru_cache(maxsize=256)
def _endpoint(origin: str) -> tuple[tuple[tuple[str, str | int], ...], str]:
    host, port, scheme = server_of(origin)
    attrs = tuple(
        (k, v) for k, v in (("server.address", host), ("server.port", port), ("url.scheme", scheme)) if v
    )
    shown = f"[{host}]" if host and ":" in host else host  # an IPv6 address keeps its brackets
    return attrs, f"{scheme}://{shown}{f':{port}' if port else ''}"
