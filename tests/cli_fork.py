"""``python -m buyer_agent ARGS`` run in a forked child of one process that imported the command line once.

A test suite that runs the command line a few hundred times spends most of each run starting the
interpreter and importing (about 1.4 s of CPU a process here, most of it eth-account's import of
py_ecc); on two cores that was a fifth of the suite. :func:`run` gives what ``subprocess.run`` gives
(a ``CompletedProcess`` with the exit code, stdout and stderr as text; ``TimeoutExpired`` after
killing the child) from a child forked off a *zygote*: a process started once per test process
with a clean environment, which imports the command line and the modules a command imports, then
only forks. Each child takes the caller's arguments, environment and working directory, reads
stdin from ``/dev/null``, writes stdout and stderr to files the caller reads, runs the package's
``__main__`` as ``-m`` does, runs the exit handlers and ends with the command's exit code (or the
signal that killed it, negative, as ``subprocess`` says it).

What a forked child cannot show is the interpreter start itself (a warning or an error raised while
importing); the tests that start the real interpreter (``test_cli_never_traceback``, the sandbox's
and the doctor's, the packaging test) still do. The zygote listens on a Unix socket in a private
directory, never a network port, and ends when the process that started it does.

Run as a script, this file is the zygote: ``python tests/cli_fork.py SOCKET``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Imported by the zygote before it forks: the command line, every command, and what ``run`` reaches.
PRELOAD = (
    "buyer_agent.cli",
    "buyer_agent.commands",
    "buyer_agent.sandbox",
    "buyer_agent.rails",
    "buyer_agent.signers",
    "buyer_agent.journal",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any PEAQOS_ / BUYER_AGENT_ variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    env.update(extra)
    return env


class _Lines:
    """The JSON lines a socket sends, read one at a time (``None`` once it closes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self) -> Any:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)  # a timeout leaves the buffer as it was
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


# --- the zygote ---------------------------------------------------------------------------------


def preload() -> None:
    """Import what a command imports, and do the work a process does once, so forked children skip both.

    Also used by the crash suite's fork servers (``crash_worker.py``, ``fleet_killer.py``).
    """
    import importlib
    import pkgutil

    for name in PRELOAD:
        module = importlib.import_module(name)
        if name == "buyer_agent.commands":
            for info in pkgutil.iter_modules(module.__path__, name + "."):
                importlib.import_module(info.name)
    import httpcore  # noqa: F401 - httpx imports it when the first client is made

    from buyer_agent._tls import tls_context
    from buyer_agent.cli import build_parser
    from buyer_agent.networks._profiles import builtin_networks

    tls_context()  # the certificate store, loaded once
    builtin_networks()  # the packaged profiles, read once
    build_parser()


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m buyer_agent ARGS`` and exit with its code."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # what ``python -m`` puts first: the working directory
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
            (2, request["stderr"], os.O_WRONLY | os.O_TRUNC),
        ):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = ["-m", *request["args"]]
        import runpy

        runpy.run_module("buyer_agent", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # what the interpreter does with a message: print it, exit 1
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code & 0xFF)


def serve(path: str) -> None:
    """Preload, listen on ``path``, fork a child per request, answer its pid and then its exit code."""
    preload()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    print("ready", flush=True)
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.settimeout(10.0)  # a caller that connects and never asks holds others up 10 s at most
                try:
                    request = _Lines(conn).read()
                except (OSError, ValueError):
                    request = None
                if request is None:
                    conn.close()
                    continue
                conn.settimeout(None)
                pid = os.fork()
                if pid == 0:  # nothing of the server's stays open in the command's process
                    signal.set_wakeup_fd(-1)
                    selector.close()
                    for sock in (listener, conn, *waiting.values()):
                        sock.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    _child(request)
                waiting[pid] = conn
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            else:
                os.read(wake_r, 4096)
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid)
            with contextlib.suppress(OSError):  # the caller may have gone away
                conn.sendall(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            conn.close()


# --- the caller's side --------------------------------------------------------------------------


class _Zygote:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cli-fork-")
        self.path = os.path.join(self.dir, "zygote.sock")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, self.path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=clean_env(),
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        assert ready.strip() == "ready", f"the CLI zygote did not start: {ready!r}"
        atexit.register(self.stop)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _started() -> _Zygote:
    global _zygote
    with _zygote_lock:
        if _zygote is None or _zygote.proc.poll() is not None:
            _zygote = _Zygote()
        return _zygote


def run(
    *args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS`` as ``subprocess.run(..., capture_output=True, text=True)`` gives it."""
    zygote = _started()
    argv = [sys.executable, "-m", "buyer_agent", *args]
    with tempfile.TemporaryDirectory(prefix="cli-run-") as out:
        paths = {"stdout": os.path.join(out, "stdout"), "stderr": os.path.join(out, "stderr")}
        for path in paths.values():
            Path(path).touch()
        request = {
            "args": list(args),
            "env": dict(os.environ if env is None else env),
            "cwd": str(cwd or ROOT),
            **paths,
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(zygote.path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            answers = _Lines(sock)
            pid = answers.read()["pid"]
            sock.settimeout(timeout)
            try:
                done = answers.read()
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                sock.settimeout(None)
                answers.read()
                raise subprocess.TimeoutExpired(
                    argv, timeout, Path(paths["stdout"]).read_text(), Path(paths["stderr"]).read_text()
                ) from None
        assert done is not None, "the CLI zygote went away"
        stdout = Path(paths["stdout"]).read_text()
        stderr = Path(paths["stderr"]).read_text()
    return subprocess.CompletedProcess(argv, done["code"], stdout, stderr)


if __name__ == "__main__":
    # As ``python -m`` started in the repository: its directory first, not this one (whose
    # ``strategies`` test folder would shadow the package of that name).
    sys.path[0] = str(ROOT)
    serve(sys.argv[1])
