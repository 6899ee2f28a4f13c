"""buyer_agent.fleet: many worker processes, on many hosts, sharing orders through one store.

A :class:`Worker` claims orders (submitted, or interrupted: a dead worker's once its lease ran out)
from a shared :class:`~buyer_agent.journal.OrderStore` (PostgreSQL) under short leases renewed while
it drives them, and hands them back cleanly when asked to stop. The workers of one agent share its
pairing session through the store (:class:`StorePairingShare`, the token sealed with a key only the
agent's signer can derive), so they share one daily budget and any of them can resume any order;
nonces and the budget ledger are the store's own atomic operations.
"""

from buyer_agent.fleet._connect import SANDBOX_REFUSED, fleet_agent, fleet_connection, submit_orders
from buyer_agent.fleet._seal import Sealer
from buyer_agent.fleet._share import LOCK_TTL_S, StorePairingShare
from buyer_agent.fleet._worker import CLAIMABLE, MARKET_META, Worker, WorkerReport

__all__ = [
    "CLAIMABLE",
    "LOCK_TTL_S",
    "MARKET_META",
    "SANDBOX_REFUSED",
    "Sealer",
    "StorePairingShare",
    "Worker",
    "WorkerReport",
    "fleet_agent",
    "fleet_connection",
    "submit_orders",
]
