"""Group commit: intents of many orders in flight share one sync of the log, and none returns before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buyer_agent.journal import Journal
from buyer_agent.journal._sqlite_store import SqliteStore


def test_intents_committed_together_share_one_sync_and_return_only_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "g.db")
    store = SqliteStore(journal)
    syncs: list[int] = []
    real_sync = journal.sync

    def counted() -> None:
        # Every intent recorded so far is committed when the shared sync runs.
        syncs.append(
            journal.db.execute("SELECT COUNT(*) FROM events WHERE trigger LIKE 'intent:%'").fetchone()[0]
        )
        real_sync()

    monkeypatch.setattr(journal, "sync", counted)

    async def go() -> None:
        for i in range(20):
            await store.create_order(f"o{i}", {"n": i})
        events = await asyncio.gather(
            *(
                store.record(f"o{i}", "intent:create_market_order", "created", "created", {"i": i})
                for i in range(20)
            )
        )
        assert len(events) == 20
        # One more intent after they all returned: a sync of its own.
        await store.record("o0", "intent:execute_market_order", "created", "created", {})
        # Notes and a search's intent need no sync.
        await store.record("o0", "note:x", "created", "created", {})
        await store.record("o0", "intent:search_market", "created", "created", {})

    try:
        asyncio.run(go())
        assert syncs == [20, 21]
        assert journal.db.execute("SELECT n FROM sync_mark").fetchone()[0] == 2
    finally:
        journal.close()


def test_a_journal_that_syncs_every_commit_or_lives_in_memory_needs_no_group_sync(tmp_path: Path) -> None:
    full = Journal(tmp_path / "f.db", durability="full")
    memory = Journal(None)
    try:
        assert full.needs_sync("intent:create_market_order") is False
        assert memory.needs_sync("intent:create_market_order") is False
        normal = Journal(tmp_path / "n.db")
        assert normal.needs_sync("intent:create_market_order") is True
        assert normal.needs_sync("intent:search_market") is False and normal.needs_sync("pay") is False
        normal.close()
    finally:
        full.close()
        memory.close()
