"""The EVM rail: ERC-20 transfers and escrow deposits, signed by an EvmSigner, sent over JSON-RPC.

Longer than this project's usual module (about 700 lines) on purpose: it is one implementation of the
Rail protocol, whose steps (funds, sign, broadcast, reconcile through drops, nonce gaps and reorgs,
verify, prove) share the node connection, the nonce reservations and the receipts seen at depth.
The pieces that stand alone live beside it: the ABI (``_evm_abi``), the funds rule (``_funds``), the
node transport (``_evm_rpc``), foreign errors (``_boundary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils.address import is_address, to_checksum_address

from buyer_agent._errors import PaymentMismatchError, RailError, SignerError, TransactionRevertedError
from buyer_agent._redact import Secret
from buyer_agent._urls import check_port
from buyer_agent.rails._base import (
    EscrowProof,
    NonceStore,
    PaymentRequest,
    SignedTx,
    SyncNonceStore,
    TxStatus,
    reserve_nonces,
)
from buyer_agent.rails._boundary import translated
from buyer_agent.rails._evm_abi import (
    approve_data,
    balance_of_data,
    decode_revert,
    escrow_deposit_data,
    escrow_release_data,
    order_key,
    transfer_data,
    transfer_logs,
)
from buyer_agent.rails._evm_adopt import adopt_payment
from buyer_agent.rails._evm_rpc import (
    EvmRpc,
    NodeError,
    answer_field,
    block_of,
    quantity,
    receipt_logs,
    succeeded,
    word,
)
from buyer_agent.rails._funds import native_token, require
from buyer_agent.rails._nonces import MemoryNonceStore
from buyer_agent.signers import EvmSigner, EvmTransaction, as_evm_signer

if TYPE_CHECKING:
    from buyer_agent.networks import Networks

__all__ = ["EVM_RAIL_TYPES", "EvmRail"]

log = logging.getLogger(__name__)

DIRECT_TYPES = frozenset({"wallet", "wdk-usdt-transfer"})
ESCROW_TYPES = frozenset({"onchain-escrow", "escrow"})
EVM_RAIL_TYPES = DIRECT_TYPES | ESCROW_TYPES

# Fixed gas limits: estimation fails for a transfer that will revert, and such a transfer must still
# be mined so that it fails visibly (with its reason) instead of vanishing before broadcast.
#: Seconds a transaction may stay pending before :meth:`EvmRail.wait` checks for a nonce gap below it.
GAP_AFTER_S = 5.0
#: Seconds a transaction's nonce must stay used with no receipt for it before it counts as DROPPED. A
#: node can count a mined transaction's nonce before it serves the receipt (seen on anvil under load:
#: the crash suite paid twice in 2 of ~700 orders when one look decided), so the verdict must hold.
DROP_SETTLE_S = 3.0
#: Seconds between checks, in :meth:`EvmRail.wait`, that the node still knows a pending transaction;
#: one it lost (dropped from its pool, or mined in a block a reorg removed) is sent again, same bytes.
RESEND_AFTER_S = 2.0

GAS_LIMITS: Mapping[str, int] = {
    "transfer": 120_000,
    "approve": 100_000,
    "escrow_deposit": 300_000,
    "escrow_release": 200_000,
}
_HEADROOM_NUM, _HEADROOM_DEN = 5, 4
#: Receipts the rail keeps (oldest dropped first); enough for every order in flight.
_MINED_KEPT = 4096
#: Seconds the fees, gas limits and nonce read by ``check_funds`` stay good for the ``prepare`` of the
#: same request (the runner calls one right after the other).
PRICED_FOR_S = 5.0


@dataclass(frozen=True, slots=True)
class _Priced:
    """What :meth:`EvmRail.check_funds` read for a request, for the :meth:`EvmRail.prepare` after it."""

    calls: tuple[tuple[str, str, bytes], ...]
    at: float
    max_fee: int
    tip: int
    gases: tuple[int, ...]
    pending: int


@functools.lru_cache(maxsize=4096)
def _checksum(address: str) -> str:
    """The EIP-55 form of ``address``, remembered: a payment names the same few addresses many times."""
    return str(to_checksum_address(address))


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _hash(value: Any) -> str:
    """A 32-byte hash the node answered (``0x`` + 64 hex digits)."""
    if isinstance(value, str) and len(value) == 66 and value[:2] == "0x":
        try:
            bytes.fromhex(value[2:])
        except ValueError:
            pass
        else:
            return value
    raise RailError(f"the EVM node answered {str(value)[:80]!r} where a transaction or block hash belongs")


def _answered(outcome: Any) -> Any:
    """A batch call's result; its :class:`NodeError` raised."""
    if isinstance(outcome, NodeError):
        raise outcome
    return outcome


