"""A local anvil EVM node on a free loopback port, started and stopped with the sandbox."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import weakref
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from buyer_agent._errors import RailError
from buyer_agent._redact import Secret
from buyer_agent.sandbox.chains._spawn import spawn_guarded, terminate_group

__all__ = ["DEFAULT_MNEMONIC", "EVM_CHAIN_ID", "AnvilNode", "DevAccount", "anvil_available", "find_anvil"]

EVM_CHAIN_ID = 31337
# anvil's own well-known test mnemonic: its keys are public and hold nothing of value.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
_SETUP_HINT = "run scripts/setup (npm install brings @foundry-rs/anvil) or set $BUYER_AGENT_ANVIL"
_LISTENING = re.compile(r"Listening on (\S+):(\d+)")
_ACCOUNT = re.compile(r"^\((\d+)\) (0x[0-9a-fA-F]{40})\b")
_KEY = re.compile(r"^\((\d+)\) (0x[0-9a-fA-F]{64})$")
_HEX_SECRET = re.compile(r"0x[0-9a-fA-F]{64}")
_REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, slots=True)
class DevAccount:
    """One of anvil's pre-funded accounts: its address and its (test-only) private key."""

    address: str
    private_key: Secret


def _candidates(root: Path) -> list[Path]:
    # The native binary first: node_modules/.bin/anvil is a node wrapper that costs a Node start-up and
    # puts a second process between us and anvil.
    native = sorted(root.glob("node_modules/@foundry-rs/anvil-*/bin/anvil"))
    return [*native, root / "node_modules" / ".bin" / "anvil"]


def find_anvil() -> str | None:
    """Path of the anvil binary, or None.

    Looks at ``$BUYER_AGENT_ANVIL``, then ``node_modules`` beside this package's checkout and in the
    current directory (the native ``@foundry-rs/anvil-<platform>`` binary, then ``.bin/anvil``), then
    ``PATH``.
    """
    explicit = os.environ.get("BUYER_AGENT_ANVIL")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for root in dict.fromkeys((_REPO, Path.cwd().resolve())):
        for path in _candidates(root):
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return shutil.which("anvil")


def anvil_available() -> bool:
    """True when :func:`find_anvil` finds a binary (without one the sandbox cannot start its EVM chain)."""
    return find_anvil() is not None


class _Banner:
    """What anvil prints at start-up: its port and its accounts; then a drain of its log."""

    def __init__(self, tail: collections.deque[str]) -> None:
        self.tail = tail
        self.ready = threading.Event()
        self.port: int | None = None
        self.accounts: tuple[DevAccount, ...] = ()

    def read(self, proc: subprocess.Popen[bytes]) -> None:
        """Parse the banner, then keep draining anvil's log so its pipe never fills."""
        assert proc.stdout is not None
        # stop() may close the pipe while a line is still being read (ValueError): the log just ends.
        with contextlib.suppress(ValueError):
            self._read(proc.stdout)
        self.ready.set()  # the process ended: wake start() so it reports the failure at once

    def _read(self, out: Any) -> None:
        section = ""
        addresses: dict[int, str] = {}
        keys: dict[int, str] = {}
        for raw in out:
            line = raw.decode("utf-8", "replace").strip()
            self.tail.append(_HEX_SECRET.sub("0x…", line))
            if self.ready.is_set():
                continue
            if line in ("Available Accounts", "Private Keys"):
                section = line
            elif section == "Available Accounts" and (m := _ACCOUNT.match(line)):
                addresses[int(m.group(1))] = m.group(2)
            elif section == "Private Keys" and (m := _KEY.match(line)):
                keys[int(m.group(1))] = m.group(2)
            elif m := _LISTENING.search(line):
                self.accounts = tuple(
                    DevAccount(address=addresses[i], private_key=Secret(keys[i]))
                    for i in sorted(addresses)
                    if i in keys
                )
                self.port = int(m.group(2))
                self.ready.set()


