"""One spelling per market URL, so orders and pairings find their market however its URL is written.

``HTTP://LocalHost:80/api/`` and ``http://127.0.0.1/api`` are one market: scheme and host in lower
case, the scheme's default port dropped, no trailing slash, ``localhost`` read as ``127.0.0.1``.
Anything that does not parse as an http(s) URL (``embedded-sandbox``) is returned stripped.

A URL's port is also checked before anything connects (:func:`check_port`): ``httpx.URL`` accepts
``http://127.0.0.1:99999`` and the socket layer then fails deep inside a connection pool
(``OverflowError``); the market client and the rails check first and name the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from buyer_agent._errors import OrchestrationConfigError

__all__ = ["EMBEDDED", "check_port", "normalise_market_url", "same_market"]

#: The label of the in-process sandbox market (its URL dies with its process).
EMBEDDED = "embedded-sandbox"
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def normalise_market_url(url: str) -> str:
    """The canonical spelling of a market URL (see the module docstring)."""
    text = url.strip()
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, TypeError):
        return text
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return text
    host = parsed.host.lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        host = "127.0.0.1"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parsed.scheme]
    port = f":{parsed.port}" if parsed.port not in (None, default) else ""
    return f"{parsed.scheme}://{host}{port}{parsed.path.rstrip('/')}"


def same_market(a: str | None, b: str | None) -> bool:
    """Whether two market URLs (or labels) name one market."""
    if a is None or b is None:
        return a is b
    return normalise_market_url(a) == normalise_market_url(b)


def check_port(url: str, what: str) -> None:
    """Raise when ``url`` names a port outside 1..65535 (or one that is not a number).

    Raises:
        OrchestrationConfigError: Naming ``what`` (e.g. "the market URL") and the port, never the
            URL's credentials.
    """
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        host_port = parts.netloc.rsplit("@", 1)[-1]
        port_text = host_port.rsplit(":", 1)[-1] if ":" in host_port else "?"
        raise OrchestrationConfigError(
            f"{what} has port {port_text!r}: a port is a number 1..65535"
        ) from None
    if port == 0:
        raise OrchestrationConfigError(f"{what} has port 0: a port is a number 1..65535")
