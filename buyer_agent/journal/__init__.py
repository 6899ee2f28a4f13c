"""buyer_agent.journal: the SQLite order journal (orders, hash-chained events, ledger, nonces)."""

from buyer_agent.journal._canonical import GENESIS_HASH, event_hash
from buyer_agent.journal._journal import Journal, lease_owner_id, utc_now
from buyer_agent.journal._paths import DB_NAME, STATE_DIR_ENV, resolve_state_dir
from buyer_agent.journal._records import Event, LedgerChange, LedgerEntry, LedgerStatus, OrderRecord

# Offline work over saved journals (export/import, replay, what-if, evidence) is imported on first
# use: it needs the state machine and the strategies, which themselves use the journal.
_OFFLINE = {
    "Breakage": "buyer_agent.journal._replay",
    "Replay": "buyer_agent.journal._replay",
    "replay_file": "buyer_agent.journal._replay",
    "replay_order": "buyer_agent.journal._replay",
    "export_order": "buyer_agent.journal._export",
    "import_order": "buyer_agent.journal._export",
    "open_journal_file": "buyer_agent.journal._export",
    "build_timeline": "buyer_agent.journal._timeline",
    "what_if": "buyer_agent.journal._whatif",
    "build_evidence": "buyer_agent.journal._evidence",
}


def __getattr__(name: str) -> object:
    module = _OFFLINE.get(name)
    if module is None:
        raise AttributeError(f"module 'buyer_agent.journal' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "Breakage",
    "DB_NAME",
    "Event",
    "GENESIS_HASH",
    "Journal",
    "LedgerChange",
    "LedgerEntry",
    "LedgerStatus",
    "OrderRecord",
    "Replay",
    "STATE_DIR_ENV",
    "build_evidence",
    "build_timeline",
    "event_hash",
    "export_order",
    "import_order",
    "lease_owner_id",
    "open_journal_file",
    "replay_file",
    "replay_order",
    "resolve_state_dir",
    "utc_now",
    "what_if",
]
