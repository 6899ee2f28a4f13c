"""The journal schema, as ordered migrations (sqlite-utils ``Migrations``)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["MIGRATIONS", "migrate"]

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


def migrate(db: Database) -> None:
    """Apply every pending migration."""
    MIGRATIONS.apply(db)
