"""Starting helper processes (anvil) so that none outlives the Python process that started it."""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

__all__ = ["spawn_guarded", "terminate_group"]

_PR_SET_PDEATHSIG = 1

# Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child exits, not the process.
# A child started from a short-lived thread (asyncio.to_thread, a server thread) would be killed when
# that thread ends; so every guarded child is forked from one daemon thread that lives as long as
# the process does.
_requests: queue.SimpleQueue[tuple[Sequence[str], dict[str, Any], Future[subprocess.Popen[bytes]]]] = (
    queue.SimpleQueue()
)
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL:
    # Loaded in the parent: between fork and exec only async-signal-safe work belongs, and
    # ctypes.util.find_library would even start a subprocess (tens of ms per spawn, measured).
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _set_pdeathsig() -> None:
    """Run in the child between fork and exec: die with SIGKILL when the parent dies."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _serve_spawns() -> None:
    while True:
        argv, kwargs, future = _requests.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(subprocess.Popen(argv, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)


def spawn_guarded(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **kwargs)`` in its own process group, killed if this process dies.

    On Linux the child gets ``PR_SET_PDEATHSIG`` (SIGKILL) and is forked from a process-long daemon
    thread; elsewhere only the process group and the caller's own cleanup protect against orphans.
    """
    global _spawner
    kwargs["start_new_session"] = True
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(argv, **kwargs)
    _load_libc()
    kwargs["preexec_fn"] = _set_pdeathsig
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_serve_spawns, name="buyer-agent-spawner", daemon=True)
            _spawner.start()
    future: Future[subprocess.Popen[bytes]] = Future()
    _requests.put((list(argv), kwargs, future))
    return future.result()


def terminate_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the child's process group, wait up to ``timeout`` s, then SIGKILL it."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout)
