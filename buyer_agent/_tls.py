"""One TLS context per process, shared by every HTTP client the agent makes.

Each ``httpx`` client otherwise builds its own, loading the certificate store again: ~25 ms of CPU
each, and a run makes one for the market, one for the EVM node and one to read the Solana chain id.
The context is httpx's default (certifi's roots, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured).
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS context for verifying servers (built on first use)."""
    return httpx.create_ssl_context()
