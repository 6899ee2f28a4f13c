"""The x402 rail: an EIP-3009 authorization signed locally, which the market settles on chain at execute.

Nothing is broadcast by the buyer: the signed ``TransferWithAuthorization`` travels in the
``PAYMENT-SIGNATURE`` header, the market's facilitator submits it, and it moves the money once (the
token refuses a used nonce). So the rail does three things the transaction rails do not: it signs the
authorization through the agent's :class:`~buyer_agent.signers.EvmSigner` (a remote signer works,
its answer is checked), it tells whether an authorization can still settle (the chain's time against
``validBefore``, and ``authorizationState(from, nonce)``), and it finds the settlement (the
``AuthorizationUsed`` of the nonce and, in the same transaction, the ``Transfer`` payer → payee of the
exact amount, at the chain's depth). The transaction methods of the :class:`~buyer_agent.rails.Rail`
protocol refuse: there is no transaction of the buyer's to sign, send or prove.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from buyer_agent._errors import PaymentMismatchError, RailError, SignerError
from buyer_agent._redact import Secret
from buyer_agent._urls import check_port
from buyer_agent.rails._base import EscrowProof, PaymentRequest, SignedTx, TxStatus
from buyer_agent.rails._boundary import translated
from buyer_agent.rails._evm_abi import balance_of_data, transfer_logs
from buyer_agent.rails._evm_rpc import EvmRpc, block_of, call_result, quantity, receipt_logs, succeeded, word
from buyer_agent.rails._funds import require
from buyer_agent.rails._x402_wire import MIN_VALIDITY_S, Authorization, Challenge, Requirements, typed_data
from buyer_agent.signers import EvmSigner, as_evm_signer
from buyer_agent.signers._verify import checked_typed_signature

if TYPE_CHECKING:
    from buyer_agent.networks import Networks

__all__ = ["X402_RAIL", "AuthorizationState", "Settlement", "X402Rail", "challenge_mismatch"]

#: The rail type this rail pays.
X402_RAIL = "x402"
AUTHORIZATION_USED_TOPIC = "0x" + bytes(keccak(text="AuthorizationUsed(address,bytes32)")).hex()
_AUTHORIZATION_STATE = bytes(keccak(text="authorizationState(address,bytes32)"))[:4]


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


@dataclass(frozen=True, slots=True)
class AuthorizationState:
    """What the chain says of an authorization at its head: used or not, and the head's time."""

    used: bool
    chain_time: int
    block: int

    def expired(self, valid_before: int) -> bool:
        """True when no block from here on can settle it (the token needs ``timestamp < validBefore``)."""
        return self.chain_time >= valid_before


@dataclass(frozen=True, slots=True)
class Settlement:
    """The transaction that settled an authorization: its hash, block, and whether it is at depth."""

    tx: str
    block: int
    final: bool

    def to_json(self) -> dict[str, Any]:
        """The journaled form."""
        return {"tx": self.tx, "block": self.block}


