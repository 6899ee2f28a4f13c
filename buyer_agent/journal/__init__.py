"""buyer_agent.journal: the SQLite order journal (orders, hash-chained events, ledger, nonces)."""

from buyer_agent.journal._canonical import GENESIS_HASH, event_hash
from buyer_agent.journal._journal import Journal, lease_owner_id, utc_now
from buyer_agent.journal._paths import DB_NAME, STATE_DIR_ENV, resolve_state_dir
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, LedgerStatus, OrderRecord

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "DB_NAME",
    "Event",
    "GENESIS_HASH",
    "Journal",
    "LedgerChange",
    "LedgerEntry",
    "LedgerStatus",
    "OrderRecord",
    "STATE_DIR_ENV",
    "event_hash",
    "lease_owner_id",
    "resolve_state_dir",
    "utc_now",
]
