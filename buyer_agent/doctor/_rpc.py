"""The few read-only chain calls the doctor makes: plain JSON-RPC over HTTP, nothing signed."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["RpcFailure", "call", "erc20_balance", "spl_balance"]

_TIMEOUT = 10.0
_BALANCE_OF = "0x70a08231"


class RpcFailure(Exception):
    """The node cannot be reached or answered with an error (the message says which)."""


def call(client: httpx.Client, url: str, method: str, params: list[Any] | None = None) -> Any:
    """One JSON-RPC call; its ``result``.

    Raises:
        RpcFailure: unreachable, not JSON-RPC, or an ``error`` answer.
    """
    try:
        resp = client.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=_TIMEOUT
        )
        resp.raise_for_status()
        body = resp.json()
    except httpx.HTTPStatusError as exc:
        raise RpcFailure(f"HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise RpcFailure(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from None
    except ValueError:
        raise RpcFailure("the answer is not JSON") from None
    if not isinstance(body, dict) or "error" in body or "result" not in body:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        raise RpcFailure(f"{method} failed: {message or 'not a JSON-RPC answer'}")
    return body["result"]


def erc20_balance(client: httpx.Client, url: str, token: str, owner: str) -> int:
    """``balanceOf(owner)`` of an ERC-20 contract, in base units."""
    data = _BALANCE_OF + owner.lower().removeprefix("0x").rjust(64, "0")
    result = call(client, url, "eth_call", [{"to": token, "data": data}, "latest"])
    return int(str(result), 16) if result not in (None, "0x") else 0


def spl_balance(client: httpx.Client, url: str, mint: str, owner: str) -> int:
    """The owner's balance of an SPL mint (every token account of that mint), in base units."""
    result = call(client, url, "getTokenAccountsByOwner", [owner, {"mint": mint}, {"encoding": "jsonParsed"}])
    total = 0
    for account in (result or {}).get("value") or []:
        info = account.get("account", {}).get("data", {}).get("parsed", {}).get("info", {})
        total += int(info.get("tokenAmount", {}).get("amount") or 0)
    return total
