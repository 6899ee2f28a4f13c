"""Opening an :class:`OrderStore` by where it is: a state directory or ``.db`` file, or a PostgreSQL URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from buyer_agent._errors import JournalError, TaskFileError
from buyer_agent.journal._journal import Journal
from buyer_agent.journal._paths import DB_NAME
from buyer_agent.journal._sqlite_store import SqliteStore
from buyer_agent.journal._store import OrderStore

__all__ = ["STORE_ENV", "display_url", "is_postgres_url", "open_store"]

#: Where the orders live when no ``--store`` is given: a ``postgresql://`` URL (or a state directory).
STORE_ENV = "BUYER_AGENT_STORE"

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    """True when ``target`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(target, str) and target.startswith(_SCHEMES)


def display_url(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter), for people."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


async def open_store(target: str | Path, *, create: bool = True, field: str = "store") -> OrderStore:
    """The store at ``target``: SQLite for a state directory or a ``.db`` file, PostgreSQL for a URL.

    Args:
        target: A state directory (its ``buyer_agent.db``), a ``.db`` file, or
            ``postgresql://user:password@host:port/database``.
        create: Create a SQLite journal that does not exist yet (False: refuse, as a reader should).
            A PostgreSQL database must exist; its schema is created or migrated either way.
        field: How the caller names ``target`` in errors (a command's ``--from``).

    Raises:
        TaskFileError: ``target`` is not a store location (another URL scheme, a malformed URL,
            no journal there with ``create=False``): bad usage.
        JournalError: The store cannot be opened (server unreachable, login refused, no
            ``postgres`` extra installed).
    """
    text = str(target)
    if is_postgres_url(text):
        try:
            import psycopg

            from buyer_agent.journal._postgres import PostgresStore
        except ImportError as exc:
            raise JournalError(
                "a postgresql:// store needs the postgres extra: pip install 'buyer-agent[postgres]'"
            ) from exc
        try:
            psycopg.conninfo.conninfo_to_dict(text)
        except psycopg.Error as exc:
            raise TaskFileError(field, f"{display_url(text)} is not a usable PostgreSQL URL") from exc
        return await PostgresStore.open(text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise TaskFileError(
            field, f"{scheme}:// is not a store (give a state directory, a .db file or postgresql://…)"
        )
    path = Path(text)
    db = path if path.suffix == ".db" or path.is_file() else path / DB_NAME
    if not create and not db.is_file():
        raise TaskFileError(field, f"no journal at {db}")
    existing = next((p for p in db.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise TaskFileError(field, f"{existing} is not a directory")
    try:
        return SqliteStore(Journal(db))
    except JournalError as exc:
        cause = exc.__cause__
        if isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, sqlite3.OperationalError):
            raise TaskFileError(field, f"{db} is not a journal ({cause})") from exc  # another kind of file
        raise
