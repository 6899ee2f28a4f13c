"""pytest fixtures for a real PostgreSQL server (opt-in: it never loads by itself).

Enable it where your tests live, in a test module or your root ``conftest.py``::

    pytest_plugins = ["buyer_agent.testing.postgres_plugin"]

or for one run with ``pytest -p buyer_agent.testing.postgres_plugin``. The fixtures:

- ``postgres_server`` (session): a :class:`~buyer_agent.testing.PostgresServer` of its own — a fresh
  cluster (``initdb``) in a temp dir on 127.0.0.1 and a free port — stopped and removed when the
  session ends, also when the run is interrupted or killed. Each pytest-xdist worker has its own.
  Skips the test where PostgreSQL is not installed (``scripts/setup`` installs it).
- ``postgres_url``: a new, empty database on that server for each test, as a ``postgresql://`` URL
  (with the password: keep it out of your output).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buyer_agent.testing._postgres import PostgresServer, postgres_available

__all__ = ["postgres_server", "postgres_url"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the whole test session."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (run scripts/setup, or set $BUYER_AGENT_PG_BIN)")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server, as a URL."""
    return postgres_server.create_database()
