"""Requests past the client's in-flight bound wait their turn in order; none is lost or failed."""

from __future__ import annotations

import asyncio
import json

import httpx

from buyer_agent.market._transport import MAX_IN_FLIGHT, Transport, new_http_client


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


def test_orders_in_flight_reuse_the_clients_connections_instead_of_opening_new_ones() -> None:
    """Two waves of 100 requests at once to a real loopback server: one pool's worth of connections.

    Through httpx's real pool (the test above replaces it): the client opens no more connections
    than it sends requests at once, and the second wave reuses them rather than opening more.
    """

    async def main() -> tuple[int, int, list[int]]:
        accepted = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    n = head.split(b" ", 2)[1].rsplit(b"n=", 1)[1]
                    await asyncio.sleep(0.005)
                    body = b'{"data": {"id": "m' + n + b'"}}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        http = new_http_client()
        transport = Transport(f"http://127.0.0.1:{port}", None, http)
        ids: list[int] = []
        opened = []
        try:
            for wave in range(2):
                answers = await asyncio.gather(
                    *(
                        transport.request("GET", "/machines/x", auth=None, query={"n": wave * 100 + n})
                        for n in range(100)
                    )
                )
                ids += [int(a["data"]["id"][1:]) for a in answers]
                opened.append(accepted)
        finally:
            await http.aclose()
            server.close()
            await server.wait_closed()
        return opened[0], opened[1], ids

    first, both, ids = asyncio.run(main())
    assert ids == list(range(200))
    assert first <= MAX_IN_FLIGHT
    assert both == first  # the second wave opened no connection
