"""buyer_agent.journal: the SQLite order journal (orders, hash-chained events, ledger, nonces) and its files.

Storage only: the readers over journals (replay, timeline, what-if, evidence) are
:mod:`buyer_agent.history`.
"""

from buyer_agent.journal._canonical import GENESIS_HASH, event_hash
from buyer_agent.journal._export import export_order, import_order, open_journal_file
from buyer_agent.journal._journal import Journal, lease_owner_id, utc_now
from buyer_agent.journal._paths import DB_NAME, STATE_DIR_ENV, resolve_state_dir
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, LedgerStatus, OrderRecord
from buyer_agent.journal._sqlite_store import SqliteStore
from buyer_agent.journal._store import Lease, OrderStore

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "DB_NAME",
    "Event",
    "GENESIS_HASH",
    "Journal",
    "Lease",
    "LedgerChange",
    "LedgerEntry",
    "LedgerStatus",
    "OrderRecord",
    "OrderStore",
    "STATE_DIR_ENV",
    "SqliteStore",
    "event_hash",
    "export_order",
    "import_order",
    "lease_owner_id",
    "open_journal_file",
    "resolve_state_dir",
    "utc_now",
]
