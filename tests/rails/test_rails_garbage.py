"""An RPC answering garbage (or nothing) makes every rail method raise RailError; nothing foreign escapes."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from solders.keypair import Keypair

from buyer_agent import Money
from buyer_agent._errors import RailError
from buyer_agent.rails import EvmRail, PaymentRequest, SignedTx, SolanaRail
from buyer_agent.rails._boundary import rail_errors

EVM_KEY = "0x" + "11" * 32
SOLANA_CHAIN = "solana:Cyx3a8EVvqQZHcaC32RJDgveuK5S9v8b"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# Each mode answers every JSON-RPC call in one broken way.
MODES: dict[str, Callable[[Any], tuple[int, str, bytes]]] = {
    "html": lambda rid: (200, "text/html", b"<html><body>502 Bad Gateway</body></html>"),
    "truncated": lambda rid: (200, "application/json", b'{"jsonrpc": "2.0", "id": 1, "result": {"val'),
    "empty": lambda rid: (200, "application/json", b""),
    "wrong_types": lambda rid: (
        200,
        "application/json",
        json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"value": [{"x": "y"}], "context": 7}}).encode(),
    ),
    "string_result": lambda rid: (
        200,
        "application/json",
        json.dumps({"jsonrpc": "2.0", "id": rid, "result": "zz-not-hex"}).encode(),
    ),
    "null_result": lambda rid: (
        200,
        "application/json",
        json.dumps({"jsonrpc": "2.0", "id": rid, "result": None}).encode(),
    ),
    "bad_error": lambda rid: (
        200,
        "application/json",
        json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": "x", "message": [1]}}).encode(),
    ),
    "status_500": lambda rid: (500, "text/plain", b"internal error"),
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            parsed = json.loads(body, parse_float=Decimal)
            rid = parsed.get("id") if isinstance(parsed, dict) else None
        except ValueError:
            rid = None
        status, ctype, payload = MODES[self.path.strip("/")](rid)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def garbage_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def evm_calls(rail: EvmRail) -> list[Callable[[], Awaitable[Any]]]:
    req = PaymentRequest("o-1", "wallet", "eip155:31337", TOKEN, rail.address, PAYEE, Money(1, 6, "USDC"))
    tx = SignedTx("eip155:31337", "0x" + "ab" * 32, b"\x02\xf8" + b"\x00" * 40, "transfer", {"nonce": 0})
    return [
        lambda: rail.prepare(req),
        lambda: rail.broadcast(tx),
        lambda: rail.status(tx),
        lambda: rail.wait(tx, 0.2),
        lambda: rail.verify(req, [tx]),
    ]


def solana_calls(rail: SolanaRail) -> list[Callable[[], Awaitable[Any]]]:
    mint, payee = str(Keypair().pubkey()), str(Keypair().pubkey())
    req = PaymentRequest("o-1", "wallet", SOLANA_CHAIN, mint, rail.address, payee, Money(1, 6, "USDC"))
    signature = str(Keypair().sign_message(b"x"))
    tx = SignedTx(
        SOLANA_CHAIN, signature, b"\x01" + b"\x00" * 100, "transfer", {"last_valid_block_height": 5}
    )
    return [
        lambda: rail.prepare(req),
        lambda: rail.broadcast(tx),
        lambda: rail.status(tx),
        lambda: rail.wait(tx, 0.2),
        lambda: rail.verify(req, [tx]),
    ]


async def _every_call_raises_rail_error(rail: Any, calls: list[Callable[[], Awaitable[Any]]]) -> None:
    try:
        for call in calls:
            with pytest.raises(RailError):
                await call()
    finally:
        await rail.aclose()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_evm_rail_turns_a_garbage_rpc_into_rail_errors(garbage_url: str, mode: str) -> None:
    rail = EvmRail(f"{garbage_url}/{mode}", EVM_KEY, chain="eip155:31337", poll_interval=0.01)
    asyncio.run(_every_call_raises_rail_error(rail, evm_calls(rail)))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_solana_rail_turns_a_garbage_rpc_into_rail_errors(garbage_url: str, mode: str) -> None:
    rail = SolanaRail(f"{garbage_url}/{mode}", str(Keypair()), chain=SOLANA_CHAIN, poll_interval=0.01)
    asyncio.run(_every_call_raises_rail_error(rail, solana_calls(rail)))


def test_a_dead_node_gives_retryable_rail_errors(dead_url: str) -> None:
    evm = EvmRail(dead_url, EVM_KEY, chain="eip155:31337")
    sol = SolanaRail(dead_url, str(Keypair()), chain=SOLANA_CHAIN)

    async def main() -> None:
        for rail, calls in ((evm, evm_calls(evm)), (sol, solana_calls(sol))):
            try:
                for call in calls:
                    with pytest.raises(RailError) as caught:
                        await call()
                    assert caught.value.retryable, caught.value
            finally:
                await rail.aclose()

    asyncio.run(main())


def test_the_boundary_translates_panics_but_never_interrupts() -> None:
    class PanicException(BaseException):  # the shape of pyo3_runtime.PanicException
        pass

    with pytest.raises(RailError, match="panicked") as caught, rail_errors("decoding"):
        raise PanicException("index out of bounds")
    assert isinstance(caught.value.__cause__, PanicException)
    for exc in (KeyboardInterrupt(), SystemExit(3), asyncio.CancelledError()):
        with pytest.raises(type(exc)), rail_errors("waiting"):
            raise exc


def test_bad_solana_keys_are_refused_without_echoing_them() -> None:
    for bad in ("not-base58-0OIl", "[1, 2, 3]", "[1.5]", "3" * 88):
        with pytest.raises(RailError) as caught:
            SolanaRail("http://127.0.0.1:1", bad, chain=SOLANA_CHAIN)
        assert bad not in str(caught.value)
    keypair = Keypair()
    as_list = json.dumps(list(bytes(keypair)))
    assert SolanaRail("http://127.0.0.1:1", as_list, chain=SOLANA_CHAIN).address == str(keypair.pubkey())
