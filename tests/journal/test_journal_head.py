"""The database keeps each order row at its chain head: appends only there, from the row's state."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from sqlite_utils import Database

from buyer_agent import JournalError
from buyer_agent.journal import GENESIS_HASH, Journal, event_hash
from buyer_agent.journal._canonical import dumps
from buyer_agent.journal._schema import MIGRATIONS


def test_another_writer_moving_the_order_is_seen_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    mine, theirs = Journal(path), Journal(path)
    mine.create_order("o1", {})
    mine.record("o1", "pair", "created", "paired", {"p": 1})
    # Another process appends in the same state, then moves the order on.
    theirs.record("o1", "note:seen", "paired", "paired", {"n": 1})
    ev = mine.record("o1", "note:mine", "paired", "paired", {"n": 2})
    assert ev.seq == 4 and ev.prev_hash == theirs.events("o1")[2].hash
    theirs.record("o1", "search", "paired", "searched", {})
    with pytest.raises(JournalError, match="is searched, not paired"):
        mine.record("o1", "note:late", "paired", "paired", {})
    assert [e.trigger for e in mine.events("o1")] == ["submit", "pair", "note:seen", "note:mine", "search"]
    assert mine.verify("o1") == 5
    assert mine.order("o1").state == "searched"


def test_the_database_refuses_an_event_not_at_the_head(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    first = journal.create_order("o1", {})
    journal.record("o1", "pair", "created", "paired", {})

    def insert(seq: int, src: str, prev: str) -> None:
        at = "2026-01-01T00:00:00.000000Z"
        digest = event_hash(prev, order_id="o1", seq=seq, at=at, trigger="x", src=src, dst=src, payload={})
        journal.db.execute(
            "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
            "VALUES ('o1', ?, ?, 'x', ?, ?, '{}', ?, ?)",
            [seq, at, src, src, prev, digest],
        )

    head = journal.events("o1")[-1]
    for seq, src, prev in [(3, "created", head.hash), (2, "paired", first.hash), (3, "paired", first.hash)]:
        with pytest.raises(sqlite3.IntegrityError, match="stale writer"):
            insert(seq, src, prev)
    assert journal.verify("o1") == 2


def test_context_patches_are_exact_and_remove_keys(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.create_order("o1", {}, context={"keep": "k", "drop": 1})
    huge = 2**200
    journal.record(
        "o1",
        "note:c",
        "created",
        "created",
        {},
        {
            "price": Decimal("1.000000000000000000000001"),
            "big": huge,
            "nested": {"b": [1, "x"]},
            "drop": None,
        },
    )
    ctx = dict(journal.order("o1").context)
    assert ctx == {
        "keep": "k",
        "price": Decimal("1.000000000000000000000001"),
        "big": huge,
        "nested": {"b": [1, "x"]},
    }
    assert str(ctx["price"]) == "1.000000000000000000000001"  # exact: every digit kept
    with pytest.raises(JournalError, match="not a plain name"):
        journal.record("o1", "note:c", "created", "created", {}, {'a"b': 1})
    with pytest.raises(TypeError, match="float"):
        journal.record("o1", "note:c", "created", "created", {}, {"f": 0.5})
    assert len(journal.events("o1")) == 2  # the refused patches wrote nothing


def test_a_journal_written_before_the_head_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path, isolation_level=None))
    MIGRATIONS.apply(db, stop_before="m002_order_head")
    at = "2026-01-01T00:00:00.000000Z"
    db.execute(
        "INSERT INTO orders (order_id, state, context, spec, created_at, updated_at) "
        "VALUES ('o1', 'paired', '{}', '{}', ?, ?)",
        [at, at],
    )
    prev = GENESIS_HASH
    for seq, (trigger, src, dst) in enumerate(
        [("submit", "created", "created"), ("pair", "created", "paired")], 1
    ):
        digest = event_hash(
            prev, order_id="o1", seq=seq, at=at, trigger=trigger, src=src, dst=dst, payload={}
        )
        db.execute(
            "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
            "VALUES ('o1', ?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, at, trigger, src, dst, dumps({}), prev, digest],
        )
        prev = digest
    db.close()
    journal = Journal(path)
    ev = journal.record("o1", "search", "paired", "searched", {})
    assert (ev.seq, ev.prev_hash) == (3, prev)
    assert journal.verify("o1") == 3


def test_intents_are_synced_before_their_effect_and_other_events_are_not(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.create_order("o1", {})
    seen: list[str] = []
    journal.db.conn.set_trace_callback(seen.append)

    def syncs(trigger: str, src: str, dst: str) -> list[str]:
        seen.clear()
        journal.record("o1", trigger, src, dst, {})
        assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL after
        return [s for s in seen if s.startswith("PRAGMA synchronous=")]

    assert syncs("intent:broadcast_payment", "created", "created") == [
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
    ]
    assert syncs("result:broadcast_payment", "created", "created") == []
    assert syncs("pair", "created", "paired") == []
    full = Journal(tmp_path / "full.db", durability="full")
    full.create_order("o1", {})
    full.db.conn.set_trace_callback(seen.append)
    seen.clear()
    full.record("o1", "intent:x", "created", "created", {})
    assert not [s for s in seen if s.startswith("PRAGMA")]  # every commit is synced there already


def test_an_event_the_table_refuses_leaves_the_head_where_it_was(tmp_path: Path) -> None:
    # The head moves inside the insert's own statement: an event refused after the head check (here
    # by the payload's NOT NULL) takes the row's move back with it.
    journal = Journal(tmp_path / "j.db")
    first = journal.create_order("o1", {})
    at = "2026-01-01T00:00:00.000000Z"
    digest = event_hash(
        first.hash, order_id="o1", seq=2, at=at, trigger="x", src="created", dst="paired", payload={}
    )
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        journal.db.execute(
            "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
            "VALUES ('o1', 2, ?, 'x', 'created', 'paired', NULL, ?, ?)",
            [at, first.hash, digest],
        )
    row = journal.db.execute("SELECT state FROM orders WHERE order_id = 'o1'").fetchone()
    assert tuple(row) == ("created",)
    assert [e.hash for e in journal.events("o1")] == [first.hash]
    assert journal.record("o1", "pair", "created", "paired", {}).seq == 2


def test_the_database_refuses_events_of_unknown_orders_and_keeps_orders_that_have_events(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.create_order("o1", {})
    at = "2026-01-01T00:00:00.000000Z"
    digest = event_hash(
        GENESIS_HASH, order_id="o2", seq=1, at=at, trigger="submit", src="created", dst="created", payload={}
    )
    with pytest.raises(sqlite3.IntegrityError, match="stale writer"):
        journal.db.execute(
            "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
            "VALUES ('o2', 1, ?, 'submit', 'created', 'created', '{}', ?, ?)",
            [at, GENESIS_HASH, digest],
        )
    with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
        journal.db.execute("DELETE FROM orders WHERE order_id = 'o1'")
    with pytest.raises(sqlite3.IntegrityError, match="cannot be renamed"):
        journal.db.execute("UPDATE orders SET order_id = 'o9' WHERE order_id = 'o1'")
    assert journal.verify("o1") == 1


def test_events_written_before_the_clustered_table_are_moved_into_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path, isolation_level=None))
    MIGRATIONS.apply(db, stop_before="m006_events_clustered")
    db.close()
    hashes = []
    conn = sqlite3.connect(path, isolation_level=None)
    at = "2026-01-01T00:00:00.000000Z"
    conn.execute(
        "INSERT INTO orders (order_id, state, context, spec, created_at, updated_at) "
        "VALUES ('o1', 'created', '{}', '{}', ?, ?)",
        [at, at],
    )
    prev = GENESIS_HASH
    for seq, (trigger, src, dst) in enumerate(
        [("submit", "created", "created"), ("pair", "created", "paired")], 1
    ):
        digest = event_hash(
            prev, order_id="o1", seq=seq, at=at, trigger=trigger, src=src, dst=dst, payload={}
        )
        conn.execute(
            "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
            "VALUES ('o1', ?, ?, ?, ?, ?, '{}', ?, ?)",
            [seq, at, trigger, src, dst, prev, digest],
        )
        hashes.append(digest)
        prev = digest
    conn.close()
    journal = Journal(path)
    table = journal.db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "WITHOUT ROWID" in table
    assert [e.hash for e in journal.events("o1")] == hashes
    assert journal.order("o1").state == "paired"
    assert journal.record("o1", "search", "paired", "searched", {}).prev_hash == hashes[-1]
    assert journal.verify("o1") == 3


def test_the_head_is_the_newest_event_and_an_effect_record_leaves_the_row_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.create_order("o1", {})
    row_before = journal.db.execute("SELECT * FROM orders WHERE order_id = 'o1'").fetchone()
    effect = journal.record("o1", "result:x", "created", "created", {"n": 1})
    assert journal.db.execute("SELECT * FROM orders WHERE order_id = 'o1'").fetchone() == row_before
    assert journal.order("o1").updated_at == effect.at  # read as the newest event's time
    assert journal.orders()[0].updated_at == effect.at
    # A second writer that has not seen the effect is refused at the old head, then appends after it.
    other = Journal(tmp_path / "j.db")
    moved = other.record("o1", "pair", "created", "paired", {})
    assert (moved.seq, moved.prev_hash) == (3, effect.hash)
    with pytest.raises(JournalError, match="is paired, not created"):
        journal.record("o1", "result:y", "created", "created", {})
    assert journal.verify("o1") == 3


def test_an_orders_large_values_move_out_of_its_row_and_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path, isolation_level=None))
    MIGRATIONS.apply(db, stop_before="m008_more_order_parts")
    db.close()
    context = {
        "choice": {"service_id": "svc_ü", "price": {"amount": "0.80", "currency": "USDC"}},
        "txs": [{"tx_id": "0xabc", "purpose": "transfer"}],
        "outcome": "completed",  # a plain string too: read back as JSON, not as SQL text
        "order_key": "k-1",
    }
    at = "2026-01-01T00:00:00.000000Z"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO orders (order_id, state, context, spec, created_at, updated_at) "
        "VALUES ('o1', 'created', ?, '{}', ?, ?)",
        [dumps({**context, "limits": None}), at, at],
    )
    conn.close()
    journal = Journal(path)
    # Read back as before (a null part is no value: gone, as a patch setting None removes a key) ...
    assert journal.order("o1").context == context
    assert journal.orders()[0].context == context
    assert journal.orders(["created"])[0].context == context  # the parts of the orders asked for
    assert journal.orders(["confirmed"]) == []
    # ... from a row that keeps only the small keys.
    row = journal.db.execute("SELECT context FROM orders WHERE order_id = 'o1'").fetchone()[0]
    assert json.loads(row) == {"order_key": "k-1"}
    # A later patch replaces a part, removes one, and sets a row key; the row stays small.
    journal.record("o1", "submit", "created", "created", {}, {"txs": [], "outcome": None, "order_key": "k-2"})
    assert journal.order("o1").context == {"choice": context["choice"], "txs": [], "order_key": "k-2"}
    row = journal.db.execute("SELECT context FROM orders WHERE order_id = 'o1'").fetchone()[0]
    assert json.loads(row) == {"order_key": "k-2"}
