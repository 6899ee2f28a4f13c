"""Rows and arguments between the PostgreSQL store and its schema: context patches, ledger changes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent._errors import BudgetExceeded, JournalError
from buyer_agent._money import Money
from buyer_agent.journal._canonical import dumps, loads
from buyer_agent.journal._records import LedgerChange, LedgerEntry, LedgerStatus, OrderRecord

__all__ = ["ledger_args", "ledger_entry", "order_record", "patch_args"]

_CONTEXT_KEY = re.compile(r"[A-Za-z0-9_:.-]+")


def patch_args(context_patch: Mapping[str, Any] | None) -> tuple[str | None, list[str] | None]:
    """The keys to set (canonical JSON of an object) and to remove, for the server's jsonb patch."""
    if not context_patch:
        return None, None
    sets: dict[str, Any] = {}
    unsets: list[str] = []
    for key, value in context_patch.items():
        if not _CONTEXT_KEY.fullmatch(key):
            raise JournalError(f"context key {key!r} is not a plain name")
        if value is None:
            unsets.append(key)
        else:
            sets[key] = value
    return (dumps(sets) if sets else None), (unsets or None)


def ledger_args(change: LedgerChange | None) -> tuple[Any, ...]:
    """``record_event``'s ledger arguments: status, pairing, amount, currency, decimals, limit."""
    if change is None:
        return (None,) * 6
    if change.status is not LedgerStatus.COMMITTED:
        return (change.status.value, None, None, None, None, None)
    if change.pairing_id is None or change.amount is None:
        raise JournalError("a ledger commitment needs a pairing id and an amount")
    money, limit = change.amount, change.daily_limit
    if limit is not None and (limit.currency, limit.decimals) != (money.currency, money.decimals):
        raise BudgetExceeded(
            f"the daily limit is in {limit.currency} ({limit.decimals} decimals), the order in "
            f"{money.currency} ({money.decimals} decimals)",
            rule="daily_limit",
        )
    return (
        change.status.value,
        change.pairing_id,
        str(money.amount),
        money.currency,
        money.decimals,
        str(limit.amount) if limit is not None else None,
    )


def order_record(row: Sequence[Any]) -> OrderRecord:
    return OrderRecord(
        order_id=row[0],
        state=row[1],
        context=loads(row[2]) or {},
        spec=loads(row[3]) or {},
        pairing_id=row[4],
        market_order_id=row[5],
        created_at=row[6],
        updated_at=row[7],
        lease_owner=row[8],
        lease_until=row[9],
        lease_epoch=int(row[10]),
    )


def ledger_entry(row: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(row[0], row[1], row[2], Money(int(row[3]), int(row[5]), row[4]), LedgerStatus(row[6]))
