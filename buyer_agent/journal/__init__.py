"""buyer_agent.journal: where orders live (SQLite, PostgreSQL) behind one OrderStore, and journal files.

Orders, hash-chained events, the budget ledger, nonces and meta. :func:`open_store` opens a store by
where it is: a state directory or ``.db`` file (:class:`SqliteStore`, the embedded default) or a
``postgresql://`` URL (``PostgresStore`` in ``buyer_agent.journal._postgres``, which needs the
``postgres`` extra, so this package never imports it).

Storage only: the readers over journals (replay, timeline, what-if, evidence) are
:mod:`buyer_agent.history`.
"""

from buyer_agent.journal._canonical import GENESIS_HASH, event_hash
from buyer_agent.journal._copy import CopyableStore, CopyReport, copy_store, verify_chain
from buyer_agent.journal._export import export_order, import_order, open_journal_file
from buyer_agent.journal._journal import Journal, lease_owner_id, utc_now
from buyer_agent.journal._open import STORE_ENV, open_store
from buyer_agent.journal._paths import DB_NAME, STATE_DIR_ENV, resolve_state_dir
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, LedgerStatus, OrderRecord
from buyer_agent.journal._sqlite_store import SqliteStore
from buyer_agent.journal._store import Lease, OrderStore, SwappableMeta

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "CopyReport",
    "CopyableStore",
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
    "STORE_ENV",
    "SqliteStore",
    "SwappableMeta",
    "copy_store",
    "event_hash",
    "export_order",
    "import_order",
    "lease_owner_id",
    "open_journal_file",
    "open_store",
    "resolve_state_dir",
    "utc_now",
    "verify_chain",
]
