"""The fallback path at run time: the market refuses to order the first choice, the next quote is ordered.

A loopback proxy in front of a real sandbox refuses ``POST /market/orders`` for one service (as a market
whose policy changed after the agent paired would); everything else reaches the sandbox and its chains.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, market_env, transfers_from
from loopback_proxy import LoopbackProxy

pytestmark = pytest.mark.chains

ORDERS = "/api/v1/market/orders"
SEARCH = "/api/v1/market/search"


class RefusingProxy(LoopbackProxy):
    """Forwards to the market, but answers 403 ``AGENT_POLICY_DENIED`` to orders for ``refused``."""

    def __init__(self, upstream: str, refused: str) -> None:
        self.refused = refused
        self.calls: list[tuple[str, str, str | None]] = []  # (method, path, serviceId of an order)
        super().__init__(upstream)
        self.url = self.address

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.calls if (m, p) == (method, path))

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self.body(req)
        path = req.path.split("?")[0]
        service = None
        if req.command == "POST" and path == ORDERS and body:
            service = json.loads(body).get("serviceId")
        self.calls.append((req.command, path, service))
        if service == self.refused:
            error = {
                "code": "AGENT_POLICY_DENIED",
                "message": f"service {service} is denied by the delegation policy",
            }
            self.reply(req, 403, "application/json", json.dumps({"error": error}).encode())
            return
        self.reply(req, *self.forward(req.command, req.path, body, dict(req.headers.items())))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A sandbox market with its local chains, in this process; its JSON info (keys included)."""
    from buyer_agent.sandbox import Sandbox

    box = Sandbox(state_dir=tmp_path_factory.mktemp("sandbox"))
    info = box.start()
    try:
        yield dict(info.to_json())
    finally:
        box.stop()


def test_a_refused_first_choice_falls_back_to_the_next_quote_without_searching_again(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    buyer = sandbox["wallets"]["evm"]["address"]
    before = transfers_from(sandbox, buyer)
    state = str(tmp_path / "state")
    # fallback = cheapest, then best_score: svc_hash_budget first, svc_hash_fast next.
    proxy = RefusingProxy(sandbox["url"], refused="svc_hash_budget")
    try:
        proc = cli(
            "run", "examples/task.yaml", "--strategy", "fallback", "--market", proxy.url, "--json",
            "--state-dir", state, env=market_env(sandbox),
        )  # fmt: skip
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "confirmed"
    assert out["quote"]["service_id"] == "svc_hash_fast"
    assert out["payment"]["amount"] == "1.20"
    quote_of = {c["service_id"]: c["quote_id"] for c in out["candidates"]}

    # The market was asked to order the first choice (refused), then the next one; searched once.
    orders = [s for m, p, s in proxy.calls if (m, p) == ("POST", ORDERS)]
    assert orders == ["svc_hash_budget", "svc_hash_fast"]
    assert proxy.count("POST", SEARCH) == 1

    shown = cli("show", out["order_id"], "--json", "--state-dir", state)
    assert shown.returncode == 0, shown.stderr
    events = json.loads(shown.stdout)["timeline"]
    triggers = [e["trigger"] for e in events]
    assert triggers.count("search") == 1 and triggers.count("intent:search_market") == 1
    (choose,) = [e for e in events if e["trigger"] == "choose"]
    assert choose["payload"]["decision"]["quote_id"] == quote_of["svc_hash_budget"]
    assert choose["payload"]["decision"]["ranking"][:2] == [
        quote_of["svc_hash_budget"],
        quote_of["svc_hash_fast"],
    ]
    (refusal,) = [e for e in events if e["trigger"] == "result:create_market_order"]
    assert refusal["payload"]["error"]["code"] == "AGENT_POLICY_DENIED"
    (fallback,) = [e for e in events if e["trigger"] == "note:fallback"]
    assert fallback["payload"]["rejected"] == quote_of["svc_hash_budget"]
    assert fallback["payload"]["next"] == quote_of["svc_hash_fast"]
    assert "AGENT_POLICY_DENIED" in fallback["payload"]["reason"]
    # The fallback came after the refusal and before the one order that went through.
    assert (
        triggers.index("result:create_market_order")
        < triggers.index("note:fallback")
        < triggers.index("order")
    )
    assert triggers.count("order") == 1 and triggers.count("intent:create_market_order") == 2
    # One payment, for the quote that was ordered.
    assert triggers.count("pay") == 1 and triggers.count("paid") == 1
    assert transfers_from(sandbox, buyer) == before + 1
