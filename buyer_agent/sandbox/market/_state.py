"""The market's state: plain JSON records under one lock, persisted by atomically replacing a file."""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from buyer_agent.sandbox.market._wire import dumps, iso, now

__all__ = ["COLLECTIONS", "Store", "new_id"]

_log = logging.getLogger(__name__)

#: Every record kind the market keeps, each a dict of id → JSON record.
COLLECTIONS: tuple[str, ...] = (
    "challenges",
    "pairings",
    "searches",
    "quotes",
    "orders",
    "payments",
    "disputes",
    "executions",
    "idempotency",
    "used_proofs",
    "meta",
)
_FILE = "market-state.json"


def new_id(prefix: str) -> str:
    """A fresh random id such as ``ord_3f2a…``."""
    return f"{prefix}_{secrets.token_hex(8)}"


class Store:
    """All market records, guarded by one re-entrant lock.

    Use :meth:`transaction` around every change: it holds the lock and, when a ``state_dir`` was
    given, writes the whole state to ``market-state.json`` (temp file + ``os.replace``) before the
    answer is sent, so an acknowledged change is never lost.
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.state_dir = state_dir
        self.data: dict[str, dict[str, Any]] = {name: {} for name in COLLECTIONS}
        self.audit: list[dict[str, Any]] = []
        self._depth = 0
        if state_dir is not None:
            self._load(state_dir / _FILE)

    def _load(self, path: Path) -> None:
        if not path.is_file():
            return
        loaded = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        for name in COLLECTIONS:
            self.data[name] = dict(loaded.get(name, {}))
        self.audit = list(loaded.get("audit", []))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock for a change and persist it when the outermost transaction ends."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.save()

    def save(self) -> None:
        """Write the state atomically (no-op without a ``state_dir``)."""
        if self.state_dir is None:
            return
        with self.lock:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            payload = dumps({**self.data, "audit": self.audit})
            fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".market-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.state_dir / _FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    # --- records ---------------------------------------------------------------------------------

    def get(self, collection: str, ident: str) -> dict[str, Any] | None:
        """One record, or None."""
        return self.data[collection].get(ident)

    def put(self, collection: str, ident: str, record: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace a record; returns it."""
        self.data[collection][ident] = record
        return record

    def values(self, collection: str) -> list[dict[str, Any]]:
        """All records of a collection in insertion order."""
        return list(self.data[collection].values())

    def audit_event(
        self,
        event_type: str,
        resource_type: str,
        resource_id: str,
        payload: dict[str, Any],
        *,
        actor: str = "api",
    ) -> None:
        """Append one audit event (``AuditEventRecord``)."""
        self.audit.append(
            {
                "id": new_id("evt"),
                "actor": actor,
                "type": event_type,
                "resourceType": resource_type,
                "resourceId": resource_id,
                "payload": payload,
                "createdAt": iso(now()),
            }
        )
        _log.debug("audit %s %s", event_type, resource_id)
