"""What the market reads from and does on the chains: transfer checks, escrow state, arbiter moves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from web3 import Web3
from web3.exceptions import TransactionNotFound

from buyer_agent.sandbox.contracts import order_key
from buyer_agent.sandbox.market._errors import ApiError

__all__ = ["TRANSFER_TOPIC", "EvmView", "SolanaView"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()
_RELEASED_TOPIC = "0x" + Web3.keccak(text="Released(bytes32,address,uint256)").hex()
_REFUNDED_TOPIC = "0x" + Web3.keccak(text="Refunded(bytes32,address,uint256)").hex()
_DEPOSITED_TOPIC = "0x" + Web3.keccak(text="Deposited(bytes32,address,address,address,uint256)").hex()
_HELD, _RELEASED, _REFUNDED = 1, 2, 3


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


def _topic_address(topic: Any) -> str:
    return "0x" + _hex(topic)[-40:].lower()


def _rpc(what: str, thunk: Callable[[], T]) -> T:
    try:
        return thunk()
    except ApiError:
        raise
    except Exception as exc:
        _log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        raise ApiError(502, "PAYMENT_RPC_ERROR", f"{what} failed at the chain RPC") from exc


class EvmView:
    """Reads receipts and escrow deposits through an ``EvmChain``; moves funds as the arbiter."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain

    def receipt(self, tx_hash: str) -> Any:
        """The mined, successful receipt of ``tx_hash``.

        Raises:
            ApiError: ``PAYMENT_NOT_MINED`` (409), ``PAYMENT_TX_FAILED`` (402), ``PAYMENT_RPC_ERROR`` (502).
        """

        def fetch() -> Any:
            try:
                return self.chain.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None

        receipt = _rpc("eth_getTransactionReceipt", fetch)
        if receipt is None:
            raise ApiError(409, "PAYMENT_NOT_MINED", f"transaction {tx_hash} is not mined (yet)")
        if int(receipt["status"]) != 1:
            raise ApiError(402, "PAYMENT_TX_FAILED", f"transaction {tx_hash} failed on chain")
        return receipt

    def check_transfer(self, tx_hash: str, *, token: str, payer: str, payee: str, raw: int) -> None:
        """The transaction moved exactly ``raw`` of ``token`` from ``payer`` to ``payee``.

        Raises:
            ApiError: as :meth:`receipt`, or ``PAYMENT_TRANSFER_NOT_FOUND`` (400).
        """
        receipt = self.receipt(tx_hash)
        for log in receipt["logs"]:
            topics = [_hex(t) for t in log["topics"]]
            if (
                str(log["address"]).lower() == token.lower()
                and len(topics) == 3
                and topics[0] == TRANSFER_TOPIC
                and _topic_address(topics[1]) == payer.lower()
                and _topic_address(topics[2]) == payee.lower()
                and int(_hex(log["data"]), 16) == raw
            ):
                return
        raise ApiError(
            400,
            "PAYMENT_TRANSFER_NOT_FOUND",
            "no ERC-20 Transfer of the expected token, payer, payee and amount in this transaction",
            {
                "transactionHash": tx_hash,
                "token": token,
                "payer": payer,
                "payee": payee,
                "rawAmount": str(raw),
            },
        )

    def _event(self, tx_hash: str, topic: str, order_id: str) -> bool:
        receipt = self.receipt(tx_hash)
        key = "0x" + order_key(order_id).hex()
        escrow = self.chain.escrow_address.lower()
        return any(
            str(log["address"]).lower() == escrow
            and len(log["topics"]) >= 2
            and _hex(log["topics"][0]) == topic
            and _hex(log["topics"][1]) == key
            for log in receipt["logs"]
        )

    def check_escrow_lock(self, tx_hash: str, *, order_id: str, payer: str, payee: str, raw: int) -> None:
        """The deposit transaction for ``order_id`` is mined and the escrow holds the expected deposit.

        Raises:
            ApiError: as :meth:`receipt`, or ``PAYMENT_TRANSFER_NOT_FOUND`` (400) when the deposit
                differs (buyer, payee, token, amount, or not held).
        """
        if not self._event(tx_hash, _DEPOSITED_TOPIC, order_id):
            raise ApiError(
                400,
                "PAYMENT_TRANSFER_NOT_FOUND",
                "no escrow Deposited event for this order in the transaction",
            )
        deposit = _rpc("Escrow.deposits", lambda: self.chain.escrow_deposit(order_id))
        expected = (payer.lower(), payee.lower(), self.chain.token_address.lower(), raw, _HELD)
        found = (
            deposit.buyer.lower(),
            deposit.payee.lower(),
            deposit.token.lower(),
            deposit.amount,
            deposit.state,
        )
        if found != expected:
            raise ApiError(
                400,
                "PAYMENT_TRANSFER_NOT_FOUND",
                "the escrow deposit does not match the payment intent (buyer, payee, token, amount, held)",
                {
                    "buyer": deposit.buyer,
                    "payee": deposit.payee,
                    "amount": str(deposit.amount),
                    "state": deposit.state,
                },
            )

    def check_released(self, tx_hash: str, order_id: str) -> None:
        """``tx_hash`` emitted the escrow's ``Released`` event for the order and the deposit is released."""
        if not self._event(tx_hash, _RELEASED_TOPIC, order_id):
            raise ApiError(400, "PAYMENT_TRANSFER_NOT_FOUND", "no escrow Released event for this order")
        self._state_is(order_id, _RELEASED)

    def check_refunded(self, tx_hash: str, order_id: str) -> None:
        """``tx_hash`` emitted ``Refunded`` for the order and the deposit is refunded."""
        if not self._event(tx_hash, _REFUNDED_TOPIC, order_id):
            raise ApiError(400, "PAYMENT_TRANSFER_NOT_FOUND", "no escrow Refunded event for this order")
        self._state_is(order_id, _REFUNDED)

    def _state_is(self, order_id: str, state: int) -> None:
        deposit = _rpc("Escrow.deposits", lambda: self.chain.escrow_deposit(order_id))
        if deposit.state != state:
            raise ApiError(
                400, "PAYMENT_TRANSFER_NOT_FOUND", "the escrow deposit is not in the expected state"
            )

    def escrow_state(self, order_id: str) -> int:
        """0 none, 1 held, 2 released, 3 refunded."""
        return int(_rpc("Escrow.deposits", lambda: self.chain.escrow_deposit(order_id)).state)

    def release(self, order_id: str) -> str:
        """Release the order's deposit as the arbiter; returns the transaction hash."""
        return str(_rpc("Escrow.release", lambda: self.chain.release(order_id)))

    def refund(self, order_id: str) -> str:
        """Refund the order's deposit as the arbiter; returns the transaction hash."""
        return str(_rpc("Escrow.refund", lambda: self.chain.refund(order_id)))

    def send_back(self, sender: Any, to: str, raw: int) -> str:
        """Transfer ``raw`` test USDC from a provider wallet back to a buyer; returns the tx hash."""
        return str(_rpc("USDC transfer", lambda: self.chain.transfer_usdc(sender, to, raw)))


