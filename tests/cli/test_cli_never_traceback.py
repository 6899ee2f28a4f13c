"""Every command, given bad paths, bad ports, closed pipes, binary input and SIGINT: never a traceback.

Each case runs the real command line in a subprocess and asserts the documented exit code (0 ok,
1 failed, 2 bad usage or unreadable input, 130 interrupted), one ``error:`` line on stderr naming
the problem, no ``Traceback``, and no partial output file (no ``FILE`` and no ``FILE.part``).
The commands are taken from ``--help``, so a new command without a case here fails the walk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, clean_env, cli

GOLDEN = ROOT / "tests" / "golden" / "order_confirmed_v1.jsonl"
ORDER = "ord_golden_1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A state dir holding one order, a binary file, a file to put paths under, a good export."""
    root = tmp_path_factory.mktemp("world")
    state = root / "state"
    proc = cli("import", str(GOLDEN), "--allow-unsigned", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr
    binary = root / "binary.jsonl"
    binary.write_bytes(bytes(range(256)) * 64)
    plain = root / "plain.txt"
    plain.write_text("a file, not a directory\n")
    good = root / "good.jsonl"
    shutil.copy(GOLDEN, good)
    return {"root": root, "state": state, "db": state / "buyer_agent.db", "binary": binary, "plain": plain,
            "good": good}  # fmt: skip


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") or lines[0] == "interrupted", err
    return lines[0]


# (id, argv with {placeholders}, exit code, a fragment of the error line)
CASES: list[tuple[str, list[str], int, str]] = [
    ("run-missing", ["run", "{root}/missing.yaml"], 2, "No such file"),
    ("run-directory", ["run", "{root}"], 2, "Is a directory"),
    ("run-binary", ["run", "{binary}"], 2, "not UTF-8"),
    ("run-endless", ["run", "/dev/zero"], 2, "larger than the limit"),
    (
        "run-bad-port",
        ["run", str(ROOT / "examples/task.yaml"), "--market", "http://127.0.0.1:99999"],
        2,
        "99999",
    ),
    (
        "run-state-dir-file",
        ["run", str(ROOT / "examples/task.yaml"), "--state-dir", "{plain}"],
        2,
        "not a directory",
    ),
    ("resume-state-dir-file", ["resume", "--state-dir", "{plain}"], 2, "not a directory"),
    ("resume-state-dir-db", ["resume", "--state-dir", "{db}"], 2, "not a directory"),
    ("orders-state-dir-file", ["orders", "--state-dir", "{binary}"], 2, "not a directory"),
    ("show-missing-order", ["show", "ord_nope", "--state-dir", "{state}"], 1, "ord_nope"),
    ("show-state-dir-file", ["show", ORDER, "--state-dir", "{plain}"], 2, "not a directory"),
    ("export-to-directory", ["export", ORDER, "--state-dir", "{state}", "-o", "{root}"], 2, "is a directory"),
    (
        "export-under-a-file",
        ["export", ORDER, "--state-dir", "{state}", "-o", "{plain}/x.jsonl"],
        2,
        "cannot write",
    ),
    (
        "export-no-folder",
        ["export", ORDER, "--state-dir", "{state}", "-o", "{root}/no/x.jsonl"],
        2,
        "cannot write",
    ),
    (
        "export-missing-order",
        ["export", "ord_nope", "--state-dir", "{state}", "-o", "{root}/n.jsonl"],
        1,
        "ord_nope",
    ),
    ("import-binary", ["import", "{binary}", "--state-dir", "{root}/dst"], 2, "not a JSON header"),
    ("import-db", ["import", "{db}", "--state-dir", "{root}/dst"], 2, "not a JSON header"),
    ("import-directory", ["import", "{root}", "--state-dir", "{root}/dst"], 2, "cannot read"),
    ("import-endless", ["import", "/dev/zero", "--state-dir", "{root}/dst"], 2, "larger than the limit"),
    ("import-missing", ["import", "{root}/missing.jsonl", "--state-dir", "{root}/dst"], 2, "cannot read"),
    ("replay-binary", ["replay", "{binary}"], 2, "not a JSON header"),
    ("replay-db", ["replay", "{db}"], 2, "not a JSON header"),
    ("replay-endless", ["replay", "/dev/zero"], 2, "larger than the limit"),
    ("replay-missing", ["replay", "{root}/missing.jsonl", "--state-dir", "{state}"], 2, "neither"),
    ("evidence-binary", ["evidence", "{binary}"], 2, "not a JSON header"),
    (
        "evidence-to-directory",
        ["evidence", ORDER, "--state-dir", "{state}", "-o", "{root}"],
        2,
        "is a directory",
    ),
    (
        "evidence-under-a-file",
        ["evidence", ORDER, "--state-dir", "{state}", "-o", "{plain}/e.json"],
        2,
        "cannot write",
    ),
    ("sandbox-bad-port", ["sandbox", "--port", "99999"], 2, "--port"),
    ("sandbox-negative-port", ["sandbox", "--port", "-1"], 2, "--port"),
    ("approve-missing-order", ["approve", "ord_nope", "--state-dir", "{state}"], 1, "ord_nope"),
    ("approve-state-dir-file", ["approve", ORDER, "--state-dir", "{plain}"], 2, "not a directory"),
    ("mcp-missing-task", ["mcp", "--task", "{root}/missing.yaml"], 2, "No such file"),
    ("mcp-binary-task", ["mcp", "--task", "{binary}"], 2, "not UTF-8"),
    ("bench-bad-levels", ["bench", "--in-flight", "abc"], 2, "--in-flight"),
    ("pair-state-dir-file", ["pair", "--state-dir", "{plain}"], 2, "not a directory"),
    ("pair-bad-port", ["pair", "--market", "http://127.0.0.1:99999", "--state-dir", "{root}/p"], 2, "99999"),
    ("cancel-missing-order", ["cancel", "ord_nope", "--state-dir", "{state}"], 1, "ord_nope"),
    ("cancel-state-dir-file", ["cancel", ORDER, "--state-dir", "{plain}"], 2, "not a directory"),
    ("pay-bad-tx", ["pay", ORDER, "--tx", "nothex", "--state-dir", "{state}"], 2, "--tx"),
    (
        "pay-missing-order",
        ["pay", "ord_nope", "--tx", "0x" + "ab" * 32, "--state-dir", "{state}"],
        1,
        "ord_nope",
    ),
    (
        "pay-state-dir-file",
        ["pay", ORDER, "--tx", "0x" + "ab" * 32, "--state-dir", "{plain}"],
        2,
        "not a directory",
    ),
    (
        "pay-not-ordered",
        ["pay", ORDER, "--tx", "0x" + "ab" * 32, "--state-dir", "{state}"],
        1,
        "it is confirmed",
    ),
    (
        "pay-no-journal",
        ["pay", ORDER, "--tx", "0x" + "ab" * 32, "--state-dir", "{root}/none"],
        1,
        "no journal",
    ),
    ("networks-missing", ["networks", "{root}/missing.yaml"], 2, "No such file"),
    ("networks-binary", ["networks", "{binary}"], 2, "not UTF-8"),
    ("doctor-missing", ["doctor", "{root}/missing.yaml"], 2, "No such file"),
    ("doctor-binary", ["doctor", "{binary}"], 2, "not UTF-8"),
    ("doctor-endless", ["doctor", "/dev/zero"], 2, "larger than the limit"),
    ("ui-state-dir-file", ["ui", "--state-dir", "{plain}"], 2, "not a directory"),
    ("ui-bad-port", ["ui", "--port", "99999", "--state-dir", "{state}"], 2, "--port"),
    ("ui-other-host", ["ui", "--host", "0.0.0.0", "--state-dir", "{state}"], 2, "127.0.0.1 only"),
    ("store-missing-from", ["store", "copy", "--from", "{root}/none", "--to", "{root}/s2"], 2, "no journal"),
    ("store-from-binary", ["store", "copy", "--from", "{binary}", "--to", "{root}/s3"], 2, "not a journal"),
    ("store-other-scheme", ["store", "copy", "--from", "{db}", "--to", "mysql://x/y"], 2, "mysql://"),
    ("store-to-under-a-file", ["store", "copy", "--from", "{db}", "--to", "{plain}/x"], 2, "not a directory"),
    ("store-same", ["store", "copy", "--from", "{db}", "--to", "{state}"], 2, "same store"),
    (
        "store-unreachable",
        ["store", "copy", "--from", "{db}", "--to", "postgresql://u:secretpw@127.0.0.1:1/x"],
        1,
        "127.0.0.1",
    ),
    # The fleet (issue 16): a shared store's orders need a market that outlives the process.
    ("submit-missing", ["submit", "{root}/missing.yaml", "--state-dir", "{root}/q"], 2, "No such file"),
    (
        "submit-embedded-sandbox",
        ["submit", str(ROOT / "examples/task.yaml"), "--state-dir", "{root}/q"],
        2,
        "embedded sandbox",
    ),
    ("submit-bad-count", ["submit", str(ROOT / "examples/task.yaml"), "--count", "0"], 2, "--count"),
    (
        "run-store-embedded-sandbox",
        ["run", str(ROOT / "examples/task.yaml"), "--store", "{root}/q"],
        2,
        "embedded sandbox",
    ),
    (
        "run-store-and-state-dir",
        ["run", str(ROOT / "examples/task.yaml"), "--store", "{root}/q", "--state-dir", "{root}/q"],
        2,
        "not both",
    ),
    ("worker-no-market", ["worker", "--state-dir", "{root}/w"], 2, "PEAQOS_ORCHESTRATION_URL"),
    ("worker-bad-concurrency", ["worker", "--concurrency", "0"], 2, "--concurrency"),
    (
        "worker-unreachable-store",
        ["worker", "--market", "http://127.0.0.1:1", "--store", "postgresql://u:secretpw@127.0.0.1:1/x"],
        1,
        "127.0.0.1",
    ),
    ("resume-store-missing", ["resume", "--store", "{root}/none"], 2, "no journal"),
    # Found by the audit of issue 19 (a hostile user's further tries):
    ("replay-bad-signer", ["replay", "{good}", "--signer", "nope"], 2, "--signer"),
    (
        "import-bad-signer",
        ["import", "{good}", "--signer", "nope", "--state-dir", "{root}/dst"],
        2,
        "--signer",
    ),
    (
        "replay-bad-rpc-port",
        ["replay", "{good}", "--check-chain", "--evm-rpc", "http://127.0.0.1:99999"],
        2,
        "99999",
    ),
    ("replay-unknown-strategy", ["replay", "{good}", "--strategy", "nosuch"], 2, "unknown strategy"),
    (
        "run-bad-strategy-json",
        ["run", str(ROOT / "examples/task.yaml"), "--strategy", "{{bad"],
        2,
        "--strategy",
    ),
    (
        "sandbox-networks-file-directory",
        ["sandbox", "--networks-file", "{root}", "--state-dir", "{root}/sbx"],
        2,
        "is a directory",
    ),
]


# Commands whose output is piped into a reader that has gone (``| head``).
PIPED: list[list[str]] = [
    ["export", ORDER, "-o", "-", "--state-dir", "{state}"],
    ["replay", "{good}"],
    ["replay", "{good}", "--json"],
    ["orders", "--state-dir", "{state}"],
    ["show", ORDER, "--state-dir", "{state}"],
    ["evidence", ORDER, "--state-dir", "{state}"],
    ["diagram"],
]


def _argv(template: list[str], world: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in world.items()}) for a in template]