def _caip2_id(chain: str) -> int | None:
    namespace, _, reference = chain.partition(":")
    if namespace != "eip155" or not reference.isdigit():
        return None
    return int(reference)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


class EvmRail:
    """Pays ERC-20 amounts on one EVM chain, directly or into the escrow contract.

    Rail types: ``wallet`` and ``wdk-usdt-transfer`` (``transfer``), ``onchain-escrow`` and ``escrow``
    (``approve`` + ``Escrow.deposit``). Nothing is sent by :meth:`prepare`; the signed bytes are
    journaled first and broadcast as they are, so a restart re-sends the same transaction.

    Args:
        rpc_url: The node's HTTP JSON-RPC URL.
        signer: Who signs: an :class:`~buyer_agent.signers.EvmSigner` (a key in another process, e.g.
            :class:`~buyer_agent.signers.JsonRpcEvmSigner`), or the buyer's key itself (hex, held as a
            :class:`Secret` by a :class:`~buyer_agent.signers.LocalEvmSigner`).
        chain: CAIP-2 id (``eip155:31337``) this rail pays on; None = any ``eip155`` chain, checked
            against the node before signing.
        nonce_store: Where nonces are reserved (the journal survives restarts); default in memory.
        confirmations: Blocks (including the transaction's) before a receipt counts as CONFIRMED (or
            REVERTED); until then the transaction is PENDING. Above 1 the rail follows reorgs: a
            transaction whose block is dropped before that depth is broadcast again, the same signed
            bytes, never signed anew. None (the default): the depth of the transaction's chain in
            ``networks`` (its profile's ``confirmations``), else 1.
        max_fee_per_gas_cap: The most the rail pays per gas unless the request sets a lower cap.
        poll_interval: Seconds between receipt polls in :meth:`wait`.
        drop_settle_s: How long "nonce used, no receipt" must hold before a transaction is DROPPED.
        networks: The network profiles: each chain's default depth and the name of its gas token.
    """

    name = "evm"

    def __init__(
        self,
        rpc_url: str,
        signer: EvmSigner | str | Secret,
        *,
        chain: str | None = None,
        nonce_store: NonceStore | SyncNonceStore | None = None,
        confirmations: int | None = None,
        max_fee_per_gas_cap: int | None = None,
        poll_interval: float = 0.05,
        drop_settle_s: float = DROP_SETTLE_S,
        networks: Networks | None = None,
    ) -> None:
        if chain is not None and _caip2_id(chain) is None:
            raise RailError(f"not an EVM CAIP-2 chain id: {chain!r} (expected eip155:<chain id>)")
        if confirmations is not None and confirmations < 1:
            raise RailError("confirmations must be at least 1")
        check_port(rpc_url, "the EVM RPC URL")
        try:
            self._signer = as_evm_signer(signer)
        except SignerError as exc:  # its message never holds the key
            raise RailError(exc.message) from None
        self._address = _checksum(self._signer.address)
        self.chain = chain
        self._rpc_url = rpc_url
        self._nonces: NonceStore | SyncNonceStore = (
            nonce_store if nonce_store is not None else MemoryNonceStore()
        )
        self._genesis: str | None = None
        self._confirmations = confirmations
        self._networks = networks
        self._fee_cap = max_fee_per_gas_cap
        self._poll = poll_interval
        self._drop_settle = drop_settle_s
        # When each transaction was first seen with its nonce used and no receipt (see status()).
        self._unseen_since: dict[str, float] = {}
        # No transport retries: the rail's callers reconcile by status, and a dead node should fail fast.
        self._rpc = EvmRpc(rpc_url, timeout_s=30)
        self._chain_id: int | None = None
        # What check_funds() read from the node for a request (fees, gas, pending nonce), taken by
        # the prepare() that follows it at once rather than asked for again (see _sign).
        self._priced: dict[PaymentRequest, _Priced] = {}
        # Receipts of transactions at their depth, read once by status() and reused by verify(): a
        # receipt with its confirmations is final (the rail follows reorgs only until then).
        self._mined: dict[str, Any] = {}
        # Transactions seen in a block not yet at depth (the block number), and those whose block
        # then left the chain (a reorg): wait() sends the latter again.
        self._included: dict[str, int] = {}
        self._left_chain: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"EvmRail(rpc_url={self._rpc_url!r}, address={self._address!r}, chain={self.chain!r}, "
            f"confirmations={self.confirmations})"
        )

    @property
    def address(self) -> str:
        """The buyer's checksummed address (the payer)."""
        return self._address

    @property
    def signer(self) -> EvmSigner:
        """Who signs this rail's transactions."""
        return self._signer

    @property
    def confirmations(self) -> int:
        """Blocks (including the transaction's) before a transaction counts as final on this rail's chain."""
        return self.depth_for(self.chain)

    def depth_for(self, chain: str | None) -> int:
        """The depth a transaction on ``chain`` needs: the rail's own setting, else the chain's profile's."""
        if self._confirmations is not None:
            return self._confirmations
        profile = self._networks.get(chain) if self._networks is not None and chain else None
        return profile.confirmations if profile is not None and profile.confirmations else 1

    def supports(self, rail_type: str, chain: str) -> bool:
        """True for the EVM rail types on this rail's chain (any ``eip155`` chain when unset)."""
        if rail_type not in EVM_RAIL_TYPES or _caip2_id(chain) is None:
            return False
        return self.chain is None or chain == self.chain

    # --- signing -------------------------------------------------------------------------------

    @translated("preparing an EVM payment")
    async def prepare(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Sign the payment (``transfer``, or ``approve`` + ``escrow_deposit``). Sends nothing.

        Raises:
            UnsupportedRailError: not a rail type this rail pays.
            RailError: wrong chain, wrong payer, bad addresses, or fees above the cap.
        """
        self._check_request(request)
        priced = self._priced.pop(request, None)
        calls = self._calls(request) if priced is None else list(priced.calls)
        return await self._sign(request, calls, priced)

    def _calls(self, request: PaymentRequest) -> list[tuple[str, str, bytes]]:
        """The calls a payment makes: ``(purpose, to, data)`` for a transfer, or approve + deposit."""
        token = _checksum(request.token)
        payee = _checksum(request.payee)
        amount = request.amount.amount
        calls: list[tuple[str, str, bytes]]
        if request.rail_type in ESCROW_TYPES:
            if not request.escrow_address or not is_address(request.escrow_address):
                raise RailError(f"escrow rail {request.rail_type!r} needs an escrow address")
            escrow = _checksum(request.escrow_address)
            calls = [
                ("approve", token, approve_data(escrow, amount)),
                (
                    "escrow_deposit",
                    escrow,
                    escrow_deposit_data(order_key(request.order_id), payee, token, amount),
                ),
            ]
        else:
            calls = [("transfer", token, transfer_data(payee, amount))]
        return calls

    @translated("reading the payer's balances")
    async def check_funds(self, request: PaymentRequest) -> None:
        """Refuse, before signing, a payment the wallet cannot cover: the token amount, or the gas.

        Reads the payer's token balance (``balanceOf``) and gas balance, and prices the transactions
        :meth:`prepare` would sign at the fees it would sign them with (gas limit times ``maxFeePerGas``,
        the most the node may charge). Nothing is signed or sent.

        Raises:
            InsufficientFundsError: the token balance is below the amount, or the gas balance below the fees.
            RailError: as :meth:`prepare` (wrong chain or rail type, bad addresses, fees above the cap).
        """
        self._check_request(request)
        chain_id = await self._node_chain_id()
        if _caip2_id(request.chain) != chain_id:
            raise RailError(
                f"wrong chain: the payment is on {request.chain} but the node at this rail's RPC is "
                f"eip155:{chain_id}; nothing was signed"
            )
        calls = self._calls(request)
        # The fees, gas limits and pending nonce are the ones prepare() signs with, when it follows.
        priced, balances = await self._price(request, calls, balances=True)
        assert balances is not None
        held, native = balances
        gas = sum(priced.gases)
        max_fee = priced.max_fee
        money = request.amount
        require(
            held,
            money.amount,
            decimals=money.decimals,
            symbol=money.currency,
            address=self._address,
            chain=request.chain,
        )
        symbol, decimals = native_token(self._networks, request.chain, ("ETH", 18))
        require(
            native,
            gas * max_fee,
            decimals=decimals,
            symbol=symbol,
            address=self._address,
            chain=request.chain,
            why=f" for gas ({len(calls)} transaction(s), {gas} gas at up to {max_fee} wei per gas)",
        )
        if len(self._priced) >= _MINED_KEPT:
            self._priced.pop(next(iter(self._priced)))
        self._priced[request] = priced

    @translated("reading a payment made elsewhere")
    async def adopt(self, request: PaymentRequest, tx_id: str) -> Sequence[SignedTx]:
        """The pre-paid flow: ``tx_id``, made by the operator, as this request's payment (nothing signed).

        Raises:
            PaymentMismatchError: the chain shows another payment (``field`` names what differs).
            RailError: not this rail's payment, or the node does not serve the signed bytes.
        """
        self._check_request(request)
        if not (isinstance(tx_id, str) and tx_id.startswith("0x") and len(tx_id) == 66):
            raise PaymentMismatchError("transaction", "a 0x-prefixed 32-byte transaction hash", tx_id)
        return await adopt_payment(self._rpc, request, tx_id, depth=self.depth_for(request.chain))

    @translated("preparing an escrow release")
    async def prepare_release(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Sign ``Escrow.release(orderKey)`` for the buyer after delivery was accepted."""
        self._check_request(request)
        if request.rail_type not in ESCROW_TYPES or not request.escrow_address:
            raise RailError(f"{request.rail_type!r} is not an escrow rail; there is nothing to release")
        escrow = _checksum(request.escrow_address)
        return await self._sign(
            request, [("escrow_release", escrow, escrow_release_data(order_key(request.order_id)))], None
        )

    def _check_request(self, request: PaymentRequest) -> None:
        if not self.supports(request.rail_type, request.chain):
            raise RailError(
                f"the EVM rail on {self.chain or 'eip155:*'} cannot pay {request.rail_type!r} "
                f"on {request.chain!r}; nothing was signed"
            )
        for field, value in (("token", request.token), ("payee", request.payee)):
            if not is_address(value):
                raise RailError(f"the payment's {field} is not an EVM address: {value!r}")
        if request.payer and request.payer not in ("None", "") and not _same(request.payer, self._address):
            raise PaymentMismatchError("payer", self._address, request.payer)
        if request.amount.amount <= 0:
            raise RailError(f"refusing to pay a non-positive amount: {request.amount}")

    @translated("asking the EVM node for its chain id")
    async def node_chain(self) -> str:
        """The CAIP-2 id of the chain the rail's node is on (asked once, then remembered)."""
        return f"eip155:{await self._node_chain_id()}"

    async def _node_chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = quantity(await self._rpc.call("eth_chainId"), "eth_chainId")
        return self._chain_id

    async def _nonce_scope(self, chain: str) -> str:
        """The chain as nonce reservations know it: its CAIP-2 id and its genesis block.

        A dev chain restarted under the same chain id (every embedded sandbox run starts a fresh
        anvil) is another ledger: reservations made on the old one must not open a nonce gap here.
        """
        if self._genesis is None:
            block = await self._rpc.call("eth_getBlockByNumber", ["0x0", False])
            self._genesis = _hash(answer_field(block, "hash", "the genesis block")).removeprefix("0x")[:16]
        return f"{chain}#{self._genesis}"

    async def _price(
        self, request: PaymentRequest, calls: Sequence[tuple[str, str, bytes]], *, balances: bool
    ) -> tuple[_Priced, tuple[int, int] | None]:
        """What signing ``calls`` takes from the node: fees, gas limits, the pending nonce.

        With ``balances``, also the payer's token and gas balances. The reads do not depend on one
        another: they go in one request (a JSON-RPC batch), one round trip for all of them.
        """
        purpose, to, data = calls[0]
        reads: list[tuple[str, Sequence[Any]]] = [
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []),
            ("eth_estimateGas", [{"from": self._address, "to": to, "data": _hex(data)}]),
            ("eth_getTransactionCount", [self._address, "pending"]),
        ]
        if balances:
            balance_call = {
                "to": _checksum(request.token),
                "data": _hex(balance_of_data(self._address)),
            }
            reads += [("eth_call", [balance_call, "latest"]), ("eth_getBalance", [self._address, "latest"])]
        block, tip_answer, estimate, count, *held = await self._rpc.batch(reads)
        block = _answered(block)
        if not isinstance(block, Mapping):
            raise RailError(f"the EVM node answered the latest block with {type(block).__name__}")
        fee = block.get("baseFeePerGas")
        base = 0 if fee is None else quantity(fee, "the base fee")  # a chain without EIP-1559
        # Nodes without eth_maxPriorityFeePerGas: a small tip still gets mined.
        tip = 1 if isinstance(tip_answer, NodeError) else quantity(tip_answer, "eth_maxPriorityFeePerGas")
        max_fee, tip = self._capped(request, base, tip)
        # Later calls depend on the transactions before them, which are not mined yet: fixed limits.
        gases = (self._gas_limit(purpose, estimate), *(GAS_LIMITS[p] for p, _, _ in calls[1:]))
        pending = quantity(_answered(count), "eth_getTransactionCount")
        priced = _Priced(tuple(calls), time.monotonic(), max_fee, tip, gases, pending)
        if not balances:
            return priced, None
        token_answer, native_answer = held
        return priced, (
            word(_answered(token_answer), "the token balance"),
            quantity(_answered(native_answer), "the gas balance"),
        )

    def _capped(self, request: PaymentRequest, base: int, tip: int) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)`` for a base fee and tip, never above the cap."""
        caps = [c for c in (request.fee_cap_wei, self._fee_cap) if c is not None]
        cap = min(caps) if caps else None
        wanted = 2 * base + tip
        if cap is None:
            return wanted, tip
        if base + tip > cap:
            if base + 1 > cap:
                raise RailError(
                    f"gas fees are above the cap: the base fee is {base} wei but maxFeePerGas is capped "
                    f"at {cap} wei; refusing to sign"
                )
            tip = cap - base
        return min(wanted, cap), min(tip, cap)

    @staticmethod
    def _gas_limit(purpose: str, estimate: Any) -> int:
        limit = GAS_LIMITS[purpose]
        try:
            estimated = quantity(_answered(estimate), "eth_estimateGas")
        except RailError:  # a doomed call: keep the fixed limit so it is mined and fails visibly
            return limit
        return max(limit, estimated * _HEADROOM_NUM // _HEADROOM_DEN)

    async def _pending_nonce(self) -> int:
        """The next nonce of the payer counting the node's pool (``pending``)."""
        count = await self._rpc.call("eth_getTransactionCount", [self._address, "pending"])
        return quantity(count, "eth_getTransactionCount")

    async def _sign(
        self, request: PaymentRequest, calls: Sequence[tuple[str, str, bytes]], priced: _Priced | None
    ) -> list[SignedTx]:
        chain_id = await self._node_chain_id()
        if _caip2_id(request.chain) != chain_id:
            raise RailError(
                f"wrong chain: the payment is on {request.chain} but the node at this rail's RPC is "
                f"eip155:{chain_id}; nothing was signed"
            )
        if (
            priced is not None
            and priced.calls == tuple(calls)
            and time.monotonic() - priced.at <= PRICED_FOR_S
        ):
            # check_funds() read these for this very request a moment ago: sign with what it priced.
            max_fee, tip, gases, pending = priced.max_fee, priced.tip, list(priced.gases), priced.pending
        else:
            fresh, _ = await self._price(request, calls, balances=False)
            max_fee, tip, gases, pending = fresh.max_fee, fresh.tip, list(fresh.gases), fresh.pending
        first = await reserve_nonces(
            self._nonces, await self._nonce_scope(request.chain), self._address, pending, len(calls)
        )
        signed = []
        for i, ((purpose, to, data), gas) in enumerate(zip(calls, gases, strict=True)):
            nonce = first + i
            tx = EvmTransaction(
                chain_id=chain_id,
                nonce=nonce,
                to=to,
                gas=gas,
                max_fee_per_gas=max_fee,
                max_priority_fee_per_gas=tip,
                data=data,
            )
            out = await self._signer.sign_transaction(tx)
            signed.append(
                SignedTx(
                    chain=request.chain,
                    tx_id=out.tx_hash,
                    raw=out.raw,
                    purpose=purpose,
                    meta={
                        "nonce": nonce,
                        "from": self._address,
                        "to": to,
                        "purpose": purpose,
                        "gas": gas,
                        "max_fee_per_gas": max_fee,
                        "data": "0x" + data.hex(),
                    },
                )
            )
        return signed

    # --- sending and reconciling ---------------------------------------------------------------

    @translated("broadcasting an EVM transaction")
    async def broadcast(self, tx: SignedTx) -> None:
        """Send the exact signed bytes. A node that already knows or already mined them is success.

        Raises:
            RailError: the node refused the bytes (e.g. their nonce was used by another transaction).
        """
        try:
            sent = await self._rpc.call("eth_sendRawTransaction", [_hex(tx.raw)])
        except NodeError as exc:
            text = exc.node_message.lower()
            if "already known" in text or "known transaction" in text or "already imported" in text:
                return
            if "nonce too low" in text or "nonce is too low" in text:
                # Its nonce is used: by these very bytes (mined) or by another transaction. Sending
                # is pointless either way, and which one it was is status()'s verdict to give.
                log.info("transaction %s not sent again: its nonce is already used", tx.tx_id)
                return
            raise RailError(f"the node refused transaction {tx.tx_id}: {exc.node_message}") from exc
        _hash(sent)  # a node that took the bytes answers with their hash

    async def _receipt(self, tx_id: str) -> Any:
        known = self._mined.get(tx_id)
        if known is not None:
            return known
        receipt = await self._rpc.call("eth_getTransactionReceipt", [tx_id])
        if receipt is None:
            return None
        if not isinstance(receipt, Mapping):
            raise RailError(f"the EVM node answered the receipt of {tx_id} with {type(receipt).__name__}")
        return receipt

    def _final(self, tx_id: str, receipt: Any) -> None:
        """Keep a receipt at its depth (oldest dropped first): it is read again by verify()."""
        self._included.pop(tx_id, None)
        if len(self._mined) >= _MINED_KEPT:
            self._mined.pop(next(iter(self._mined)))
        self._mined[tx_id] = receipt

    async def _depth(self, receipt: Any, needed: int) -> int:
        """Blocks on top of the receipt's, its own included (1 = just mined)."""
        if needed == 1:
            return 1  # no need to ask: the receipt's own block is depth 1
        head = quantity(await self._rpc.call("eth_blockNumber"), "eth_blockNumber")
        return head - block_of(receipt) + 1

    @translated("reading an EVM transaction's status")
    async def status(self, tx: SignedTx) -> TxStatus:
        """What the chain says of ``tx`` now, at the rail's confirmation depth.

        CONFIRMED / REVERTED from a receipt at depth, PENDING before it (or unmined); DROPPED when its
        nonce was used by something else and that held for ``drop_settle_s``.
        """
        receipt = await self._receipt(tx.tx_id)
        if receipt is None:
            sender = str(tx.meta.get("from") or self._address)
            mined_next = quantity(
                await self._rpc.call("eth_getTransactionCount", [_checksum(sender), "latest"]),
                "eth_getTransactionCount",
            )
            if mined_next <= int(tx.meta["nonce"]):
                self._unseen_since.pop(tx.tx_id, None)
                if self._included.pop(tx.tx_id, None) is not None:
                    # It was in a block, and now its nonce is free again: the block left the chain.
                    log.warning("transaction %s left the chain in a reorg; it will be sent again", tx.tx_id)
                    self._left_chain.add(tx.tx_id)
                return TxStatus.PENDING
            # The nonce is used: by another transaction (this one can never land), or by this one
            # before the node serves its receipt. Only a verdict that holds for the settle time is
            # DROPPED, after which the runner may sign anew.
            receipt = await self._receipt(tx.tx_id)
            if receipt is None:
                first = self._unseen_since.setdefault(tx.tx_id, time.monotonic())
                if time.monotonic() - first < self._drop_settle:
                    return TxStatus.PENDING
                return TxStatus.DROPPED
        self._unseen_since.pop(tx.tx_id, None)
        needed = self.depth_for(tx.chain)
        if tx.tx_id not in self._mined and await self._depth(receipt, needed) < needed:
            # Mined, not final: a reorg may still remove it (REVERTED too: re-mined, it may succeed).
            self._included[tx.tx_id] = block_of(receipt)
            return TxStatus.PENDING
        mined_ok = succeeded(receipt)
        self._final(tx.tx_id, receipt)
        return TxStatus.CONFIRMED if mined_ok else TxStatus.REVERTED

    async def wait(self, tx: SignedTx, timeout: float) -> TxStatus:
        """Poll :meth:`status` until it is final or ``timeout`` seconds pass (then PENDING).

        A transaction still pending after ``GAP_AFTER_S`` behind a nonce gap is unblocked once (see
        :meth:`_fill_nonce_gap`). One whose block a reorg removed, or that the node no longer knows
        (checked every ``RESEND_AFTER_S``), is broadcast again: the same signed bytes.
        """
        started = time.monotonic()
        deadline = started + timeout
        filled = False
        checked = started
        while True:
            state = await self.status(tx)
            now = time.monotonic()
            if state is not TxStatus.PENDING or now >= deadline:
                return state
            if tx.tx_id in self._left_chain:
                self._left_chain.discard(tx.tx_id)
                checked = now
                await self.broadcast(tx)
            elif now - checked >= RESEND_AFTER_S:
                checked = now
                if not await self._node_knows(tx):
                    log.info("the node no longer knows transaction %s; sending it again", tx.tx_id)
                    await self.broadcast(tx)
            if not filled and now - started >= GAP_AFTER_S:
                filled = True
                await self._fill_nonce_gap(tx)
            await asyncio.sleep(min(self._poll, max(deadline - time.monotonic(), 0)))

    @translated("looking up an EVM transaction")
    async def _node_knows(self, tx: SignedTx) -> bool:
        """True when the node has ``tx`` in its pool or in a block."""
        found = await self._rpc.call("eth_getTransactionByHash", [tx.tx_id])
        if found is not None and not isinstance(found, Mapping):
            raise RailError(f"the EVM node answered transaction {tx.tx_id} with {type(found).__name__}")
        return found is not None

    @translated("filling a nonce gap")
    async def _fill_nonce_gap(self, tx: SignedTx) -> None:
        """Send 0-value self-transfers at the unused nonces below ``tx``'s, so it can be mined.

        A process killed after reserving a nonce but before journaling the transaction leaves that
        nonce unused forever; every later transaction of the wallet then waits behind it. Filling it
        moves no money. Should another order's transaction hold one of these nonces after all, the
        filler makes it DROPPED (its nonce used), which the runner re-signs: never a second payment.
        """
        if str(tx.meta.get("from") or self._address).lower() != self._address.lower():
            return
        nonce = int(tx.meta["nonce"])
        pending = await self._pending_nonce()
        if pending >= nonce:
            return
        log.warning(
            "nonces %d..%d of %s were never sent; filling them so %s can land",
            pending,
            nonce - 1,
            self._address,
            tx.tx_id,
        )
        max_fee = int(
            tx.meta.get("max_fee_per_gas")
            or quantity(await self._rpc.call("eth_gasPrice"), "eth_gasPrice") * 2
        )
        for gap in range(pending, nonce):
            filler = await self._signer.sign_transaction(
                EvmTransaction(
                    chain_id=await self._node_chain_id(),
                    nonce=gap,
                    to=self._address,
                    gas=21_000,
                    max_fee_per_gas=max_fee,
                    max_priority_fee_per_gas=min(max_fee, 10**9),
                )
            )
            try:
                await self._rpc.call("eth_sendRawTransaction", [_hex(filler.raw)])
            except NodeError as exc:  # already filled or used meanwhile: nothing to do for this one
                log.info("nonce %d filler not sent: %s", gap, exc.node_message)

    # --- checking and proving ------------------------------------------------------------------

    @translated("verifying an EVM payment")
    async def verify(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> None:
        """Check each moving transaction's ERC-20 ``Transfer`` log against the request.

        Raises:
            TransactionRevertedError: a transaction reverted (with the decoded reason).
            PaymentMismatchError: a receipt is missing or its transfer differs in token, parties or amount.
        """
        for tx in txs:
            receipt = await self._receipt(tx.tx_id)
            if receipt is None:
                raise PaymentMismatchError("receipt", tx.tx_id, None)
            if not succeeded(receipt):
                raise TransactionRevertedError(tx.tx_id, await self._revert_reason(tx, receipt))
            expected = self._expected_transfer(request, tx)
            if expected is None:
                continue
            sender, to = expected
            moved = [
                log
                for log in transfer_logs(receipt_logs(receipt))
                if _same(log.token, request.token) and _same(log.sender, sender) and _same(log.to, to)
            ]
            if not moved:
                raise PaymentMismatchError(
                    "transfer", f"{request.amount} from {sender} to {to}", "no Transfer log"
                )
            total = sum(log.amount for log in moved)
            if total != request.amount.amount:
                raise PaymentMismatchError("amount", request.amount.amount, total)

    def _expected_transfer(self, request: PaymentRequest, tx: SignedTx) -> tuple[str, str] | None:
        payer = str(tx.meta.get("from") or self._address)
        if tx.purpose == "transfer":
            return payer, request.payee
        if tx.purpose == "escrow_deposit":
            return payer, str(request.escrow_address)
        if tx.purpose == "escrow_release":
            return str(request.escrow_address), request.payee
        return None

    @translated("reading an EVM revert reason")
    async def revert_reason(self, tx: SignedTx) -> str | None:
        """Why a mined ``tx`` reverted (``Error(string)`` text, a panic, a custom error); None if unknown."""
        receipt = await self._receipt(tx.tx_id)
        if receipt is None or succeeded(receipt):
            return None
        return await self._revert_reason(tx, receipt)

    async def _revert_reason(self, tx: SignedTx, receipt: Mapping[str, Any]) -> str | None:
        """Replay the call at its block with ``eth_call`` to read the ``Error(string)`` reason."""
        call = {
            "from": _checksum(str(tx.meta.get("from") or self._address)),
            "to": _checksum(str(tx.meta["to"])),
            "data": str(tx.meta.get("data") or "0x"),
            "gas": hex(int(tx.meta.get("gas") or GAS_LIMITS.get(tx.purpose, 300_000))),
        }
        try:
            await self._rpc.call("eth_call", [call, hex(block_of(receipt))])
        except NodeError as exc:
            # A revert: the node's message, and the revert's encoded reason in ``data`` when it has one.
            data = exc.data if isinstance(exc.data, str) else None
            if data and data.startswith("0x"):
                try:
                    reason = decode_revert(bytes.fromhex(data[2:]))
                except ValueError:
                    reason = None
                return reason or exc.node_message
            return exc.node_message
        return None

    def proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> dict[str, Any]:
        """The ``payment-proof`` body for a direct transfer (snake_case; the client camelCases it)."""
        paid = [t for t in txs if t.purpose == "transfer"] or list(txs)
        if not paid:
            raise RailError("no transaction to prove")
        return {
            "verification_mode": "rpc",
            "chain": request.chain,
            "token": request.amount.currency,
            "token_address": _checksum(request.token),
            "payer_address": str(paid[-1].meta.get("from") or self._address),
            "payee_address": _checksum(request.payee),
            "amount": request.amount.to_json()["amount"],
            "raw_amount": str(request.amount.amount),
            "token_decimals": request.amount.decimals,
            "transaction_hash": paid[-1].tx_id,
        }

    def escrow_proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> EscrowProof:
        """The ``payment/escrow-lock`` body: the deposit's hash, the chain and the escrow address."""
        deposits = [t for t in txs if t.purpose == "escrow_deposit"]
        if not deposits or not request.escrow_address:
            raise RailError("no escrow deposit among these transactions")
        return EscrowProof(
            transaction_hash=deposits[-1].tx_id,
            chain=request.chain,
            escrow_address=_checksum(request.escrow_address),
        )

    async def aclose(self) -> None:
        """Close the node connections."""
        with contextlib.suppress(Exception):  # closing is best effort: nothing can be lost here
            await self._rpc.aclose()