class SolanaView:
    """Reads SPL transfers through the Solana RPC; ``gateway`` does the JSON-RPC and the signing."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def check_transfer(self, signature: str, *, mint: str, payer: str, payee: str, raw: int) -> None:
        """The transaction moved exactly ``raw`` of ``mint`` from ``payer``'s to ``payee``'s token account.

        Raises:
            ApiError: ``PAYMENT_NOT_MINED`` (409), ``PAYMENT_TX_FAILED`` (402),
                ``PAYMENT_TRANSFER_NOT_FOUND`` (400), ``PAYMENT_RPC_ERROR`` (502).
        """
        tx = _rpc("getTransaction", lambda: self.gateway.get_transaction(signature))
        if tx is None:
            raise ApiError(409, "PAYMENT_NOT_MINED", f"transaction {signature} is not confirmed (yet)")
        meta = tx.get("meta") or {}
        if meta.get("err") is not None:
            raise ApiError(402, "PAYMENT_TX_FAILED", f"transaction {signature} failed on chain")
        deltas = _token_deltas(meta, mint)
        if deltas.get(payee, 0) != raw or deltas.get(payer, 0) != -raw:
            raise ApiError(
                400,
                "PAYMENT_TRANSFER_NOT_FOUND",
                "no SPL transfer of the expected mint, payer, payee and amount in this transaction",
                {
                    "transactionSignature": signature,
                    "mint": mint,
                    "payer": payer,
                    "payee": payee,
                    "rawAmount": str(raw),
                },
            )

    def send_back(self, sender: Any, to: str, raw: int) -> str:
        """Transfer ``raw`` of the mint from a provider keypair back to a buyer; returns the signature."""
        return str(_rpc("SPL transfer", lambda: self.gateway.transfer(sender, to, raw)))


def _token_deltas(meta: dict[str, Any], mint: str) -> dict[str, int]:
    """Owner → change of their ``mint`` balance, from pre/post token balances."""
    deltas: dict[str, int] = {}

    def add(entries: Any, sign: int) -> None:
        for entry in entries or []:
            if entry.get("mint") != mint or not entry.get("owner"):
                continue
            amount = int((entry.get("uiTokenAmount") or {}).get("amount", "0"))
            deltas[entry["owner"]] = deltas.get(entry["owner"], 0) + sign * amount

    add(meta.get("preTokenBalances"), -1)
    add(meta.get("postTokenBalances"), 1)
    return deltas
