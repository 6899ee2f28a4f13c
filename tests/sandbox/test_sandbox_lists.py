"""List endpoints of the sandbox: machines, pages walked by cursor, and the audit log of every change.

Over real HTTP (anvil for the escrow order), partly through our own ``AsyncMarketClient``, so the
client's list calls and ``*_all`` walks work against the sandbox, not only against canned answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from sandbox_kit import Market, Pairing, evm_wallet, started_sandbox

from buyer_agent.market import AsyncMarketClient, Machine
from buyer_agent.sandbox import Sandbox

T = TypeVar("T")


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox(solana=False)


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


def with_client(market: Market, use: Callable[[AsyncMarketClient], Awaitable[T]]) -> T:
    """Run ``use`` with our client pointed at the sandbox."""

    async def go() -> T:
        async with AsyncMarketClient(market.info["url"], api_key=market.info["api_key"]) as client:
            return await use(client)

    return asyncio.run(go())


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["error"]
    assert body["code"] == code, body
    return body


# --- machines ----------------------------------------------------------------------------------


def test_the_client_lists_and_walks_the_machines(market: Market) -> None:
    async def use(client: AsyncMarketClient) -> tuple[Any, list[Machine], Any]:
        page = await client.list_machines(limit=10)
        walked = [m async for m in client.list_machines_all(limit=1)]
        one = await client.get_machine(market.machine_id)
        return page, walked, one

    page, walked, one = with_client(market, use)
    assert [m.id for m in page.items] == [market.machine_id] and page.next_cursor is None
    assert [m.id for m in walked] == [market.machine_id]
    assert page.items[0] == one.item  # the list entry is the machine record
    assert one.item.status == "active" and one.item.identity_ref == "did:peaq:31337001"


def test_machines_list_has_the_documented_shape_and_checks(market: Market) -> None:
    r = market.http.get("/machines")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"items", "nextCursor"} and r.json()["nextCursor"] is None
    _error(httpx.get(market.info["url"] + "/api/v1/machines"), 401, "AUTH_REQUIRED")
    for bad in ({"limit": "0"}, {"limit": "501"}, {"cursor": "nonsense"}):
        field = _error(market.http.get("/machines", params=bad), 400, "VALIDATION_ERROR")["details"]["field"]
        assert field == next(iter(bad))


# --- pages -------------------------------------------------------------------------------------


def test_pairings_and_orders_are_paged_by_cursor_and_walked_by_the_client(market: Market) -> None:
    pairings = [market.pair() for _ in range(3)]
    orders = [market.order(pairings[0], "svc_hash_budget", data=f"page {i}")["id"] for i in range(3)]

    r = market.http.get(f"/machines/{market.machine_id}/agent-pairings", params={"limit": "2"})
    first = r.json()
    assert len(first["items"]) == 2 and isinstance(first["nextCursor"], str)

    async def use(client: AsyncMarketClient) -> tuple[list[str], list[str], list[str]]:
        p = [x.id async for x in client.list_agent_pairings_all(market.machine_id, limit=2)]
        o = [x.id async for x in client.list_market_orders_all(machine_id=market.machine_id, limit=2)]
        s = [x.id async for x in client.list_market_services_all(limit=3)]
        return p, o, s

    walked_pairings, walked_orders, walked_services = with_client(market, use)
    # Every entry once, oldest first, across pages; the ones made here at the end.
    assert len(walked_pairings) == len(set(walked_pairings))
    assert walked_pairings[-3:] == [p.id for p in pairings]
    assert len(walked_orders) == len(set(walked_orders)) and walked_orders[-3:] == orders
    everything = market.http.get("/market/services", params={"limit": "500"}).json()
    assert everything["nextCursor"] is None
    assert walked_services == [s["id"] for s in everything["items"]] and len(walked_services) > 3


def test_the_catalogue_answers_a_pairing_token_through_the_client(market: Market) -> None:
    pairing = market.pair()

    async def use(client: AsyncMarketClient) -> tuple[list[str], str]:
        listed = await client.list_market_services(
            {"machine_id": market.machine_id}, limit=500, pairing_token=pairing.token
        )
        one = await client.get_market_service("svc_hash_fast", pairing_token=pairing.token)
        return [s.id for s in listed.items], one.item.id

    ids, one = with_client(market, use)
    assert "svc_hash_fast" in ids and one == "svc_hash_fast"


# --- audit -------------------------------------------------------------------------------------


def _walk(market: Market, limit: int, **filters: str) -> list[dict[str, Any]]:
    """Every audit event matching ``filters``, page by page (asserting the pages' shape)."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        params = {**filters, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        r = market.http.get("/audit-events", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        events.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return events
        assert page["items"], "a non-final page must not be empty"
    raise AssertionError("the audit log never ended")


def _escrow_order_to_release(box: Sandbox, market: Market, pairing: Pairing) -> tuple[str, str]:
    """One escrow order through every state: created, intent, held, executed, confirmed, released."""
    order = market.order(pairing, "svc_hash_escrow", data="audited")
    oid = order["id"]
    payment = market.intent(pairing, oid)
    rail = payment["rail"]
    tx = box.evm.deposit(evm_wallet(market.buyer), oid, rail["payeeAddress"], 1_000_000)
    lock = {"transactionHash": tx, "chain": rail["chain"], "escrowAddress": rail["escrowAddress"]}
    assert market.agent(pairing, "POST", f"/market/orders/{oid}/payment/escrow-lock", lock).status_code == 200
    assert market.agent(pairing, "POST", f"/market/orders/{oid}/execute", {}).status_code == 200
    assert market.agent(pairing, "POST", f"/market/orders/{oid}/confirm", {}).status_code == 200
    release_tx = box.evm.release(oid, by=evm_wallet(market.buyer))
    r = market.agent(
        pairing, "POST", f"/market/orders/{oid}/payment/release", {"transactionHash": release_tx}
    )
    assert r.status_code == 200, r.text
    return oid, payment["id"]


def test_every_state_change_of_one_order_has_its_audit_event_in_order(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    oid, pid = _escrow_order_to_release(box, market, pairing)
    # Walk the whole log two events at a time, and pick this order's events out of it.
    everything = _walk(market, 2)
    mine = [e for e in everything if e["resourceId"] in (oid, pid)]
    assert [(e["type"], e["resourceType"]) for e in mine] == [
        ("market.order.created", "market-order"),  # created
        ("market.payment.intent-created", "market-payment"),  # order payment_pending
        ("market.payment.escrow-held", "market-payment"),  # order ready, payment held
        ("market.order.executed", "market-order"),  # delivered
        ("market.order.confirmed", "market-order"),  # confirmed, escrow release_pending
        ("market.payment.released", "market-payment"),  # released on chain by the buyer
    ]
    for event in mine:
        assert set(event) == {"id", "actor", "type", "resourceType", "resourceId", "payload", "createdAt"}
        if event["resourceType"] == "market-payment":
            assert event["payload"]["orderId"] == oid
    assert len({e["id"] for e in everything}) == len(everything)  # no event twice across pages

    # The filters, with paging: one resource, one type, and both at once.
    assert [e["id"] for e in _walk(market, 1, resourceId=oid)] == [
        e["id"] for e in mine if e["resourceId"] == oid
    ]
    payment_events = _walk(market, 1, resourceType="market-payment", resourceId=pid)
    assert [e["type"] for e in payment_events] == [
        "market.payment.intent-created",
        "market.payment.escrow-held",
        "market.payment.released",
    ]
    created = _walk(market, 3, type="market.order.created")
    assert oid in {e["resourceId"] for e in created} and {e["type"] for e in created} == {
        "market.order.created"
    }


def test_audit_events_filter_by_machine_and_reject_a_bad_cursor(market: Market) -> None:
    pairing = market.pair()
    order = market.order(pairing, "svc_hash_budget", data="machine filter")
    ours = _walk(market, 50, machineId=market.machine_id)
    assert {e["resourceId"] for e in ours} >= {pairing.id, order["id"]}
    assert len(ours) == len(_walk(market, 500))  # every event here is about the demo machine
    assert _walk(market, 5, machineId="mach_someone_else") == []
    for bad in ({"cursor": "x"}, {"cursor": "cur_-1"}, {"limit": "0"}, {"limit": "501"}):
        field = _error(market.http.get("/audit-events", params=bad), 400, "VALIDATION_ERROR")["details"][
            "field"
        ]
        assert field == next(iter(bad))


def test_the_client_pages_the_audit_log(market: Market) -> None:
    pairing = market.pair()
    market.order(pairing, "svc_hash_budget", data="client audit")

    async def use(client: AsyncMarketClient) -> tuple[list[str], list[str]]:
        ids: list[str] = []
        cursor: str | None = None
        while True:
            page = await client.list_audit_events(machine_id=market.machine_id, limit=3, cursor=cursor)
            ids.extend(e.id for e in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        whole = await client.list_audit_events(limit=500)
        return ids, [e.id for e in whole.items]

    paged, whole = with_client(market, use)
    assert paged == whole and len(paged) > 3
