"""No silent stalls on the command line: waits show on stderr within seconds, ``run --timeout`` bounds a run.

Real sockets: a loopback server that accepts and never answers, a closed port, and the served
sandbox refusing a 10 MB ``input`` with one 413 instead of hundreds of retries.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, clean_env, cli, market_env

KEY = "0x" + "1" * 64


class Silent:
    """A loopback server that accepts every connection and never answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first_accept: float | None = None


@pytest.fixture
def silent() -> Iterator[Silent]:
    """A loopback server that accepts every connection and never answers (time of its first accept)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    server = Silent(f"http://127.0.0.1:{sock.getsockname()[1]}")

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue
            if server.first_accept is None:
                server.first_accept = time.monotonic()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def timed_run(*args: str, env: dict[str, str]) -> tuple[int, list[tuple[float, str]], float]:
    """Run the CLI; its exit code, each stderr line with its time (monotonic), and how long it ran
    from its first stderr line to its exit (the interpreter's start-up, which a loaded machine
    stretches to many seconds, is not the run's to bound)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stderr is not None
    with proc.stderr:
        lines = [(time.monotonic(), line.rstrip("\n")) for line in proc.stderr]
    code = proc.wait(timeout=120)
    first = lines[0][0] if lines else time.monotonic()
    return code, lines, time.monotonic() - first


def remote_env(url: str) -> dict[str, str]:
    return clean_env(
        PEAQOS_API_KEY="pk-test", PEAQOS_MACHINE_ID="mach_x", BUYER_AGENT_EVM_KEY=KEY, BUYER_AGENT_EVM_RPC=url
    )


def test_a_market_that_never_answers_is_said_within_seconds_and_timeout_bounds_the_run(
    silent: Silent, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    code, lines, took = timed_run(
        "run", "examples/task.yaml", "--market", silent.url, "--state-dir", str(state), "--timeout", "4",
        env=remote_env(silent.url),
    )  # fmt: skip
    waits = [(at, line) for at, line in lines if line.startswith("wait: ")]
    assert silent.first_accept is not None
    assert waits and waits[0][0] - silent.first_accept < 3.0, lines
    assert "no answer after" in waits[0][1] and "attempt 1" in waits[0][1]
    assert code == 1
    assert took < 4 + 10
    last = lines[-1][1]
    assert last.startswith("error: the run stopped after --timeout 4 s; order ord_")
    assert "kept in state created" in last and "resume" in last
    # the order's state is kept: it is listed, open, and resume can pick it up
    listed = cli("orders", "--state-dir", str(state), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [o["state"] for o in json.loads(listed.stdout)] == ["created"]


def test_a_closed_port_is_said_within_seconds(tmp_path: Path) -> None:
    url = closed_port()
    code, lines, took = timed_run(
        "run", "examples/task.yaml", "--market", url, "--state-dir", str(tmp_path), "--timeout", "6",
        env=remote_env(url),
    )  # fmt: skip
    waits = [(at, line) for at, line in lines if line.startswith("wait: ")]
    assert waits, lines
    assert "could not reach the market" in waits[0][1] and "next try in" in waits[0][1]
    # no gap of more than a few seconds without a line while it waits
    times = [at for at, _ in lines]
    assert max(b - a for a, b in itertools.pairwise(times)) < 5.0, lines
    assert code == 1 and took < 6 + 10


def test_a_10_mb_input_is_refused_before_anything_is_sent(external: dict[str, Any], tmp_path: Path) -> None:
    # The task file's size limit refuses it when the task is read (exit 2), before pairing; that a 413
    # from the market is not retried is shown on the client in tests/market/test_market_stalls.py.
    task = (ROOT / "examples" / "task.yaml").read_text()
    big = task.replace('input: {data: "hello machine markets"}', 'input: {data: "' + "a" * (10 << 20) + '"}')
    path = tmp_path / "big.yaml"
    path.write_text(big)
    code, lines, took = timed_run(
        "run", str(path), "--market", external["url"], "--state-dir", str(tmp_path / "s"),
        env=market_env(external),
    )  # fmt: skip
    assert code == 2
    assert took < 60, lines
    assert not [line for _, line in lines if line.startswith("wait: ")], lines
    assert "larger than the limit of 1 MiB" in lines[-1][1], lines