class X402Rail:
    """Signs x402 (``exact``, EVM) authorizations and reads their settlement on one EVM chain.

    Args:
        rpc_url: The node's HTTP JSON-RPC URL (for balances, the authorization's state, the settlement).
        signer: Who signs: an :class:`~buyer_agent.signers.EvmSigner`, or the key itself (hex).
        chain: CAIP-2 id this rail pays on; None = any ``eip155`` chain (checked against the node).
        confirmations: Blocks (including its own) before a settlement counts; None = the chain
            profile's depth, else 1.
        networks: The network profiles (each chain's depth).
    """

    name = X402_RAIL

    def __init__(
        self,
        rpc_url: str,
        signer: EvmSigner | str | Secret,
        *,
        chain: str | None = None,
        confirmations: int | None = None,
        networks: Networks | None = None,
    ) -> None:
        if chain is not None and not _eip155(chain):
            raise RailError(f"not an EVM CAIP-2 chain id: {chain!r} (expected eip155:<chain id>)")
        if confirmations is not None and confirmations < 1:
            raise RailError("confirmations must be at least 1")
        check_port(rpc_url, "the EVM RPC URL")
        try:
            self._signer = as_evm_signer(signer)
        except SignerError as exc:
            raise RailError(exc.message) from None
        self._address = to_checksum_address(self._signer.address)
        self.chain = chain
        self._rpc_url = rpc_url
        self._confirmations = confirmations
        self._networks = networks
        self._chain_id: int | None = None
        self._rpc = EvmRpc(rpc_url, timeout_s=30)

    def __repr__(self) -> str:
        return f"X402Rail(rpc_url={self._rpc_url!r}, address={self._address!r}, chain={self.chain!r})"

    @property
    def address(self) -> str:
        """The buyer's checksummed address (the authorization's ``from``)."""
        return self._address

    def depth_for(self, chain: str | None) -> int:
        """The depth a settlement on ``chain`` needs: the rail's setting, else the chain profile's."""
        if self._confirmations is not None:
            return self._confirmations
        profile = self._networks.get(chain) if self._networks is not None and chain else None
        return profile.confirmations if profile is not None and profile.confirmations else 1

    def supports(self, rail_type: str, chain: str) -> bool:
        """True for ``x402`` on this rail's chain (any ``eip155`` chain when unset)."""
        if rail_type != X402_RAIL or not _eip155(chain):
            return False
        return self.chain is None or chain == self.chain

    # --- before signing -------------------------------------------------------------------------

    @translated("asking the EVM node for its chain id")
    async def node_chain(self) -> str:
        """The CAIP-2 id of the chain the rail's node is on (asked once)."""
        if self._chain_id is None:
            self._chain_id = quantity(await self._rpc.call("eth_chainId"), "eth_chainId")
        return f"eip155:{self._chain_id}"

    async def _check_chain(self, chain: str) -> None:
        if await self.node_chain() != chain:
            raise RailError(
                f"wrong chain: the payment is on {chain} but the node at this rail's RPC is "
                f"{await self.node_chain()}; nothing was signed"
            )

    @translated("reading the payer's x402 token balance")
    async def check_funds(self, request: PaymentRequest) -> None:
        """Refuse, before signing, an authorization the payer's token balance cannot cover (no gas needed).

        Raises:
            InsufficientFundsError: the balance is below the amount.
            RailError: another chain than the node's, or not this rail's payment.
        """
        self._check_request(request)
        await self._check_chain(request.chain)
        token = to_checksum_address(request.token)
        call = {"to": token, "data": _hex(balance_of_data(self._address))}
        held = word(await self._rpc.call("eth_call", [call, "latest"]), "the x402 token balance")
        money = request.amount
        require(
            held,
            money.amount,
            decimals=money.decimals,
            symbol=money.currency,
            address=self._address,
            chain=request.chain,
            why=" (x402: the market settles the authorization from this balance)",
        )

    def _check_request(self, request: PaymentRequest) -> None:
        if not self.supports(request.rail_type, request.chain):
            raise RailError(
                f"the x402 rail on {self.chain or 'eip155:*'} cannot pay {request.rail_type!r} on "
                f"{request.chain!r}; nothing was signed"
            )
        if request.payer and request.payer not in ("None", "") and not _same(request.payer, self._address):
            raise PaymentMismatchError("payer", self._address, request.payer)
        if request.amount.amount <= 0:
            raise RailError(f"refusing to authorize a non-positive amount: {request.amount}")

    # --- signing --------------------------------------------------------------------------------

    @translated("signing an x402 authorization")
    async def authorize(
        self, request: PaymentRequest, challenge: Challenge, *, now: int, valid_before: int
    ) -> Authorization:
        """Sign the EIP-3009 authorization ``challenge`` asks for, exactly as ``request`` agreed it.

        Each call draws a fresh random nonce: two calls are two payments the market could settle, so
        the caller journals the result before it leaves the process and signs again only when the
        old one provably cannot settle.

        Raises:
            PaymentMismatchError: the challenge's network, asset, payee or amount is not the request's
                (``field`` names it); nothing is signed.
            RailError: ``valid_before`` leaves less than the facilitator's minimum.
        """
        self._check_request(request)
        req = challenge.requirements
        mismatch = challenge_mismatch(request, req)
        if mismatch is not None:
            raise mismatch
        if valid_before < now + MIN_VALIDITY_S:
            raise RailError(
                f"the authorization would be valid for {valid_before - now} s, under the facilitator's "
                f"minimum of {MIN_VALIDITY_S} s; nothing was signed"
            )
        await self._check_chain(request.chain)
        head = await self._head()
        nonce = secrets.token_bytes(32)
        typed = typed_data(req, self._address, valid_after=0, valid_before=valid_before, nonce=nonce)
        signature = _canonical_v(await self._signer.sign_typed_data(typed))
        checked_typed_signature(typed, signature, self._address)
        return Authorization.make(
            challenge,
            self._address,
            valid_after=0,
            valid_before=valid_before,
            nonce=nonce,
            signature=signature,
            from_block=head,
        )

    # --- reading the chain ------------------------------------------------------------------------

    @translated("reading an x402 authorization's state")
    async def state(self, auth: Authorization) -> AuthorizationState:
        """``authorizationState(from, nonce)`` and the time at the chain's head (one block for both)."""
        block = await self._rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise RailError("the EVM node answered no latest block")
        number = quantity(block.get("number"), "the latest block's number")
        data = _AUTHORIZATION_STATE + encode(
            ["address", "bytes32"], [to_checksum_address(auth.payer), bytes.fromhex(auth.nonce[2:])]
        )
        call = {"to": to_checksum_address(auth.asset), "data": _hex(data)}
        answer = await self._rpc.call("eth_call", [call, hex(number)])
        (used,) = decode(["bool"], call_result(answer, "authorizationState"))
        return AuthorizationState(
            bool(used), quantity(block.get("timestamp"), "the block's timestamp"), number
        )

    @translated("looking for an x402 settlement")
    async def settlement(self, auth: Authorization) -> Settlement | None:
        """The transaction that used ``auth``'s nonce and moved its exact amount payer → payee, or None.

        A settlement found above the chain's depth is returned with ``final`` False (a reorg may still
        remove it). A transaction that used the nonce without that transfer is not a settlement.
        """
        token = to_checksum_address(auth.asset)
        logs = await self._rpc.call(
            "eth_getLogs",
            [
                {
                    "address": token,
                    "topics": [AUTHORIZATION_USED_TOPIC, _topic(auth.payer), auth.nonce.lower()],
                    "fromBlock": hex(max(auth.from_block, 0)),
                    "toBlock": "latest",
                }
            ],
        )
        if not isinstance(logs, list):
            raise RailError("the EVM node's eth_getLogs answer is not a list")
        for log in logs:
            tx_id = str(log.get("transactionHash") if isinstance(log, dict) else "")
            receipt = await self._rpc.call("eth_getTransactionReceipt", [tx_id])
            if not isinstance(receipt, dict) or not succeeded(receipt):
                continue
            moved = [
                t
                for t in transfer_logs(receipt_logs(receipt))
                if _same(t.token, token) and _same(t.sender, auth.payer) and _same(t.to, auth.pay_to)
            ]
            if sum(t.amount for t in moved) != auth.value or not moved:
                continue
            block = block_of(receipt)
            head = await self._head()
            return Settlement(tx_id, block, head - block + 1 >= self.depth_for(auth.network))
        return None

    # --- the transaction protocol: nothing of the buyer's is sent on this rail ---------------------

    def _no_transaction(self) -> RailError:
        return RailError(
            "the x402 rail signs an authorization the market settles; the buyer sends no transaction"
        )

    async def prepare(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Refused: an x402 payment is an authorization (:meth:`authorize`), not a transaction."""
        raise self._no_transaction()

    async def broadcast(self, tx: SignedTx) -> None:
        """Refused: the market's facilitator submits the settlement."""
        raise self._no_transaction()

    async def wait(self, tx: SignedTx, timeout: float) -> TxStatus:
        """Refused: see :meth:`settlement`."""
        raise self._no_transaction()

    async def status(self, tx: SignedTx) -> TxStatus:
        """Refused: see :meth:`state` and :meth:`settlement`."""
        raise self._no_transaction()

    async def verify(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> None:
        """Refused: see :meth:`settlement`."""
        raise self._no_transaction()

    def proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> dict[str, Any]:
        """Refused: the x402 proof carries the authorization's header."""
        raise self._no_transaction()

    def escrow_proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> EscrowProof:
        """Refused: x402 holds no escrow."""
        raise self._no_transaction()

    async def prepare_release(self, request: PaymentRequest) -> Sequence[SignedTx]:
        """Refused: x402 holds no escrow."""
        raise self._no_transaction()

    async def aclose(self) -> None:
        """Close the node transport's HTTP client."""
        with contextlib.suppress(Exception):  # closing is best effort: nothing can be lost here
            await self._rpc.aclose()

    async def _head(self) -> int:
        return quantity(await self._rpc.call("eth_blockNumber"), "eth_blockNumber")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def challenge_mismatch(request: PaymentRequest, req: Requirements) -> PaymentMismatchError | None:
    """The first of network, asset, payee and amount where the challenge differs from the request."""
    for field, want, got in (
        ("accepted.network", request.chain, req.network),
        ("accepted.asset", request.token, req.asset),
        ("accepted.payTo", request.payee, req.pay_to),
    ):
        if not _same(want, got):
            return PaymentMismatchError(field, want, got)
    if req.amount != request.amount.amount:
        return PaymentMismatchError("accepted.amount", request.amount.amount, req.amount)
    return None


def _eip155(chain: str) -> bool:
    namespace, _, reference = chain.partition(":")
    return namespace == "eip155" and reference.isdigit()


def _canonical_v(signature: bytes) -> bytes:
    """The 65-byte signature with ``v`` as 27 or 28 (EIP-3009 tokens take no other)."""
    if len(signature) != 65:
        raise RailError(f"the signer returned a {len(signature)}-byte signature, not 65 bytes")
    v = signature[64]
    return signature[:64] + bytes([v + 27]) if v in (0, 1) else signature
