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


#: The seeded SIGKILL loop: three to four minutes on one worker, the suite's longest file but the
#: fleet's. In collection order it started twelve minutes into a fifteen-minute run and was its tail,
#: the other workers idle; first, the rest of the suite fills the other workers around it. Only this
#: one: with the fleet's loop and the forked-CLI crash files first too, the loops ran together and
#: fought over the two cores (15:17 against 13:03).
FIRST = "tests/reliability/test_reliability_crash.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put :data:`FIRST` first (a stable sort: every other test keeps its place)."""
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] != FIRST)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker more than the cores for ``-n auto``: much of the suite waits on servers and chains."""
    return (os.cpu_count() or 1) + 1
