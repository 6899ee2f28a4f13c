"""Checking a URL's port before anything connects: a port out of range is bad input, not a crash.

``httpx.URL`` accepts ``http://127.0.0.1:99999`` and the socket layer then fails deep inside a
connection pool (``OverflowError``); the market client and the rails check first and name the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from buyer_agent._errors import OrchestrationConfigError

__all__ = ["check_port"]


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
