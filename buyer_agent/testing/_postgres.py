"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, a free loopback port, stopped at exit.

The server is Debian's (``scripts/setup`` installs the ``postgresql`` package when it is missing).
``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user
(``runuser -u postgres --``) on a directory that user owns.

A small watchdog process holds the other end of a pipe from this process: when the pipe closes —
:meth:`PostgresServer.stop`, an interrupted test run, or this process killed outright — it stops the
cluster (``pg_ctl stop -m immediate``) and removes its directory, so no server outlives its tests.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = ["PG_BIN_ENV", "PostgresServer", "find_pg_bin", "postgres_available"]

#: A directory holding ``initdb`` and ``pg_ctl`` (overrides the search of :func:`find_pg_bin`).
PG_BIN_ENV = "BUYER_AGENT_PG_BIN"
_USER = "postgres"

# Runs detached from this process (its own session, so a Ctrl-C at the terminal does not reach it):
# waits for its stdin to close, then stops the cluster and removes its directory.
_WATCHDOG = """
import shutil, subprocess, sys
base, stop = sys.argv[1], sys.argv[2:]
sys.stdin.read()
subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
shutil.rmtree(base, ignore_errors=True)
"""


def find_pg_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (``initdb``, ``pg_ctl``, ``postgres``), or None.

    Looks at ``$BUYER_AGENT_PG_BIN``, then ``initdb`` on ``PATH`` (followed to its real directory),
    then the newest ``/usr/lib/postgresql/<version>/bin`` (where Debian puts them, off ``PATH``).
    """
    explicit = os.environ.get(PG_BIN_ENV)
    if explicit:
        return Path(explicit) if (Path(explicit) / "initdb").is_file() else None
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]), reverse=True
    )
    return Path(versions[0]).parent if versions else None


def postgres_available() -> bool:
    """True when a PostgreSQL server can be started here (its programs, and as root its user)."""
    if find_pg_bin() is None:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_USER)
        except KeyError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster of its own, on 127.0.0.1 and a free port, until :meth:`stop`.

    The superuser is ``postgres`` with a random password (password authentication over TCP, as a
    real server would ask); :attr:`url` names its ``postgres`` database and :meth:`create_database`
    makes a fresh database per test.

    Args:
        bin_dir: PostgreSQL's server programs (default: :func:`find_pg_bin`).
        fsync: Keep PostgreSQL's default ``fsync=on`` (commits reach the disk); ``False`` is faster
            and loses nothing a test can see, except after a power cut.
        settings: More ``-c name=value`` server settings.
    """

    def __init__(
        self, *, bin_dir: Path | None = None, fsync: bool = True, settings: Sequence[str] = ()
    ) -> None:
        found = bin_dir or find_pg_bin()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (run scripts/setup, or set $BUYER_AGENT_PG_BIN)")
        self.bin_dir = found
        self.fsync = fsync
        self.settings = list(settings)
        self.port = 0
        self.password = secrets.token_urlsafe(18)
        self.base = Path(tempfile.mkdtemp(prefix="buyer-agent-pg-"))
        self.data = self.base / "data"
        self._as_postgres = os.geteuid() == 0
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._databases = 0
        self._options = ""

    def __repr__(self) -> str:
        return f"PostgresServer(port={self.port}, data={str(self.data)!r})"

    def _cmd(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", _USER, "--", *argv] if self._as_postgres else argv

    def _run(self, program: str, *args: str) -> None:
        proc = subprocess.run(
            self._cmd(program, *args), capture_output=True, text=True, check=False, cwd=self.base
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"{program} failed: {detail[-1] if detail else proc.returncode}")

    def start(self) -> PostgresServer:
        """``initdb`` a new cluster and start it; return self (stopped by :meth:`stop`)."""
        if self._as_postgres:
            entry = pwd.getpwnam(_USER)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        stop = self._cmd("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.base), *stop],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_postgres:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", _USER, f"--pwfile={pwfile}", "-E", "UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
                "--no-instructions",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        for attempt in range(3):
            self.port = _free_port()
            options = [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.base}",
                f"-c fsync={'on' if self.fsync else 'off'}",
                *(f"-c {s}" for s in self.settings),
            ]
            try:
                self._run(
                    "pg_ctl", "start", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                    "-t", "60", "-o", " ".join(options),
                )  # fmt: skip
                self._options = " ".join(options)
                return self
            except RuntimeError:
                if attempt == 2:  # a port taken between our probe and the server's bind, thrice
                    self.stop()
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")  # pragma: no cover

    def restart(self) -> None:
        """Stop the server (``-m fast``: open connections are cut) and start it again, same port and data."""
        # -l: the new server writes to the log, not to our pipes (which would then never close).
        log = str(self.base / "server.log")
        self._run("pg_ctl", "restart", "-D", str(self.data), "-l", log, "-m", "fast", "-w", "-t", "60")

    def crash(self) -> None:
        """Stop the server as a crash would (``pg_ctl stop -m immediate``): connections cut, no checkpoint.

        :meth:`start_again` brings it back (it recovers from its write-ahead log, as after a crash).
        """
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def start_again(self) -> None:
        """Start the server stopped by :meth:`crash`, on the same port and data."""
        log = str(self.base / "server.log")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", self._options)

    @property
    def url(self) -> str:
        """The superuser's URL of the ``postgres`` database (it carries the password)."""
        return self.database_url(_USER)

    def database_url(self, name: str) -> str:
        """The superuser's URL of database ``name``."""
        return f"postgresql://{_USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name when None) and return its URL."""
        import psycopg  # the postgres extra; only the tests that make databases need it
        from psycopg import sql

        self._databases += 1
        name = name or f"test_{self._databases}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def stop(self) -> None:
        """Stop the cluster and remove its directory (waits for the watchdog to finish)."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:  # never started: only the directory to remove
            shutil.rmtree(self.base, ignore_errors=True)
            return
        with contextlib.suppress(OSError):
            if watchdog.stdin is not None:
                watchdog.stdin.close()
        try:
            watchdog.wait(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - pg_ctl stop hung
            watchdog.kill()
            watchdog.wait()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