def test_every_command_has_a_case() -> None:
    proc = cli("--help")
    listed = re.findall(r"^    (\w+) ", proc.stdout, re.M)
    assert listed, proc.stdout
    covered = {case[1][0] for case in CASES} | {argv[0] for argv in PIPED}
    assert set(listed) <= covered, set(listed) - covered


@pytest.mark.parametrize(("argv", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_an_exit_code(
    world: dict[str, Path], argv: list[str], code: int, fragment: str
) -> None:
    args = _argv(argv, world)
    env = clean_env(PEAQOS_API_KEY="k", PEAQOS_MACHINE_ID="m", BUYER_AGENT_EVM_KEY="0x" + "11" * 32,
                    BUYER_AGENT_EVM_RPC="http://127.0.0.1:1")  # fmt: skip
    proc = cli(*args, env=env, timeout=120)
    line = _one_error_line(proc.stderr)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert fragment in line, line
    if "-o" in args:
        out = Path(args[args.index("-o") + 1])
        assert not out.with_name(out.name + ".part").exists()
        assert out.is_dir() or not out.exists()


def test_a_directory_replay_lists_a_binary_file_as_broken_and_replays_the_rest(
    world: dict[str, Path], tmp_path: Path
) -> None:
    shutil.copy(world["good"], tmp_path / "a.jsonl")
    shutil.copy(world["binary"], tmp_path / "b.jsonl")
    shutil.copy(world["db"], tmp_path / "c.jsonl")
    proc = cli("replay", str(tmp_path), "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["orders"] == 1 and doc["summary"]["unreadable"] == 2
    assert sorted(Path(b["source"]).name for b in doc["summary"]["broken"]) == ["b.jsonl", "c.jsonl"]


def _closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone (as ``| head`` that has exited)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", *args], stdout=write, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env=clean_env(),
        )  # fmt: skip
    finally:
        os.close(write)
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, "", err)


@pytest.mark.parametrize("argv", PIPED, ids=lambda a: "-".join(x for x in a if not x.startswith("{"))[:40])
def test_a_closed_pipe_is_not_an_error(world: dict[str, Path], argv: list[str]) -> None:
    proc = _closed_pipe(*_argv(argv, world))
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr


class _Fifo:
    """A FIFO the test writes the start of a journal into, then leaves open (the reader waits)."""

    def __init__(self, path: Path, first: bytes) -> None:
        os.mkfifo(path)
        self.path = path
        self.opened = threading.Event()
        self._first = first
        self._fh: Any = None
        threading.Thread(target=self._open, daemon=True).start()

    def _open(self) -> None:
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(self._first)
        self._fh.flush()
        self.opened.set()

    def close(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self._fh.close()


@pytest.mark.parametrize("command", ["import", "replay"])
def test_sigint_while_reading_input_is_interrupted_not_a_traceback(
    world: dict[str, Path], tmp_path: Path, command: str
) -> None:
    fifo = _Fifo(tmp_path / "in.fifo", GOLDEN.read_bytes().splitlines(keepends=True)[0])
    args = [command, str(fifo.path)]
    if command == "import":
        args += ["--state-dir", str(tmp_path / "dst")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env=clean_env(),
    )  # fmt: skip
    try:
        # The writer's open returns once the command has opened the FIFO: it is past start-up,
        # inside the command, reading.
        assert fifo.opened.wait(60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        fifo.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert _one_error_line(err) == "interrupted"
    if command == "import":
        # Nothing half-imported: no order in the destination.
        listed = cli("orders", "--json", "--state-dir", str(tmp_path / "dst"))
        assert listed.returncode == 0 and json.loads(listed.stdout or "[]") == []


def test_sandbox_port_in_use_and_sigint(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("sandbox", "--port", str(port), "--state-dir", str(tmp_path / "a"), timeout=120)
    assert proc.returncode == 2
    assert "Address already in use" in _one_error_line(proc.stderr) and str(port) in proc.stderr


@pytest.mark.chains
def test_sandbox_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", "sandbox", "--state-dir", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_export_to_a_fifo_writes_into_it_and_leaves_it_a_fifo(world: dict[str, Path], tmp_path: Path) -> None:
    # A non-regular file named by -o is written in place: renaming FILE.part over it replaced the
    # node itself (as root, ``export -o /dev/full`` turned /dev/full into a plain file).
    import stat

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    proc = cli("export", ORDER, "--state-dir", str(world["state"]), "-o", str(fifo))
    reader.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced by a file"
    assert not (tmp_path / "out.fifo.part").exists()
    assert got and json.loads(got[0].splitlines()[0])["order_id"] == ORDER


def test_an_endless_networks_file_is_refused_not_read_forever(tmp_path: Path) -> None:
    env = clean_env(BUYER_AGENT_NETWORKS="/dev/zero")
    for argv in (["networks"], ["run", str(ROOT / "examples/task.yaml"), "--state-dir", str(tmp_path)]):
        proc = cli(*argv, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "larger than the limit" in _one_error_line(proc.stderr)
