"""The journal schema, as ordered migrations (sqlite-utils ``Migrations``)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from buyer_agent.journal._canonical import GENESIS_HASH

__all__ = ["MIGRATIONS", "ORDER_PARTS", "migrate"]

#: The parts of an order's context kept out of its row (``order_parts``), each written when it
#: changes: a search's quotes and candidates (m004), and the other large values an order learns once
#: (its choice, limits, policy, payment request and intent, proof, outcome, transactions; m008).
#: What is left in the row (keys, times, ids, statuses) stays small, so a state move or a context
#: patch rewrites about a kilobyte (the keys and times), not five.
ORDER_PARTS = (
    "quotes",
    "candidates",
    "choice",
    "limits",
    "policy",
    "request",
    "intent",
    "proof",
    "outcome",
    "txs",
)

MIGRATIONS = Migrations("buyer_agent.journal")


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m001_initial(db: Database) -> None:
    """Orders, hash-chained events, the budget ledger, EVM nonces and meta."""
    db.execute(
        """
        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            context TEXT NOT NULL,
            spec TEXT NOT NULL,
            pairing_id TEXT,
            market_order_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            lease_owner TEXT,
            lease_until TEXT
        )
        """
    )
    db.execute("CREATE INDEX orders_state ON orders(state)")
    db.execute(
        """
        CREATE TABLE events (
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            trigger TEXT NOT NULL,
            src TEXT NOT NULL,
            dst TEXT NOT NULL,
            payload TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (order_id, seq)
        )
        """
    )
    # The journal is append-only: the database itself refuses edits and deletions of events.
    db.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END"
    )
    db.execute(
        """
        CREATE TABLE ledger (
            order_id TEXT PRIMARY KEY,
            pairing_id TEXT NOT NULL,
            day TEXT NOT NULL,
            amount TEXT NOT NULL,
            currency TEXT NOT NULL,
            decimals INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('committed', 'spent', 'released')),
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX ledger_day ON ledger(pairing_id, day)")
    db.execute(
        """
        CREATE TABLE nonces (
            chain TEXT NOT NULL,
            address TEXT NOT NULL,
            next INTEGER NOT NULL,
            PRIMARY KEY (chain, address)
        )
        """
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m002_order_head(db: Database) -> None:
    """The order row keeps its chain head, and the database appends events only at that head.

    ``last_seq`` and ``last_hash`` name the order's newest event. An event is accepted only when it
    starts in the order's state and links to that head (else ``stale writer``); once accepted, it
    moves the order row to its ``dst`` and becomes the head. The row can no longer disagree with
    its events, and a writer that read the order before another one moved it is refused by the
    database itself.
    """
    db.execute("ALTER TABLE orders ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0")
    db.execute(f"ALTER TABLE orders ADD COLUMN last_hash TEXT NOT NULL DEFAULT '{GENESIS_HASH}'")
    db.execute(
        "UPDATE orders SET (last_seq, last_hash) = ("
        "SELECT seq, hash FROM events WHERE events.order_id = orders.order_id ORDER BY seq DESC LIMIT 1"
        ") WHERE EXISTS (SELECT 1 FROM events WHERE events.order_id = orders.order_id)"
    )
    db.execute(
        """
        CREATE TRIGGER events_at_head BEFORE INSERT ON events
        WHEN (SELECT state != NEW.src OR last_seq + 1 != NEW.seq OR last_hash != NEW.prev_hash
              FROM orders WHERE order_id = NEW.order_id)
        BEGIN SELECT RAISE(ABORT, 'stale writer: the event does not start at the order''s head'); END
        """
    )
    db.execute(
        """
        CREATE TRIGGER events_move_head AFTER INSERT ON events
        BEGIN
            UPDATE orders SET last_seq = NEW.seq, last_hash = NEW.hash, updated_at = NEW.at
            WHERE order_id = NEW.order_id;
        END
        """
    )
    # Apart, so an effect record (src == dst) leaves the indexed state column untouched: setting it
    # to the same value still rewrites its index entry, which cost more than the rest of the append.
    db.execute(
        """
        CREATE TRIGGER events_move_state AFTER INSERT ON events WHEN NEW.src != NEW.dst
        BEGIN
            UPDATE orders SET state = NEW.dst WHERE order_id = NEW.order_id;
        END
        """
    )


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m003_lease_epoch(db: Database) -> None:
    """A lease epoch that rises whenever an order's lease passes to another owner.

    A write made under a lease names its owner and epoch; once another driver has taken the order
    over (a new epoch), the old driver's writes are refused, even if it wakes up believing its lease
    still runs.
    """
    db.execute("ALTER TABLE orders ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m004_order_parts(db: Database) -> None:
    """The write-once parts of an order's context (a search's quotes, a choice's candidates) apart.

    Every event rewrites its order's row (head, state, time); with every quote and candidate of the
    search inside the row's context, each of those writes copied tens of kilobytes. The parts live
    in ``order_parts`` instead, written when they change; reading an order merges them back, so its
    context reads as before.
    """
    db.execute(
        """
        CREATE TABLE order_parts (
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (order_id, name)
        ) WITHOUT ROWID
        """
    )
    _move_to_parts(db, ("quotes", "candidates"))


def _move_to_parts(db: Database, names: tuple[str, ...]) -> None:
    """Move the context keys ``names`` of every order row into ``order_parts``."""
    for name in names:
        path = f'$."{name}"'
        db.execute(
            "INSERT INTO order_parts (order_id, name, value) "
            # json_quote: a string value comes back from json_extract as SQL text, not JSON.
            f"SELECT order_id, '{name}', json_quote(json_extract(context, '{path}')) FROM orders "
            f"WHERE json_type(context, '{path}') IS NOT NULL AND json_type(context, '{path}') != 'null'"
        )
        db.execute(
            f"UPDATE orders SET context = json_remove(context, '{path}') "
            f"WHERE json_type(context, '{path}') IS NOT NULL"
        )


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m005_sync_mark(db: Database) -> None:
    """One row whose durable update makes every earlier commit durable (``Journal.sync``).

    Intents of many orders in flight commit without syncing the log one by one; one synced write
    of this row then covers all of them before any of their effects runs (a group commit).
    """
    db.execute("CREATE TABLE sync_mark (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)")
    db.execute("INSERT INTO sync_mark (id, n) VALUES (1, 0)")


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m006_events_clustered(db: Database) -> None:
    """Events stored by their key alone (``WITHOUT ROWID``), and one trigger that checks and moves the head.

    An event was written twice, into the table and into the index of its ``(order_id, seq)`` key,
    and its order row was read by one trigger and written by another: each append touched four
    b-trees and dirtied three pages. The events now live in the key's own b-tree, and one trigger
    moves the row's head only where it stands at the event's ``prev_hash`` and state, refusing the
    event (``stale writer``) when nothing moved. The rules are the ones ``m002_order_head`` made: an
    event is accepted only at its order's head and from its state, and the row moves with it.

    That trigger also refuses an event of an order that does not exist, which the foreign key did;
    ``orders_keep_events`` keeps an order with events from being deleted or renamed, the foreign
    key's other half, so the events table needs none (a parent lookup on every append).
    """
    db.execute(
        """
        CREATE TABLE events_clustered (
            order_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            trigger TEXT NOT NULL,
            src TEXT NOT NULL,
            dst TEXT NOT NULL,
            payload TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (order_id, seq)
        ) WITHOUT ROWID
        """
    )
    db.execute("INSERT INTO events_clustered SELECT * FROM events ORDER BY order_id, seq")
    # Dropping a table fires no delete trigger; the old table's triggers go with it.
    db.execute("DROP TABLE events")
    db.execute("ALTER TABLE events_clustered RENAME TO events")
    db.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END"
    )
    # One trigger, statements in order: move the head where the event starts at it, refuse the
    # event when no row moved (changes() counts this trigger's last statement), then the state,
    # apart, so an effect record (src == dst) leaves the indexed state column untouched. Before the
    # insert, so a stale writer is told so rather than hitting the key of the event already there;
    # should the insert still fail, the statement takes the row's move back with it.
    db.execute(
        """
        CREATE TRIGGER events_at_head BEFORE INSERT ON events
        BEGIN
            UPDATE orders SET last_seq = NEW.seq, last_hash = NEW.hash, updated_at = NEW.at
            WHERE order_id = NEW.order_id AND state = NEW.src
              AND last_seq + 1 = NEW.seq AND last_hash = NEW.prev_hash;
            SELECT RAISE(ABORT, 'stale writer: the event does not start at the order''s head')
            WHERE changes() = 0;
            UPDATE orders SET state = NEW.dst WHERE NEW.src != NEW.dst AND order_id = NEW.order_id;
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER orders_keep_events BEFORE DELETE ON orders
        WHEN EXISTS (SELECT 1 FROM events WHERE order_id = OLD.order_id)
        BEGIN SELECT RAISE(ABORT, 'an order with journal events cannot be deleted'); END
        """
    )
    db.execute(
        """
        CREATE TRIGGER orders_keep_event_ids BEFORE UPDATE OF order_id ON orders
        WHEN NEW.order_id != OLD.order_id AND EXISTS (SELECT 1 FROM events WHERE order_id = OLD.order_id)
        BEGIN SELECT RAISE(ABORT, 'an order with journal events cannot be renamed'); END
        """
    )


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m007_head_in_events(db: Database) -> None:
    """An order's head is its newest event; an effect record no longer writes the order row.

    Moving ``last_seq``/``last_hash``/``updated_at`` on the row made every append dirty two pages
    (the event's and the row's), which was a third of its SQL. The head check reads them instead:
    an event is accepted only when its order exists in ``src`` and it follows that order's newest
    event (``seq`` next, ``prev_hash`` its hash), or is an order's first event (``seq`` 1 from the
    genesis hash); else ``stale writer``, as before. A transition still moves the row's state in
    the same statement. ``updated_at`` is read as the newest event's time (``Journal.order``).
    """
    db.execute("DROP TRIGGER events_at_head")
    db.execute(
        f"""
        CREATE TRIGGER events_at_head BEFORE INSERT ON events
        BEGIN
            SELECT RAISE(ABORT, 'stale writer: the event does not start at the order''s head')
            WHERE NOT EXISTS (SELECT 1 FROM orders WHERE order_id = NEW.order_id AND state = NEW.src)
               OR coalesce(
                    (SELECT seq + 1 = NEW.seq AND hash = NEW.prev_hash FROM events
                     WHERE order_id = NEW.order_id ORDER BY seq DESC LIMIT 1),
                    NEW.seq = 1 AND NEW.prev_hash = '{GENESIS_HASH}'
                  ) IS NOT 1;
            UPDATE orders SET state = NEW.dst WHERE NEW.src != NEW.dst AND order_id = NEW.order_id;
        END
        """
    )
    # Gone rather than left behind unmaintained, where a reader would take them for the head.
    db.execute("ALTER TABLE orders DROP COLUMN last_seq")
    db.execute("ALTER TABLE orders DROP COLUMN last_hash")


@MIGRATIONS()  # type: ignore[untyped-decorator,unused-ignore]
def m008_more_order_parts(db: Database) -> None:
    """The other large values an order learns once out of its row too (see :data:`ORDER_PARTS`).

    After m007 an order's row is still rewritten whole by every state move and context patch, and
    an order's choice, limits, policy, payment request and intent, proof, outcome and transactions
    made it about 5 KB by the end (past one page, so each rewrite also copied overflow pages).
    """
    _move_to_parts(db, ORDER_PARTS[2:])


def migrate(db: Database) -> None:
    """Apply every pending migration, one process at a time.

    ``Migrations.apply`` reads what is pending before its transactions begin, so two processes
    opening a new journal at once would both apply the same steps ("table orders already exists").
    Holding the write lock (``BEGIN IMMEDIATE``) around it makes the second wait, then find nothing
    pending; the steps' own transactions become savepoints inside it.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        MIGRATIONS.apply(db)
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
