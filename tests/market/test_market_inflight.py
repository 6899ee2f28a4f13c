"""Requests past the client's in-flight bound wait their turn in order; none is lost or failed."""

from __future__ import annotations

import asyncio
import json

import httpx

from buyer_agent.market._transport import MAX_IN_FLIGHT, Transport


def test_at_most_max_in_flight_requests_reach_the_pool_and_all_complete() -> None:
    async def main() -> tuple[int, list[int]]:
        active = peak = 0

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            n = int(request.url.params["n"])
            return httpx.Response(200, json={"data": {"id": f"m{n}"}})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            transport = Transport("https://market.example", None, http, max_in_flight=3)
            answers = await asyncio.gather(
                *(transport.request("GET", "/machines/x", auth=None, query={"n": n}) for n in range(20))
            )
        return peak, [int(a["data"]["id"][1:]) for a in answers]

    peak, ids = asyncio.run(main())
    assert peak == 3
    assert ids == list(range(20))
    assert 1 < MAX_IN_FLIGHT <= 100  # never more than httpx's default pool of 100 connections


def test_the_bound_leaves_single_requests_untouched() -> None:
    async def main() -> dict[str, object]:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=json.dumps({"data": {"ok": True}}).encode())

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            out = await Transport("https://market.example", None, http).request("GET", "/x", auth=None)
        assert isinstance(out, dict)
        return out

    assert asyncio.run(main()) == {"data": {"ok": True}}
