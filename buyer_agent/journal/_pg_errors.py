"""psycopg errors become the framework's in one place: the schema's SQLSTATEs by name, else JournalError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg

from buyer_agent._errors import BudgetExceeded, JournalError, LeaseLost
from buyer_agent._money import Money
from buyer_agent.journal._pg_schema import SQLSTATES
from buyer_agent.journal._records import LedgerChange
from buyer_agent.journal._store import Lease

__all__ = ["password_of", "scrubbed", "translated"]


@contextmanager
def translated(
    label: str, password: str | None, *, lease: Lease | None = None, ledger: LedgerChange | None = None
) -> Iterator[None]:
    """Psycopg's errors become the framework's: the schema's SQLSTATEs by name, the rest as JournalError."""
    try:
        yield
    except psycopg.Error as exc:
        state = getattr(exc, "sqlstate", None)
        text = scrubbed(exc, password)
        if state == SQLSTATES["lease"] and lease is not None:
            raise LeaseLost(lease.order_id, lease.owner, lease.epoch) from exc
        if (
            state == SQLSTATES["budget"]
            and ledger is not None
            and ledger.amount is not None
            and ledger.daily_limit is not None
        ):
            amount, limit = ledger.amount, ledger.daily_limit
            spent = Money(int(exc.diag.message_detail or 0), amount.decimals, amount.currency)
            raise BudgetExceeded(
                f"the pairing's daily limit is {limit}: {spent} already committed or spent today, "
                f"this order needs {amount}",
                rule="daily_limit",
            ) from exc
        if state in (SQLSTATES["journal"], SQLSTATES["stale"]):
            raise JournalError(text) from exc
        if isinstance(exc, psycopg.OperationalError):
            raise JournalError(f"the store at {label} failed: {text}", retryable=True) from exc
        raise JournalError(f"store error at {label}: {text}") from exc


def scrubbed(exc: BaseException, password: str | None) -> str:
    diag = getattr(exc, "diag", None)
    text = (getattr(diag, "message_primary", None) or str(exc) or type(exc).__name__).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text.replace(password, "[secure]") if password else text


def password_of(url: str) -> str | None:
    try:
        value = psycopg.conninfo.conninfo_to_dict(url).get("password")
        return str(value) if value else None
    except psycopg.Error:
        return urlsplit(url).password
