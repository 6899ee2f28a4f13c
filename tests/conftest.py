"""Shared fixtures: every test starts with no buyer_agent / peaq environment leaking in."""

from __future__ import annotations

import os

import pytest

_PREFIXES = ("PEAQOS_", "BUYER_AGENT_")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)


# A real PostgreSQL cluster per test session (``postgres_server``) and a fresh database per test
# (``postgres_url``), for the PostgreSQL store's tests; they skip where PostgreSQL is not installed.
pytest_plugins = ["buyer_agent.testing.postgres_plugin"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker more than the cores for ``-n auto``: much of the suite waits on servers and chains."""
    return (os.cpu_count() or 1) + 1
