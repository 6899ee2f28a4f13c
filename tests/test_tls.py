"""The HTTP clients the agent makes share one TLS context (building one loads the certificate store)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from buyer_agent._tls import tls_context
from buyer_agent.market._transport import new_http_client
from buyer_agent.rails._evm_rpc import EvmRpc


def test_the_market_and_node_clients_load_the_certificates_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args or kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    tls_context.cache_clear()

    async def clients() -> None:
        for http in (new_http_client(), new_http_client(), await EvmRpc("http://127.0.0.1:9")._client()):
            await http.aclose()

    asyncio.run(clients())
    assert len(built) == 1
    assert tls_context().verify_mode is ssl.CERT_REQUIRED and tls_context().check_hostname
