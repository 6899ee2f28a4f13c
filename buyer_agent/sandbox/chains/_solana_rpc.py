"""A local Solana JSON-RPC endpoint over HTTP, backed by LiteSVM, with the test USDC mint."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from buyer_agent._errors import RailError
from buyer_agent.sandbox.chains._solana_ledger import SolanaLedger
from buyer_agent.sandbox.chains._solana_methods import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    SolanaRpcMethods,
)
from buyer_agent.sandbox.chains._solana_setup import USDC_DECIMALS, SolanaChain

__all__ = ["SolanaRpcServer"]

_log = logging.getLogger(__name__)
_MAX_BODY = 4 * 1024 * 1024
_MAX_BATCH = 100


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections are tracked so stop() can close them: shutdown() alone only stops accepting.
    connections: set[socket.socket]
    methods: SolanaRpcMethods

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    # Without this, each small response waits for a delayed ACK: ~40 ms per request (measured).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("solana rpc: " + format, *args)

    def do_GET(self) -> None:
        self._reply(405, b"Used HTTP Method is not allowed. POST or OPTIONS is required", "text/plain")

    def do_POST(self) -> None:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._reply(411, b"Content-Length required", "text/plain")
            return
        length = int(length_header)
        if length > _MAX_BODY:
            self.close_connection = True
            self._reply(413, b"Payload Too Large", "text/plain")
            return
        body = self.rfile.read(length)
        answer = _handle_body(self.server.methods, body)
        self._reply(200, json.dumps(answer, separators=(",", ":")).encode(), "application/json")

    def _reply(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _handle_body(methods: SolanaRpcMethods, body: bytes) -> Any:
    try:
        request = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return _error(None, RpcError(PARSE_ERROR, "Parse error"))
    if isinstance(request, list):
        if not request or len(request) > _MAX_BATCH:
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request"))
        return [_handle_one(methods, item) for item in request]
    return _handle_one(methods, request)


def _handle_one(methods: SolanaRpcMethods, request: Any) -> dict[str, Any]:
    if (
        not isinstance(request, dict)
        or request.get("jsonrpc") != "2.0"
        or not isinstance(request.get("method"), str)
    ):
        rid = request.get("id") if isinstance(request, dict) else None
        return _error(rid, RpcError(INVALID_REQUEST, "Invalid request"))
    rid = request.get("id")
    handler = methods.handlers.get(request["method"])
    if handler is None:
        return _error(rid, RpcError(METHOD_NOT_FOUND, "Method not found"))
    params = request.get("params", [])
    if params is None:
        params = []
    if not isinstance(params, list):
        return _error(rid, RpcError(INVALID_PARAMS, "Invalid params: expected an array"))
    try:
        result = handler(params)
    except RpcError as exc:
        return _error(rid, exc)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        # Never a traceback on the wire; LiteSVM panics (BaseException) land here too.
        _log.warning("solana rpc %s failed: %s: %s", request["method"], type(exc).__name__, exc)
        return _error(rid, RpcError(INTERNAL_ERROR, "Internal error"))
    return {"jsonrpc": "2.0", "result": result, "id": rid}


def _error(rid: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.to_json(), "id": rid}


class SolanaRpcServer:
    """Solana JSON-RPC on ``127.0.0.1:<free port>``, executed by LiteSVM with the SPL programs.

    On start it creates the test USDC mint (6 decimals; the sandbox holds the mint authority).
    :attr:`chain` funds wallets and reads balances in-process; :attr:`ledger` holds the test controls
    (also reachable over RPC as the ``sandbox_*`` methods of :class:`SolanaRpcMethods`).

    Time moves only with activity by default (one block per landed transaction), which keeps tests
    deterministic; ``block_interval`` (seconds, e.g. 0.4 as on a cluster) also lets empty blocks pass
    with wall time, so blockhashes expire by themselves. ``state_dir`` keeps the ledger across
    restarts (``solana-state.json``, saved on stop and every ``save_interval`` seconds).

    The CAIP-2 id is ``solana:`` + the first 32 characters of the genesis hash. LiteSVM has no genesis
    block, so the genesis hash is a fixed sha256 of a sandbox seed: stable across restarts and unlike
    any real cluster's.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        usdc_decimals: int = USDC_DECIMALS,
        state_dir: str | os.PathLike[str] | None = None,
        save_interval: float = 2.0,
        block_interval: float | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._decimals = usdc_decimals
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._save_interval = save_interval
        self._block_interval = block_interval
        self._saver: threading.Thread | None = None
        self._stopping = threading.Event()
        self._methods: SolanaRpcMethods | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ledger: SolanaLedger | None = None
        self._chain: SolanaChain | None = None

    def start(self) -> SolanaRpcServer:
        """Build the ledger and the mint, and start serving; returns ``self``.

        Raises:
            RailError: the ledger could not be set up or the port could not be bound.
        """
        if self._server is not None:
            raise RailError("this Solana RPC server is already started")
        try:
            ledger = SolanaLedger(block_interval=self._block_interval)
            saved = self._load()
            if saved is not None:
                ledger.restore(saved["ledger"])
                chain = SolanaChain(ledger, state=saved["chain"])
            else:
                chain = SolanaChain(ledger, decimals=self._decimals)
        except RailError:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise RailError(f"cannot set up LiteSVM: {type(exc).__name__}: {exc}") from exc
        try:
            server = _Server((self._host, self._port), _Handler)
        except OSError as exc:
            raise RailError(f"cannot listen on {self._host}:{self._port}: {exc.strerror or exc}") from exc
        server.connections = set()
        server.methods = self._methods = SolanaRpcMethods(ledger, info=self.info)
        self._ledger, self._chain, self._server = ledger, chain, server
        if self._state_dir is not None:
            self._save()
            self._stopping.clear()
            self._saver = threading.Thread(target=self._save_loop, name="solana-state", daemon=True)
            self._saver.start()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="solana-rpc", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in list(server.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._stopping.set()
        if self._saver is not None:
            self._saver.join(5)
            self._saver = None
        if self._state_dir is not None and self._ledger is not None:
            self._save()

    # --- state across restarts -------------------------------------------------------------------

    @property
    def state_file(self) -> Path | None:
        """Where the ledger is saved (on stop and every ``save_interval`` s), when a state dir is set."""
        return self._state_dir / "solana-state.json" if self._state_dir is not None else None

    def _load(self) -> dict[str, Any] | None:
        path = self.state_file
        if path is None or not path.is_file():
            return None
        try:
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        except (OSError, ValueError) as exc:
            raise RailError(f"cannot read the Solana state in {path}: {exc}") from exc
        return loaded

    def _save(self) -> None:
        path = self.state_file
        if path is None or self._ledger is None or self._chain is None:
            return
        state = {"ledger": self._ledger.snapshot(), "chain": self._chain.snapshot()}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        # Written aside and renamed, so a crash mid-write never leaves half a state file.
        temporary.write_text(json.dumps(state, default=str), encoding="utf-8")
        os.replace(temporary, path)

    def _save_loop(self) -> None:
        while not self._stopping.wait(self._save_interval):
            if self._ledger is not None and self._ledger.dirty:
                try:
                    self._save()
                except (OSError, RailError) as exc:
                    _log.warning("saving the Solana state failed: %s", exc)

    # --- in-process reads ------------------------------------------------------------------------

    def get_transaction(self, signature: str, encoding: str = "json") -> dict[str, Any] | None:
        """``getTransaction`` answered in-process (v0 allowed): the RPC's JSON, or None if not landed.

        Raises:
            RailError: the server is not started, or the request is invalid.
        """
        if self._methods is None:
            raise RailError("the Solana RPC server is not started")
        config = {"encoding": encoding, "maxSupportedTransactionVersion": 0}
        try:
            answer: dict[str, Any] | None = self._methods.get_transaction([signature, config])
        except RpcError as exc:
            raise RailError(f"getTransaction failed: {exc.message}") from exc
        return answer

    def __enter__(self) -> SolanaRpcServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"SolanaRpcServer(rpc_url={self.rpc_url!r})"
            if self._server is not None
            else "SolanaRpcServer(stopped)"
        )

    # --- facts -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._server is None:
            raise RailError("the Solana RPC server is not started")
        return int(self._server.server_address[1])

    @property
    def rpc_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self._host}:{self.port}"

    @property
    def ledger(self) -> SolanaLedger:
        """The LiteSVM ledger behind the RPC (test controls: expire blockhashes, hold, drop)."""
        if self._ledger is None:
            raise RailError("the Solana RPC server is not started")
        return self._ledger

    @property
    def chain(self) -> SolanaChain:
        """The USDC mint and the funding helpers."""
        if self._chain is None:
            raise RailError("the Solana RPC server is not started")
        return self._chain

    @property
    def genesis_hash(self) -> str:
        """The fixed sandbox genesis hash (base58)."""
        return self.ledger.genesis_hash

    @property
    def caip2(self) -> str:
        """``solana:`` + the first 32 characters of the genesis hash."""
        return "solana:" + self.genesis_hash[:32]

    @property
    def mint(self) -> str:
        """The test USDC mint address."""
        return str(self.chain.mint)

    def info(self) -> dict[str, Any]:
        """Public facts for ``sandbox_info``: chain id, genesis hash, mint, decimals, mint authority."""
        return {
            "chain": self.caip2,
            "genesisHash": self.genesis_hash,
            "mint": self.mint,
            "decimals": self.chain.decimals,
            "mintAuthority": self.chain.mint_authority,
        }
