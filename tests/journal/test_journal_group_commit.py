"""Group commit: intents of many orders in flight share one sync of the log, and none returns before it."""

from __future__ import annotations

import asyncio
import os
import threading
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


def test_the_shared_sync_flushes_the_log_off_the_event_loop_and_intents_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "t.db")
    store = SqliteStore(journal)
    flushed: list[str] = []
    real_fsync = os.fsync
    release = threading.Event()

    def slow_fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else "?")
        assert release.wait(10)  # the disk is slow: held until the loop has shown it runs
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)

    async def go() -> None:
        for order_id in ("o1", "o2", "o3"):
            await store.create_order(order_id, {})
        # Two orders' intents in one sync: it goes to a worker thread (one alone syncs in line).
        intents = asyncio.gather(
            *(store.record(o, "intent:create_market_order", "created", "created", {}) for o in ("o1", "o3"))
        )
        for _ in range(500):
            if flushed:
                break
            await asyncio.sleep(0.01)
        assert flushed, "the shared sync never flushed the log"
        # The sync waits on the disk; meanwhile the loop runs and another order journals.
        note = await store.record("o2", "note:x", "created", "created", {})
        assert note.seq == 2 and not intents.done()
        release.set()
        assert [e.seq for e in await intents] == [2, 2]

    try:
        asyncio.run(go())
        if flushed != ["?"]:
            assert flushed == [f"{tmp_path / 't.db'}-wal"]
    finally:
        journal.close()
