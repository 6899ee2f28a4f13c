"""A small external signer for tests and demos: one EVM key in its own process, spoken to over JSON-RPC.

It answers the methods Clef and Web3Signer offer for this, so an agent configured with
``keys: {evm: {signer: URL}}`` signs through it without ever holding the key::

    BUYER_KEY=0x… python -m buyer_agent.testing.signer --key-env BUYER_KEY --port 0
    {"url": "http://127.0.0.1:41234", "address": "0x…", "pid": 12345}

Methods: ``eth_accounts``, ``eth_signTransaction`` (the raw signed transaction),
``account_signTransaction`` (Clef's ``{raw, tx}``), ``personal_sign [data, address]``,
``eth_sign [address, data]``, ``eth_signTypedData_v4 [address, typedData]``, and
``testing_signed`` (how many of each it signed). It signs only for its own address, listens on
127.0.0.1 only, removes the key's variable from its environment once read, logs one line per request
to stderr (never a key), and stops on SIGTERM / SIGINT and when its parent process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

from buyer_agent._errors import SignerError
from buyer_agent._redact import Secret
from buyer_agent.signers import EvmTransaction, LocalEvmSigner

__all__ = ["SignerProcess", "SignerServer", "main"]

log = logging.getLogger("buyer_agent.testing.signer")

_MAX_BODY = 1 << 20


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _hex_data(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise _RpcError(-32602, f"{what} must be 0x hex data")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise _RpcError(-32602, f"{what} is not hex") from None


class SignerServer:
    """The signer's JSON-RPC server on ``127.0.0.1`` (in this process; see :class:`SignerProcess`).

    Args:
        key: The EVM private key it signs with.
        port: The TCP port (0 = a free one).
    """

    def __init__(self, key: str | Secret, *, port: int = 0) -> None:
        self._signer = LocalEvmSigner(key)
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.signed: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return f"SignerServer(address={self.address!r}, url={self._url_or_none()!r})"

    @property
    def address(self) -> str:
        """The address it signs for."""
        return self._signer.address

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        url = self._url_or_none()
        if url is None:
            raise RuntimeError("the signer is not started")
        return url

    def _url_or_none(self) -> str | None:
        if self._httpd is None:
            return None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> SignerServer:
        """Listen and serve on a daemon thread; returns ``self``."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    self.send_error(413)
                    return
                answer = server.answer(self.rfile.read(length))
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # answer() logs one line per request, without its parameters

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="signer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> SignerServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- JSON-RPC ---------------------------------------------------------------------------------

    def answer(self, body: bytes) -> dict[str, Any]:
        """The JSON-RPC answer to one request body."""
        request_id: Any = None
        try:
            request = json.loads(body)
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise _RpcError(-32600, "not a JSON-RPC request")
            request_id = request.get("id")
            params = request.get("params") or []
            if not isinstance(params, list):
                raise _RpcError(-32602, "params must be a list")
            method = str(request["method"])
            result = self._dispatch(method, params)
        except _RpcError as exc:
            log.info("signer: refused %s", exc.message)
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": exc.message}}
        except ValueError as exc:
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32700, "message": str(exc)}}
        log.info("signer: answered %s", method)
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _dispatch(self, method: str, params: Sequence[Any]) -> Any:
        if method in ("eth_accounts", "account_list"):
            return [self.address]
        if method == "testing_signed":
            with self._lock:
                return dict(self.signed)
        if method in ("eth_signTransaction", "account_signTransaction"):
            return self._sign_transaction(method, params)
        if method == "personal_sign":
            return self._sign_message(method, _hex_data(_at(params, 0), "data"), _at(params, 1))
        if method == "eth_sign":
            return self._sign_message(method, _hex_data(_at(params, 1), "data"), _at(params, 0))
        if method == "eth_signTypedData_v4":
            return self._sign_typed(method, _at(params, 0), _at(params, 1))
        raise _RpcError(-32601, f"the method {method} does not exist/is not available")

    def _mine(self, address: Any) -> None:
        if not isinstance(address, str) or address.lower() != self.address.lower():
            raise _RpcError(-32000, f"this signer holds no key for {address!r}")

    def _count(self, method: str) -> None:
        with self._lock:
            self.signed[method] += 1

    def _sign_transaction(self, method: str, params: Sequence[Any]) -> Any:
        obj = _at(params, 0)
        if not isinstance(obj, Mapping):
            raise _RpcError(-32602, "the transaction must be an object")
        self._mine(obj.get("from"))
        try:
            tx = EvmTransaction.from_rpc(obj)
        except ValueError as exc:
            raise _RpcError(-32602, f"bad transaction: {exc}") from None
        signed = asyncio.run(self._signer.sign_transaction(tx))
        self._count(method)
        raw = "0x" + signed.raw.hex()
        if method == "account_signTransaction":
            return {"raw": raw, "tx": {**obj, "hash": signed.tx_hash}}
        return raw

    def _sign_message(self, method: str, data: bytes, address: Any) -> str:
        self._mine(address)
        signature = asyncio.run(self._signer.sign_message(data))
        self._count(method)
        return "0x" + signature.hex()

    def _sign_typed(self, method: str, address: Any, document: Any) -> str:
        self._mine(address)
        typed = json.loads(document) if isinstance(document, str) else document
        if not isinstance(typed, Mapping):
            raise _RpcError(-32602, "typedData must be an object or its JSON text")
        try:
            signature = asyncio.run(self._signer.sign_typed_data(typed))
        except (ValueError, TypeError, KeyError) as exc:
            raise _RpcError(-32602, f"bad typed data: {exc}") from None
        self._count(method)
        return "0x" + signature.hex()


