"""buyer_agent.testing: what the tests of your agent, strategies and steps need.

- :func:`memory_journal`: a :class:`~buyer_agent.journal.Journal` in memory (SQLite ``:memory:``),
  gone when closed; the same journal, hash chain and leases as on disk, with an injectable clock.
- :class:`ScriptedMarket`: a fake market port (what :class:`~buyer_agent.workflow.Runner` calls)
  that answers from a script of the market client's typed models (``MarketSearch``, ``MarketOrder``,
  …) or raises scripted errors, and records every call; :func:`quote` and :func:`search` build the
  models a strategy sees.
- :func:`sandbox_agent`: a :class:`~buyer_agent.BuyerAgent` on a running :class:`~buyer_agent.sandbox.Sandbox`
  (its market, demo keys and chains) with its own state directory.
- :class:`PostgresServer`: a throwaway PostgreSQL cluster (``initdb`` in a temp dir, 127.0.0.1 and a
  free port, fresh databases on demand), stopped and removed when its owner stops or dies;
  ``buyer_agent.testing.postgres_plugin`` has it as pytest fixtures (``postgres_server``,
  ``postgres_url``), opt-in like the plugin below.
- ``buyer_agent.testing.pytest_plugin``: pytest fixtures over these (a session sandbox, an agent on it,
  an in-memory journal). It is not loaded for everyone: enable it in your tests with
  ``pytest_plugins = ["buyer_agent.testing.pytest_plugin"]`` (in a test module or the root
  ``conftest.py``), or ``pytest -p buyer_agent.testing.pytest_plugin``.
"""

from buyer_agent.testing._journal import memory_journal
from buyer_agent.testing._market import Call, ScriptedMarket, ScriptExhausted, quote, search
from buyer_agent.testing._postgres import PostgresServer, postgres_available
from buyer_agent.testing._sandbox import sandbox_agent

__all__ = [
    "Call",
    "PostgresServer",
    "ScriptExhausted",
    "ScriptedMarket",
    "memory_journal",
    "postgres_available",
    "quote",
    "sandbox_agent",
    "search",
]
