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


#: The suite's longest files (minutes each: crash loops, forked CLIs), started first so that the
#: short files fill the other workers around them rather than these being the run's tail.
LONG_FIRST = (
    "tests/reliability/test_reliability_fleet.py",
    "tests/reliability/test_reliability_crash.py",
    "tests/cli/test_cli_crash_resume.py",
    "tests/reliability/test_reliability_secrets.py",
    "tests/cli/test_cli_crash_x402.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest files first (a stable sort: the order within and between the rest is kept)."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker more than the cores for ``-n auto``: much of the suite waits on servers and chains."""
    return (os.cpu_count() or 1) + 1
