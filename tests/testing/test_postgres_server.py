"""The throwaway PostgreSQL cluster: real, on loopback, and gone when its owner stops or dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from buyer_agent.testing import PostgresServer, postgres_available

pytestmark = pytest.mark.skipif(
    not postgres_available(), reason="PostgreSQL is not installed (scripts/setup)"
)

ROOT = Path(__file__).resolve().parents[2]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_cluster_serves_fresh_databases_and_is_removed_when_stopped() -> None:
    with PostgresServer() as server:
        assert server.data.is_dir() and _listening(server.port)
        a, b = server.create_database(), server.create_database()
        assert a != b
        with psycopg.connect(a) as conn:
            row = conn.execute(
                b"SELECT current_user, inet_server_addr()::text, current_setting('fsync')"
            ).fetchone()
        assert row == ("postgres", "127.0.0.1/32", "on")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(a.replace(server.password, "wrong")).close()
    assert not server.base.exists() and not _listening(server.port)


def test_the_cluster_goes_away_when_its_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from buyer_agent.testing import PostgresServer\n"
         "s = PostgresServer().start(); print(s.base, s.port, flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert owner.stdout is not None
    base, port = owner.stdout.readline().split()
    assert Path(base).is_dir() and _listening(int(port))
    os.kill(owner.pid, signal.SIGKILL)  # no teardown runs in the owner
    owner.wait()
    owner.stdout.close()
    deadline = time.monotonic() + 60
    while (Path(base).exists() or _listening(int(port))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(base).exists() and not _listening(int(port))
