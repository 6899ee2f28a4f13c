"""Size limits: task files, the service input, journal files and market answers are read bounded.

Each limit is met with a clear one-line error naming it, and an endless input (``/dev/zero``, a FIFO
whose writer never stops, a market that streams forever) is read no further than the limit: the
writer side counts what was taken, and the reader's peak memory stays far below an unbounded read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from buyer_agent import _limits
from buyer_agent._errors import OrchestrationApiError
from buyer_agent.cli import main
from buyer_agent.journal import _export
from buyer_agent.market import AsyncMarketClient, RetryPolicy

TASK = """\
market: sandbox
task:
  service_type: compute.marketplace
  operation: sha256
  input: {data: "%s"}
budget: "2.50 USDC"
"""


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


class EndlessFifo:
    """A FIFO whose writer thread writes ``chunk`` until the reader goes away; counts bytes taken."""

    def __init__(self, path: Path, chunk: bytes, prefix: bytes = b"") -> None:
        os.mkfifo(path)
        self.path = path
        self.written = 0
        self._chunk, self._prefix = chunk, prefix
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError), open(self.path, "wb") as fh:
            fh.write(self._prefix)
            while True:
                fh.write(self._chunk)
                self.written += len(self._chunk)

    def join(self) -> None:
        self._thread.join(timeout=30)


def test_a_task_file_over_the_limit_is_refused_naming_it(tmp_path: Path, capsys: Any) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("#" * (_limits.MAX_TASK_FILE_BYTES + 10) + "\n")
    assert main(["run", str(big)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "larger than the limit of 1 MiB" in line and "big.yaml" in line


def test_an_endless_task_file_is_read_no_further_than_the_limit(tmp_path: Path, capsys: Any) -> None:
    assert main(["run", "/dev/zero"]) == 2
    assert "larger than the limit" in _error_line(capsys.readouterr().err)
    fifo = EndlessFifo(tmp_path / "task.fifo", b"# endless\n" * 4096)
    assert main(["run", str(fifo.path)]) == 2
    assert "larger than the limit" in _error_line(capsys.readouterr().err)
    fifo.join()
    # The writer was stopped by the reader closing: what it wrote is the limit plus pipe buffers.
    assert fifo.written < _limits.MAX_TASK_FILE_BYTES + 4 * 1024 * 1024


def test_a_service_input_over_the_limit_is_refused_before_anything_runs(tmp_path: Path, capsys: Any) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(TASK % ("x" * (_limits.MAX_SERVICE_INPUT_BYTES + 1)))
    assert main(["run", str(task)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "task.input" in line and "over the limit of 256 KiB" in line
    # Just under the limit parses (the size counted is the compact JSON sent to the market).
    from buyer_agent.task import load_task

    task.write_text(TASK % ("x" * (_limits.MAX_SERVICE_INPUT_BYTES - 64)))
    assert load_task(task).spec.input["data"]


@pytest.mark.parametrize("command", ["replay", "import"])
def test_an_endless_journal_file_is_refused(command: str, tmp_path: Path, capsys: Any) -> None:
    args = [command, "/dev/zero", "--state-dir", str(tmp_path / "s")]
    assert main(args) == 2
    assert "larger than the limit of 16 MiB" in _error_line(capsys.readouterr().err)


def test_a_journal_file_over_the_file_limit_is_refused(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_export, "MAX_JOURNAL_FILE_BYTES", 64 * 1024)
    header = b'{"format":"buyer-agent-journal","version":1,"order_id":"o"}\n'
    fifo = EndlessFifo(tmp_path / "journal.fifo", b"{}\n" * 1024, prefix=header)
    assert main(["replay", str(fifo.path)]) == 2
    assert "larger than the limit of 64 KiB" in _error_line(capsys.readouterr().err)
    fifo.join()
    assert fifo.written < 64 * 1024 + 4 * 1024 * 1024


class _Endless(BaseHTTPRequestHandler):
    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        chunk = b'{"data": [' + b'"x",' * 16384
        with contextlib.suppress(OSError):
            while True:
                self.wfile.write(chunk)
                type(self).sent += len(chunk)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endless_market() -> Iterator[str]:
    """A loopback 'market' that answers every GET with a body that never ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_market_answer_is_read_no_further_than_the_limit(endless_market: str) -> None:
    async def go() -> None:
        client = AsyncMarketClient(endless_market, api_key="k", retry=RetryPolicy.none())
        try:
            with pytest.raises(OrchestrationApiError) as err:
                await client.list_machines()
        finally:
            await client.aclose()
        assert err.value.code == "BAD_RESPONSE"
        assert "larger than the limit of 8 MiB" in str(err.value)

    _Endless.sent = 0
    asyncio.run(go())
    assert _Endless.sent < _limits.MAX_MARKET_ANSWER_BYTES + 8 * 1024 * 1024
