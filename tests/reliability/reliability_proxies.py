"""Loopback proxies that break things on purpose: a market proxy corrupting answers, an RPC proxy failing.

Both are stdlib HTTP servers on 127.0.0.1 port 0 in a thread of the test process; the agents under test
(forked CLI children) reach them like any market or node.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from eth_utils.crypto import keccak
from loopback_proxy import LoopbackProxy

Mutation = Callable[[bytes], bytes]
ATTACKER = "0x000000000000000000000000000000000000bad1"
MONEY_KEYS = ("amount", "rawAmount", "max", "maxAmount")


def _walk(value: Any, fn: Callable[[str, Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: fn(k, _walk(v, fn)) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    return value


def _json_mutation(change: Callable[[Any], Any]) -> Mutation:
    def mutate(body: bytes) -> bytes:
        return json.dumps(change(json.loads(body))).encode()

    return mutate


def _money(to: Callable[[Any], Any]) -> Mutation:
    return _json_mutation(lambda doc: _walk(doc, lambda k, v: to(v) if k in MONEY_KEYS else v))


def _wrong_types(doc: Any) -> Any:
    item = doc.get("item", doc) if isinstance(doc, dict) else doc
    if isinstance(item, dict):
        for key, value in list(item.items()):
            item[key] = "oops" if isinstance(value, (dict, list)) else [value]
    return doc


def _missing_fields(doc: Any) -> Any:
    if isinstance(doc, dict) and isinstance(doc.get("item"), dict):
        return {"item": {"id": doc["item"].get("id")}}
    return {}


def _rail(change: Callable[[dict[str, Any]], None]) -> Mutation:
    def apply(doc: Any) -> Any:
        change(doc["item"]["rail"])
        return doc

    return _json_mutation(apply)


def _more(doc: Any) -> Any:
    item = doc["item"]
    item["amount"] = str(int(float(item["amount"]) * 10)) + ".00"
    meta = item["rail"].setdefault("metadata", {})
    meta["rawAmount"] = str(int(meta["rawAmount"]) * 10)
    return doc


MUTATIONS: dict[str, Mutation] = {
    "non_json": lambda body: b"<html><body>502 Bad Gateway</body></html>",
    "truncated": lambda body: body[: max(1, len(body) // 2)],
    "wrong_types": _json_mutation(_wrong_types),
    "missing_fields": _json_mutation(_missing_fields),
    "huge_numbers": _money(lambda v: "1" + "0" * 40 if isinstance(v, str) else 10**40),
    "negative_amounts": _money(lambda v: "-" + str(v).lstrip("-")),
    "payee_swapped": _rail(lambda rail: rail.update(payeeAddress=ATTACKER)),
    "token_swapped": _rail(lambda rail: rail.update(tokenAddress=ATTACKER)),
    "amount_raised": _json_mutation(_more),
}

ROUTES: dict[str, tuple[str, str]] = {
    "search": ("POST", r"^/api/v1/market/search$"),
    "order": ("POST", r"^/api/v1/market/orders$"),
    "intent": ("POST", r"^/api/v1/market/orders/[^/]+/payment-intent$"),
    "proof": ("POST", r"^/api/v1/market/orders/[^/]+/payment-proof$"),
    "execute": ("POST", r"^/api/v1/market/orders/[^/]+/execute$"),
    "confirm": ("POST", r"^/api/v1/market/orders/[^/]+/confirm$"),
}


class MarketProxy(LoopbackProxy):
    """Forwards to the sandbox; ``/<route>.<mutation>/api/v1/...`` corrupts that route's 2xx answers."""

    def __init__(self, upstream: str) -> None:
        self.corrupting = True
        super().__init__(upstream)

    def url(self, route: str, mutation: str) -> str:
        """The market URL whose ``route`` answers are corrupted by ``mutation``."""
        return f"{self.address}/{route}.{mutation}"

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        rule, _, rest = req.path.lstrip("/").partition("/")
        route, _, mutation = rule.partition(".")
        path = "/" + rest
        status, ctype, data = self.forward(req.command, path, self.body(req), dict(req.headers.items()))
        method, pattern = ROUTES.get(route, ("", "$^"))
        if (
            self.corrupting
            and 200 <= status < 300
            and req.command == method
            and re.match(pattern, path.split("?")[0])
        ):
            data = MUTATIONS[mutation](data)
        self.reply(req, status, ctype, data)


class RpcProxy(LoopbackProxy):
    """A JSON-RPC proxy to anvil that can go down (its port closed) and drop sent transactions."""

    def __init__(self, upstream: str) -> None:
        self.drop_sends = 0
        self.dropped: list[str] = []
        #: ``(method, answer)``: calls to ``method`` ("*" = all) get ``answer`` bytes instead of the node's.
        self.garbage: tuple[str, bytes] | None = None
        self._lock = threading.Lock()
        super().__init__(upstream)

    @property
    def url(self) -> str:
        """The proxy's RPC URL (stable across :meth:`stop` / :meth:`start`)."""
        return self.address

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self.body(req) or b""
        call = json.loads(body)
        answer: bytes | None = None
        garbage = self.garbage
        if garbage is not None and isinstance(call, dict) and garbage[0] in ("*", call.get("method")):
            answer = garbage[1].replace(b"$ID", json.dumps(call.get("id")).encode())
        elif isinstance(call, dict) and call.get("method") == "eth_sendRawTransaction":
            with self._lock:
                drop = self.drop_sends > 0
                if drop:
                    self.drop_sends -= 1
            if drop:
                # Accepted, then lost from the pool: the sender gets the hash, the chain never sees it.
                raw = bytes.fromhex(str(call["params"][0]).removeprefix("0x"))
                tx_hash = "0x" + keccak(raw).hex()
                self.dropped.append(tx_hash)
                answer = json.dumps({"jsonrpc": "2.0", "id": call.get("id"), "result": tx_hash}).encode()
        if answer is None:
            _, _, answer = self.forward("POST", "/", body, {"Content-Type": "application/json"})
        self.reply(req, 200, "application/json", answer)