class AnvilNode:
    """An anvil process on ``127.0.0.1`` with a port the OS picked, chain id 31337, instant mining.

    Usage::

        with AnvilNode() as node:
            node.rpc_url, node.accounts[0].address

    Test controls (plain anvil JSON-RPC, also reachable through :meth:`rpc`): ``evm_setAutomine``
    (:meth:`set_automine`), ``evm_mine`` (:meth:`mine`), ``anvil_dropTransaction``
    (:meth:`drop_transaction`), ``anvil_dropAllTransactions``, ``anvil_setBalance`` (:meth:`set_balance`),
    ``evm_snapshot`` / ``evm_revert``, ``evm_increaseTime``, ``txpool_content``.

    With ``state_dir`` the chain is loaded from and dumped to ``<state_dir>/anvil-state.json`` (on stop
    and every ``state_interval`` seconds), so a node restarted on the same directory keeps its state.
    The process runs in its own process group, dies with this Python process (Linux
    ``PR_SET_PDEATHSIG``), and is stopped by a finalizer if :meth:`stop` is never called.
    """

    def __init__(
        self,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        accounts: int = 5,
        mnemonic: str = DEFAULT_MNEMONIC,
        chain_id: int = EVM_CHAIN_ID,
        block_time: float | None = None,
        state_interval: int = 2,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._accounts_count = accounts
        self._mnemonic = Secret(mnemonic)
        self._chain_id = chain_id
        self._block_time = block_time
        self._state_interval = state_interval
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, AnvilNode] | None = None
        self._port: int | None = None
        self._accounts: tuple[DevAccount, ...] = ()
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._ids = itertools.count(1)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> AnvilNode:
        """Start anvil and wait until it listens; returns ``self``.

        Raises:
            RailError: anvil is not installed (the message names ``scripts/setup``), or it did not
                start within ``startup_timeout`` seconds.
        """
        if self._proc is not None:
            raise RailError("this anvil node is already started")
        binary = self._binary or find_anvil()
        if binary is None:
            raise RailError(f"anvil is not installed: {_SETUP_HINT}")
        argv = [
            binary,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--chain-id",
            str(self._chain_id),
            "--accounts",
            str(self._accounts_count),
            "--mnemonic",
            self._mnemonic.reveal(),
        ]
        if self._block_time is not None:
            argv += ["--block-time", format(Decimal(str(self._block_time)).normalize(), "f")]
        if self._state_dir is not None:
            self._state_dir.mkdir(parents=True, exist_ok=True)
            argv += ["--state", str(self.state_file), "--state-interval", str(self._state_interval)]
        argv += list(self._extra_args)
        try:
            proc = spawn_guarded(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise RailError(f"cannot run anvil at {binary}: {exc.strerror or exc}") from exc
        self._proc = proc
        self._finalizer = weakref.finalize(self, terminate_group, proc)
        banner = _Banner(self._tail)
        # The reader holds only the banner and the tail, not ``self``, so the finalizer can still run.
        threading.Thread(target=banner.read, args=(proc,), name="anvil-output", daemon=True).start()
        if not banner.ready.wait(self._startup_timeout) or banner.port is None:
            tail = self._output_tail()
            self.stop()
            raise RailError(f"anvil did not start within {self._startup_timeout:g} s: {tail}")
        self._port = banner.port
        self._accounts = banner.accounts
        return self

    def _output_tail(self) -> str:
        lines = [line for line in self._tail if line]
        return " | ".join(lines[-5:]) or "no output"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop anvil (SIGTERM to its process group, SIGKILL after ``timeout`` s). Idempotent.

        With a ``state_dir``, anvil dumps its state on this graceful stop.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        terminate_group(proc, timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"rpc_url={self.rpc_url!r}" if self.running else "stopped"
        return f"AnvilNode({state})"

    # --- facts ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the anvil process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The anvil process id while started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def port(self) -> int:
        """The TCP port anvil listens on."""
        if self._port is None:
            raise RailError("anvil is not started")
        return self._port

    @property
    def rpc_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def chain_id(self) -> int:
        """The EVM chain id (31337 unless set)."""
        return self._chain_id

    @property
    def caip2(self) -> str:
        """The chain in CAIP-2 form, ``eip155:<chain id>``."""
        return f"eip155:{self._chain_id}"

    @property
    def accounts(self) -> tuple[DevAccount, ...]:
        """The node's pre-funded accounts (10,000 ETH each at genesis)."""
        return self._accounts

    @property
    def state_file(self) -> Path | None:
        """Where the chain state is loaded from and dumped to, when a ``state_dir`` was given."""
        return self._state_dir / "anvil-state.json" if self._state_dir is not None else None

    # --- JSON-RPC and test controls ------------------------------------------------------------

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call one JSON-RPC method on the node and return its ``result``.

        Raises:
            RailError: the node answered with an error or could not be reached.
        """
        if self._port is None or self._proc is None:
            raise RailError("anvil is not started")
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        request = urllib.request.Request(
            self.rpc_url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            # A plain stdlib request: an httpx client costs ~60 ms to build (TLS context), and this is
            # loopback HTTP only.
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = json.loads(response.read(), parse_float=Decimal)
        except (OSError, ValueError) as exc:
            raise RailError(f"anvil {method} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(payload, dict):
            raise RailError(f"anvil {method}: unexpected answer")
        if payload.get("error"):
            error = payload["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise RailError(f"anvil {method}: {message}")
        return payload.get("result")

    def set_automine(self, enabled: bool) -> None:
        """Turn instant mining on or off (``evm_setAutomine``); off leaves sent transactions pending."""
        self.rpc("evm_setAutomine", [enabled])

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now (``evm_mine`` / ``anvil_mine``)."""
        self.rpc("anvil_mine", [hex(blocks)])

    def drop_transaction(self, tx_hash: str) -> None:
        """Remove a pending transaction from the pool (``anvil_dropTransaction``): it is never mined."""
        self.rpc("anvil_dropTransaction", [tx_hash])

    def set_balance(self, address: str, wei: int) -> None:
        """Set an address's ETH balance (``anvil_setBalance``)."""
        self.rpc("anvil_setBalance", [address, hex(wei)])

    def snapshot(self) -> str:
        """Take a chain snapshot (``evm_snapshot``); returns its id for :meth:`revert`."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> bool:
        """Go back to a snapshot (``evm_revert``); a snapshot can be reverted to once."""
        return bool(self.rpc("evm_revert", [snapshot_id]))

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the node answers ``eth_chainId`` (it normally does as soon as it listens)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.rpc("eth_chainId")
                return
            except RailError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
