"""Journal benchmark: events committed per second vs raw SQLite single-row commits, same durability."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from buyer_agent.journal import Journal

__all__ = ["JournalFigures", "bench_journal"]

_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class JournalFigures:
    """Journal events/s, raw SQLite commits/s, and their ratio (target ≥ 0.8)."""

    events_per_s: float
    raw_commits_per_s: float

    @property
    def ratio(self) -> float:
        """``events_per_s / raw_commits_per_s``."""
        return self.events_per_s / self.raw_commits_per_s


def bench_journal(workdir: Path, n_events: int, durability: str = "normal") -> JournalFigures:
    """Commit ``n_events`` journal events and ``n_events`` raw rows, alternating in rounds.

    Both sides use a WAL database file with the same ``synchronous`` setting; the raw side inserts
    one row per transaction with a payload of the same size, so the ratio shows what the journal's
    hash chain, state check and order-row update cost on top of a bare durable commit.
    """
    journal = Journal(workdir / "bench-journal.db", durability=durability)
    raw = sqlite3.connect(str(workdir / "bench-raw.db"), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    raw.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, order_id TEXT, payload TEXT)")
    payload = {"tx_id": "0x" + "ab" * 32, "purpose": "payment"}
    text = '{"purpose":"payment","tx_id":"0x' + "ab" * 32 + '"}'
    per_round = max(1, n_events // _ROUNDS)
    journal_s = raw_s = 0.0
    done = 0
    try:
        for r in range(_ROUNDS):
            order_id = f"ord_bench_{r}"
            journal.create_order(order_id, {"bench": True})
            started = time.perf_counter()
            for _ in range(per_round):
                journal.record(order_id, "note:bench", "created", "created", payload)
            journal_s += time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(per_round):
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("INSERT INTO rows (order_id, payload) VALUES (?, ?)", (order_id, text))
                raw.execute("COMMIT")
            raw_s += time.perf_counter() - started
            done += per_round
    finally:
        journal.close()
        raw.close()
    return JournalFigures(events_per_s=done / journal_s, raw_commits_per_s=done / raw_s)
