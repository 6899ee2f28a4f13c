"""Names of the journal records the reconciliation of market writes adds (``note:`` events and their words).

Kept in one module so the effects that write them, the tests and anyone reading a journal agree on
them. A reconciliation is one ``note:reconciled`` event per read the agent made after a write's
answer was lost (or before repeating a write a crash may have left sent); its payload says which
write, which read, and what the read showed:

``{"effect": "create_market_order", "read": "GET /market/orders?machineId=…", "outcome": "adopted",
"market_order_id": "ord_…", …}``
"""

from __future__ import annotations

__all__ = [
    "ABSENT",
    "ADOPTED",
    "NOTE_QUOTE_EXPIRED",
    "NOTE_RECONCILED",
    "OUTCOMES",
    "PENDING",
]

#: A read after an unknown outcome: what the market holds for one write, and what the order does next.
NOTE_RECONCILED = "note:reconciled"

#: The chosen quote expired before it was ordered (the order searches again).
NOTE_QUOTE_EXPIRED = "note:quote_expired"

#: The write happened: the market's record is adopted as its answer (never sent again).
ADOPTED = "adopted"
#: The market holds nothing of the write: it is sent again (if still wanted), with the same key.
ABSENT = "absent"
#: The write is under way at the market (an execution still running): read again, never sent again.
PENDING = "pending"

#: Every ``outcome`` a ``note:reconciled`` event carries.
OUTCOMES = (ADOPTED, ABSENT, PENDING)
