"""pytest fixtures for testing what you build on buyer_agent (opt-in: it never loads by itself).

Enable it where your tests live, in a test module or your root ``conftest.py``::

    pytest_plugins = ["buyer_agent.testing.pytest_plugin"]

or for one run with ``pytest -p buyer_agent.testing.pytest_plugin``. The fixtures:

- ``buyer_sandbox`` (session): a started :class:`~buyer_agent.sandbox.Sandbox` — the local market
  with anvil and a LiteSVM Solana RPC on 127.0.0.1, funded demo wallets — as its
  :class:`~buyer_agent.sandbox.SandboxInfo`; stopped when the session ends. Needs ``anvil`` (Foundry)
  and the Node LiteSVM RPC, as ``python -m buyer_agent sandbox`` does.
- ``buyer_agent_on_sandbox``: a :class:`~buyer_agent.SyncBuyerAgent` on that sandbox with its own
  journal in ``tmp_path``; closed after the test. (For async tests build one with
  :func:`buyer_agent.testing.sandbox_agent` from ``buyer_sandbox``.)
- ``memory_journal``: an in-memory :class:`~buyer_agent.journal.Journal`, closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from buyer_agent.agent import SyncBuyerAgent
from buyer_agent.journal import Journal
from buyer_agent.sandbox import Sandbox, SandboxInfo
from buyer_agent.testing._journal import memory_journal as _memory_journal
from buyer_agent.testing._sandbox import sandbox_agent

__all__ = ["buyer_agent_on_sandbox", "buyer_sandbox", "memory_journal"]


@pytest.fixture(scope="session")
def buyer_sandbox() -> Iterator[SandboxInfo]:
    """A sandbox market with its chains for the whole test session."""
    sandbox = Sandbox()
    info = sandbox.start()
    try:
        yield info
    finally:
        sandbox.stop()


@pytest.fixture
def buyer_agent_on_sandbox(buyer_sandbox: SandboxInfo, tmp_path: Path) -> Iterator[SyncBuyerAgent]:
    """A blocking agent on the session's sandbox, its journal in this test's ``tmp_path``."""
    with SyncBuyerAgent(sandbox_agent(buyer_sandbox, tmp_path / "state")) as agent:
        yield agent


@pytest.fixture
def memory_journal() -> Iterator[Journal]:
    """A journal in memory, closed after the test."""
    journal = _memory_journal()
    try:
        yield journal
    finally:
        journal.close()
