"""The Solana rail: SPL ``TransferChecked`` (creating the payee's token account) over the async RPC client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from solders.transaction_status import TransactionConfirmationStatus
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from buyer_agent._errors import PaymentMismatchError, RailError, SignerError, TransactionRevertedError
from buyer_agent._redact import Secret
from buyer_agent._urls import check_port
from buyer_agent.rails._base import EscrowProof, PaymentRequest, SignedTx, TxStatus
from buyer_agent.rails._boundary import translated
from buyer_agent.rails._funds import native_token, require
from buyer_agent.rails._nodes import SolanaNodeProvider
from buyer_agent.rails._rpc_spans import trace_solana_client
from buyer_agent.signers import SolanaSigner, as_solana_signer

if TYPE_CHECKING:
    from buyer_agent.networks import Networks

__all__ = ["SOLANA_RAIL_TYPES", "SolanaRail"]

SOLANA_RAIL_TYPES = frozenset({"wallet"})

_LEVELS = {"processed": 0, "confirmed": 1, "finalized": 2}
#: Lamports per signature (the base fee) and the size of an SPL token account (for its rent).
_FEE_PER_SIGNATURE = 5_000
_TOKEN_ACCOUNT_SIZE = 165


def _status_level(status: TransactionConfirmationStatus | None) -> int:
    # solders' enum is not hashable, so compare rather than look up.
    if status == TransactionConfirmationStatus.Finalized:
        return 2
    if status == TransactionConfirmationStatus.Confirmed:
        return 1
    return 0


def _value(resp: Any, what: str) -> Any:
    """The ``value`` of a typed RPC answer; an error answer (no ``value``) becomes a RailError."""
    if not hasattr(resp, "value"):
        message = getattr(resp, "message", None) or type(resp).__name__
        raise RailError(f"the Solana RPC answered {what} with an error: {message}")
    return resp.value


class SolanaRail:
    """Pays SPL tokens (``wallet`` rail type) on one Solana cluster.

    One transaction per payment: create the payee's associated token account if it is missing
    (idempotent instruction, paid by the buyer), then ``TransferChecked`` of the exact amount.
    Its validity is bounded by the blockhash, so an unsent or unlanded payment provably expires.

    Args:
        rpc_url: The cluster's JSON-RPC URL.
        signer: Who signs: a :class:`~buyer_agent.signers.SolanaSigner`, or the buyer's keypair itself
            (base58 of the 64 bytes, or a JSON array of ints), held by a
            :class:`~buyer_agent.signers.LocalSolanaSigner`.
        chain: CAIP-2 id (``solana:<genesis hash prefix>``); checked against the node before signing.
        commitment: ``processed``, ``confirmed`` or ``finalized`` — when a transaction counts as landed
            (CONFIRMED, or REVERTED); below it the transaction is PENDING. None (the default): the
            commitment of the chain's profile in ``networks``, else ``confirmed``.
        poll_interval: Seconds between status polls in :meth:`wait`.
        networks: The network profiles (the chain's default commitment).
    """

    name = "solana"

    def __init__(
        self,
        rpc_url: str,
        signer: SolanaSigner | str | Secret,
        *,
        chain: str,
        commitment: str | None = None,
        poll_interval: float = 0.05,
        networks: Networks | None = None,
    ) -> None:
        if not chain.startswith("solana:"):
            raise RailError(f"not a Solana CAIP-2 chain id: {chain!r} (expected solana:<genesis hash>)")
        check_port(rpc_url, "the Solana RPC URL")
        if commitment is None:
            profile = networks.get(chain) if networks is not None else None
            commitment = profile.commitment if profile is not None and profile.commitment else "confirmed"
        if commitment not in _LEVELS:
            raise RailError(f"unknown commitment {commitment!r}; use one of {', '.join(_LEVELS)}")
        try:
            self._signer = as_solana_signer(signer)
        except SignerError as exc:  # its message never holds the key
            raise RailError(exc.message) from None
        self._payer = Pubkey.from_string(self._signer.public_key)
        self.chain = chain
        self._rpc_url = rpc_url
        self._commitment = Commitment(commitment)
        self._level = _LEVELS[commitment]
        self._poll = poll_interval
        self._networks = networks
        self._client = AsyncClient(rpc_url, commitment=self._commitment, timeout=30, http2=False)
        # solana-py has no hook for its transport: its provider is swapped for one that says when the
        # node is slow and bounds what it reads (same settings; nothing was sent yet).
        self._client._provider = SolanaNodeProvider(rpc_url, timeout=30, http2=False)
        # Each JSON-RPC call a client span under the order's step, when tracing is on.
        trace_solana_client(self._client, rpc_url)
        self._genesis_checked = False

    def __repr__(self) -> str:
        return f"SolanaRail(rpc_url={self._rpc_url!r}, address={self.address!r}, chain={self.chain!r})"

    @property
    def address(self) -> str:
        """The buyer's public key (base58), the payer."""
        return str(self._payer)

    @property
    def signer(self) -> SolanaSigner:
        """Who signs this rail's transactions."""
        return self._signer

    @property
    def commitment(self) -> str:
        """The commitment at which a transaction counts as landed."""
        return str(self._commitment)

    def supports(self, rail_type: str, chain: str) -> bool:
        """True for ``wallet`` on this rail's cluster."""
        return rail_type in SOLANA_RAIL_TYPES and chain == self.chain

    # --- signing -------------------------------------------------------------------------------

    @translated("preparing a Solana payment")
    async def prepare(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Sign one transaction: create the payee's token account if missing, then ``TransferChecked``.

        Raises:
            RailError: wrong chain, wrong payer, bad addresses. Nothing is sent.
        """
        if not self.supports(request.rail_type, request.chain):
            raise RailError(
                f"the Solana rail on {self.chain} cannot pay {request.rail_type!r} on {request.chain!r}; "
                "nothing was signed"
            )
        if request.payer and request.payer not in ("None", "") and request.payer != self.address:
            raise PaymentMismatchError("payer", self.address, request.payer)
        if request.amount.amount <= 0:
            raise RailError(f"refusing to pay a non-positive amount: {request.amount}")
        mint = self._pubkey(request.token, "token mint")
        payee = self._pubkey(request.payee, "payee")
        await self._check_genesis()
        payer = self._payer
        instructions = [
            create_idempotent_associated_token_account(payer, payee, mint),
            transfer_checked(
                TransferCheckedParams(
                    program_id=TOKEN_PROGRAM_ID,
                    source=get_associated_token_address(payer, mint),
                    mint=mint,
                    dest=get_associated_token_address(payee, mint),
                    owner=payer,
                    amount=request.amount.amount,
                    decimals=request.amount.decimals,
                )
            ),
        ]
        latest = _value(await self._client.get_latest_blockhash(self._commitment), "getLatestBlockhash")
        blockhash: Hash = latest.blockhash
        message = Message.new_with_blockhash(instructions, payer, blockhash)
        signature = Signature.from_bytes(await self._signer.sign_solana_message(bytes(message)))
        if not signature.verify(payer, bytes(message)):
            raise SignerError(f"the Solana signer's signature does not verify for {payer}; nothing is sent")
        tx = Transaction.populate(message, [signature])
        return [
            SignedTx(
                chain=request.chain,
                tx_id=str(tx.signatures[0]),
                raw=bytes(tx),
                purpose="transfer",
                meta={
                    "from": self.address,
                    "to": str(payee),
                    "purpose": "transfer",
                    "blockhash": str(blockhash),
                    "last_valid_block_height": int(latest.last_valid_block_height),
                },
            )
        ]

    @translated("reading the payer's balances")
    async def check_funds(self, request: PaymentRequest) -> None:
        """Refuse, before signing, a payment the wallet cannot cover: the token amount, or SOL for fees.

        Reads the payer's token account of the mint and its SOL balance; the SOL needed is the
        transaction's fee and, when the payee has no token account of the mint yet, that account's
        rent (the payment creates it, paid by the buyer). Nothing is signed or sent.

        Raises:
            InsufficientFundsError: too few tokens, or too little SOL.
            RailError: wrong chain or rail type, bad addresses.
        """
        if not self.supports(request.rail_type, request.chain):
            raise RailError(
                f"the Solana rail on {self.chain} cannot pay {request.rail_type!r} on {request.chain!r}; "
                "nothing was signed"
            )
        mint = self._pubkey(request.token, "token mint")
        payee = self._pubkey(request.payee, "payee")
        await self._check_genesis()
        source = get_associated_token_address(self._payer, mint)
        held = 0
        if _value(await self._client.get_account_info(source), "getAccountInfo") is not None:
            balance = _value(await self._client.get_token_account_balance(source), "getTokenAccountBalance")
            held = int(balance.amount)
        money = request.amount
        require(
            held,
            money.amount,
            decimals=money.decimals,
            symbol=money.currency,
            address=self.address,
            chain=request.chain,
        )
        need, why = _FEE_PER_SIGNATURE, "the fee"
        dest = get_associated_token_address(payee, mint)
        if _value(await self._client.get_account_info(dest), "getAccountInfo") is None:
            rent = _value(
                await self._client.get_minimum_balance_for_rent_exemption(_TOKEN_ACCOUNT_SIZE),
                "getMinimumBalanceForRentExemption",
            )
            need, why = need + int(rent), "the fee and the rent of the payee's new token account"
        lamports = int(_value(await self._client.get_balance(self._payer), "getBalance"))
        symbol, decimals = native_token(self._networks, request.chain, ("SOL", 9))
        require(
            lamports,
            need,
            decimals=decimals,
            symbol=symbol,
            address=self.address,
            chain=request.chain,
            why=f" for {why}",
        )

    @staticmethod
    def _pubkey(value: str, what: str) -> Pubkey:
        try:
            return Pubkey.from_string(value)
        except ValueError as exc:
            raise RailError(f"the payment's {what} is not a Solana address: {value!r}") from exc

    async def _check_genesis(self) -> None:
        if self._genesis_checked:
            return
        genesis = str(_value(await self._client.get_genesis_hash(), "getGenesisHash"))
        reference = self.chain.removeprefix("solana:")
        if not reference or not genesis.startswith(reference):
            raise RailError(
                f"wrong chain: this rail pays on {self.chain} but the node's genesis hash is {genesis}; "
                "nothing was signed"
            )
        self._genesis_checked = True

    async def prepare_release(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Solana payments are direct; there is no escrow to release."""
        raise RailError("the Solana rail has no escrow; there is nothing to release")

    # --- sending and reconciling ---------------------------------------------------------------

    @translated("broadcasting a Solana transaction")
    async def broadcast(self, tx: SignedTx) -> None:
        """Send the exact signed bytes; a transaction the cluster already processed is success.

        Raises:
            RailError: the cluster refused the bytes (e.g. their blockhash expired).
        """
        opts = TxOpts(skip_preflight=True, skip_confirmation=True, preflight_commitment=self._commitment)
        try:
            resp = await self._client.send_raw_transaction(tx.raw, opts=opts)
        except RPCException as exc:
            text = str(exc)
            if "AlreadyProcessed" in text or "already been processed" in text.lower():
                return
            first = getattr(exc.args[0], "message", None) if exc.args else None
            reason = str(first or text)[:300]
            raise RailError(f"the Solana RPC refused transaction {tx.tx_id}: {reason}") from exc
        sent = str(_value(resp, "sendTransaction"))
        if sent != tx.tx_id:
            raise RailError(f"the Solana RPC answered with signature {sent}, not {tx.tx_id}")

    @translated("reading a Solana transaction's status")
    async def status(self, tx: SignedTx) -> TxStatus:
        """CONFIRMED / REVERTED at the rail's commitment; DROPPED once its blockhash can no longer land."""
        found = await self._signature_status(tx)
        if found is not None:
            return found
        height = int(_value(await self._client.get_block_height(self._commitment), "getBlockHeight"))
        if height <= int(tx.meta["last_valid_block_height"]):
            return TxStatus.PENDING
        # Expired; look once more in case it landed just before the check.
        found = await self._signature_status(tx)
        return TxStatus.DROPPED if found is None else found

    async def _signature_status(self, tx: SignedTx) -> TxStatus | None:
        resp = await self._client.get_signature_statuses(
            [Signature.from_string(tx.tx_id)], search_transaction_history=True
        )
        values = _value(resp, "getSignatureStatuses")
        if not values or values[0] is None:
            return None
        entry = values[0]
        if _status_level(entry.confirmation_status) < self._level:
            return TxStatus.PENDING  # landed, not at the commitment: a fork may still drop it
        return TxStatus.REVERTED if entry.err is not None else TxStatus.CONFIRMED

    async def wait(self, tx: SignedTx, timeout: float) -> TxStatus:
        """Poll :meth:`status` until it is final or ``timeout`` seconds pass (then PENDING)."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self.status(tx)
            if state is not TxStatus.PENDING or time.monotonic() >= deadline:
                return state
            await asyncio.sleep(min(self._poll, max(deadline - time.monotonic(), 0)))

    # --- checking and proving ------------------------------------------------------------------

    @translated("verifying a Solana payment")
    async def verify(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> None:
        """Read the transaction back: the payee's balance of the mint rose by exactly the amount.

        peaq records Solana proofs without checking them, so the buyer checks for itself.

        Raises:
            TransactionRevertedError: the transaction landed with an error.
            PaymentMismatchError: not found, or the payee's balance change differs from the amount.
        """
        for tx in txs:
            resp = await self._client.get_transaction(
                Signature.from_string(tx.tx_id),
                encoding="json",
                commitment=self._commitment,
                max_supported_transaction_version=0,
            )
            found = _value(resp, "getTransaction")
            if found is None or found.transaction.meta is None:
                raise PaymentMismatchError("transaction", tx.tx_id, None)
            meta = found.transaction.meta
            if meta.err is not None:
                raise TransactionRevertedError(tx.tx_id, self._failure_reason(meta))
            received = self._balance_change(meta, request.token, request.payee)
            if received != request.amount.amount:
                raise PaymentMismatchError("amount received by payee", request.amount.amount, received)

    @staticmethod
    def _failure_reason(meta: Any) -> str:
        """The program's own words (``Program log: Error: insufficient funds``) over the error code."""
        for line in meta.log_messages or ():
            if "Error:" in line:
                return str(line).split("Error:", 1)[1].strip() + f" ({meta.err})"
        return str(meta.err)

    @staticmethod
    def _balance_change(meta: Any, mint: str, owner: str) -> int:
        def total(balances: Any) -> int:
            return sum(
                int(b.ui_token_amount.amount)
                for b in balances or ()
                if str(b.mint) == mint and b.owner is not None and str(b.owner) == owner
            )

        return total(meta.post_token_balances) - total(meta.pre_token_balances)

    def proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> dict[str, Any]:
        """The ``payment-proof`` body (snake_case). peaq records Solana proofs (``recorded``)."""
        if not txs:
            raise RailError("no transaction to prove")
        return {
            "verification_mode": "recorded",
            "chain": request.chain,
            "token": request.amount.currency,
            "token_mint": request.token,
            "payer_address": str(txs[-1].meta.get("from") or self.address),
            "payee_address": request.payee,
            "amount": request.amount.to_json()["amount"],
            "raw_amount": str(request.amount.amount),
            "token_decimals": request.amount.decimals,
            "transaction_signature": txs[-1].tx_id,
        }

    def escrow_proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> EscrowProof:
        """Solana payments are direct; there is no escrow lock to prove."""
        raise RailError("the Solana rail has no escrow")

    async def aclose(self) -> None:
        """Close the RPC client's connections."""
        await self._client.close()