def _at(params: Sequence[Any], index: int) -> Any:
    if len(params) <= index:
        raise _RpcError(-32602, f"missing parameter {index}")
    return params[index]


class SignerProcess:
    """``python -m buyer_agent.testing.signer`` as a child process; its URL and address once ready.

    The key reaches the child only through the environment variable ``key_env`` of ``env``.
    """

    def __init__(self, key_env: str, env: Mapping[str, str], *, port: int = 0, timeout: float = 30.0) -> None:
        self._argv = [sys.executable, "-m", "buyer_agent.testing.signer", "--key-env", key_env]
        self._argv += ["--port", str(port)]
        self._env = dict(env)
        self._timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.address = ""

    def start(self) -> SignerProcess:
        """Start it and read its JSON line. Raises SignerError if it does not come up."""
        self.proc = subprocess.Popen(
            self._argv, env=self._env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            _, err = self.proc.communicate(timeout=self._timeout)
            raise SignerError(f"the signer did not start: {err.strip()[-300:]}")
        facts = json.loads(line)
        self.url, self.address = str(facts["url"]), str(facts["address"])
        return self

    def stop(self) -> str:
        """SIGTERM it, wait, and return what it wrote on stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        return err or ""

    def __enter__(self) -> SignerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _die_with_parent(stop: threading.Event) -> None:
    """Set ``stop`` when the parent process dies (this process is then re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                log.info("signer: the parent process is gone; stopping")
                stop.set()

    threading.Thread(target=watch, name="signer-parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the signer until SIGTERM / SIGINT or the parent's death; exit 0 (2 on bad usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m buyer_agent.testing.signer",
        description="A JSON-RPC signer (Clef / Web3Signer methods) holding one EVM key, on 127.0.0.1.",
    )
    parser.add_argument("--key-env", required=True, metavar="VAR", help="the variable holding the key")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: a free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    key = os.environ.pop(args.key_env, "").strip()
    if not key:
        print(f"error: --key-env: the variable {args.key_env} is not set", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("error: --port must be 0..65535", file=sys.stderr)
        return 2
    try:
        server = SignerServer(Secret(key), port=args.port)
    except SignerError as exc:
        print(f"error: --key-env: {exc}", file=sys.stderr)
        return 2
    del key
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    _die_with_parent(stop)
    with server:
        sys.stdout.write(
            json.dumps({"url": server.url, "address": server.address, "pid": os.getpid()}) + "\n"
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    log.info("signer: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
