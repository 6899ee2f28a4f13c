"""The one small protocol every payment rail implements.

A rail turns a :class:`PaymentRequest` (built by the framework from the market's payment intent,
never from a model or a strategy) into signed transactions *before* anything is sent, so that the
workflow can journal the exact bytes first. Broadcasting the same bytes twice is harmless; signing a
second payment is what the protocol exists to prevent.

Lifecycle, driven by the workflow::

    txs = await rail.prepare(request)          # sign only; nothing leaves the process
    journal(txs)                               # committed before broadcast
    for tx in txs:
        await rail.broadcast(tx)               # idempotent: "already known" is success
        status = await rail.wait(tx, timeout)  # CONFIRMED | REVERTED | PENDING | DROPPED
    await rail.verify(request, txs)            # read the transfer back from the chain
    proof = rail.proof(request, txs)           # the body the market expects

On resume, ``status(tx)`` decides: CONFIRMED → use it; PENDING → wait; DROPPED (provably can never
land: nonce used by another transaction, blockhash expired) → only then ``prepare`` anew.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from buyer_agent._money import Money

log = logging.getLogger(__name__)

__all__ = [
    "ESCROW_RAILS",
    "EscrowProof",
    "NonceStore",
    "PaymentRequest",
    "Rail",
    "SignedTx",
    "SyncNonceStore",
    "TxStatus",
    "is_escrow",
    "payer_address",
    "reserve_nonces",
    "revert_reason",
]


class TxStatus(enum.StrEnum):
    """What the chain says about a transaction."""

    CONFIRMED = "confirmed"
    """Included and successful at the rail's commitment level."""
    REVERTED = "reverted"
    """Included and failed; no transfer happened."""
    PENDING = "pending"
    """Known to the node (mempool) or not yet seen, and may still land."""
    DROPPED = "dropped"
    """Provably never going to land (its nonce was used by another tx, its blockhash expired)."""


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What to pay, exactly as the market's payment intent and the quote agreed.

    ``chain`` is CAIP-2 (``eip155:31337``, ``solana:…``). ``token`` is the ERC-20 address or the
    SPL mint. ``escrow_address`` is set only on escrow rails.
    """

    order_id: str
    rail_type: str
    chain: str
    token: str
    payer: str
    payee: str
    amount: Money
    escrow_address: str | None = None
    fee_cap_wei: int | None = None
    """EVM only: the most the buyer will pay per gas (maxFeePerGas); None = the rail's default."""


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction, ready to broadcast, journaled before it is.

    ``tx_id`` is the 0x transaction hash (EVM) or the base58 signature (Solana); ``raw`` the exact
    bytes to send. ``purpose`` says what it does (``transfer``, ``approve``, ``escrow_deposit``,
    ``escrow_release``, ``create_ata``). ``meta`` holds what reconciliation needs (``nonce``,
    ``from``; ``last_valid_block_height``) and must stay JSON-serialisable.
    """

    chain: str
    tx_id: str
    raw: bytes
    purpose: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A journal-safe dict (the raw bytes as hex; signed bytes hold no key)."""
        return {
            "chain": self.chain,
            "tx_id": self.tx_id,
            "raw": self.raw.hex(),
            "purpose": self.purpose,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedTx:
        """Inverse of :meth:`to_json`."""
        return cls(
            chain=str(data["chain"]),
            tx_id=str(data["tx_id"]),
            raw=bytes.fromhex(str(data["raw"])),
            purpose=str(data["purpose"]),
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True, slots=True)
class EscrowProof:
    """The body for ``payment/escrow-lock``: ``{transactionHash, chain, escrowAddress}``."""

    transaction_hash: str
    chain: str
    escrow_address: str


class NonceStore(Protocol):
    """Hands out EVM nonces that survive restarts and concurrent orders from one wallet.

    Async, so that a store on a database server can serve it; a rail also accepts a store whose
    ``reserve`` answers at once (the SQLite ``Journal``, ``MemoryNonceStore``).
    """

    async def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """Reserve ``count`` consecutive nonces; return the first.

        The first is ``max(chain_next, last reserved + 1)``; the reservation is persisted before
        this returns.
        """
        ...


class SyncNonceStore(Protocol):
    """A :class:`NonceStore` whose ``reserve`` answers at once (the SQLite journal, in memory)."""

    def reserve(self, chain: str, address: str, chain_next: int, count: int) -> int:
        """See :meth:`NonceStore.reserve`."""
        ...


#: Rail types that hold the payment in escrow until delivery is confirmed (the rest pay directly).
ESCROW_RAILS = frozenset({"onchain-escrow", "escrow"})


def is_escrow(rail_type: str) -> bool:
    """True when ``rail_type`` pays into escrow (released on confirm) rather than directly."""
    return rail_type in ESCROW_RAILS


def payer_address(rail: Any) -> str | None:
    """The address the rail pays from (``address``), when the rail has one."""
    address = getattr(rail, "address", None)
    return str(address) if address else None


async def reserve_nonces(
    store: NonceStore | SyncNonceStore, chain: str, address: str, chain_next: int, count: int
) -> int:
    """Reserve nonces from an async store or from one that answers at once."""
    got = store.reserve(chain, address, chain_next, count)
    if inspect.isawaitable(got):
        return int(await got)
    return int(got)


async def check_funds(rail: Any, request: PaymentRequest) -> None:
    """Refuse a payment the wallet cannot cover, before anything is signed (rails that can tell).

    Raises:
        InsufficientFundsError: the token or gas balance is short (both amounts named).
    """
    check = getattr(rail, "check_funds", None)
    if check is not None:
        await check(request)


async def revert_reason(rail: Any, tx: SignedTx) -> str | None:
    """Why ``tx`` reverted, from a rail that can tell (``revert_reason``); never raises."""
    read = getattr(rail, "revert_reason", None)
    if read is None:
        return None
    try:
        reason = await read(tx)
    except Exception as exc:  # the failure is reported either way; the reason is a courtesy
        log.info("could not read why %s reverted: %s", tx.tx_id, exc)
        return None
    return str(reason) if reason else None


@runtime_checkable
class Rail(Protocol):
    """A payment rail: one chain family, one or more rail types.

    Optional members the runner uses when a rail has them (a third-party rail need not): ``address``
    (the payer, sent with the payment intent; :func:`payer_address`) and ``async revert_reason(tx)``
    (why a transaction reverted, for the order's error; :func:`revert_reason`). Whether a payment
    goes through escrow is its rail type's (:func:`is_escrow`).
    """

    name: str

    def supports(self, rail_type: str, chain: str) -> bool:
        """True when this rail can pay ``rail_type`` on ``chain``."""
        ...

    async def prepare(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Sign every transaction the payment needs, in order. Sends nothing."""
        ...

    async def broadcast(self, tx: SignedTx) -> None:
        """Send ``tx``. Sending bytes the node already knows or already mined is success."""
        ...

    async def wait(self, tx: SignedTx, timeout: float) -> TxStatus:
        """Wait up to ``timeout`` seconds for a final status; PENDING when time runs out."""
        ...

    async def status(self, tx: SignedTx) -> TxStatus:
        """Reconcile: what the chain says about ``tx`` now, without sending anything."""
        ...

    async def verify(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> None:
        """Read the transfer back from the chain; raise PaymentMismatchError unless it matches."""
        ...

    def proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> dict[str, Any]:
        """The market's ``payment-proof`` body (snake_case keys) for a direct transfer."""
        ...

    def escrow_proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> EscrowProof:
        """The ``payment/escrow-lock`` body for an escrow deposit."""
        ...

    async def prepare_release(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Sign the buyer's escrow release after confirm (escrow rails only)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
