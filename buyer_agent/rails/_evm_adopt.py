"""Adopting an EVM payment the operator already made (the pre-paid flow): read it back, never sign it.

The reference's fourth flow: "pass the transaction hash you already have and go straight to proof or
escrow-lock". The chain is the judge: the transaction is mined and succeeded at the chain's depth, it
was sent by the order's payer, and it moved exactly the agreed amount of the pinned token to the
payee (a direct transfer) or into the escrow for this very order (``Escrow.deposit(orderKey, payee,
token, amount)``). Anything else is refused naming the field. The adopted transaction is journaled
as the order's payment with its exact signed bytes (read from the node), so everything after it
(depth, reorgs, verification, proof, escrow lock and release) is the ordinary path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address

from buyer_agent._errors import PaymentMismatchError, RailError
from buyer_agent.rails._base import ESCROW_RAILS, PaymentRequest, SignedTx
from buyer_agent.rails._evm_abi import escrow_deposit_data, order_key, transfer_logs
from buyer_agent.rails._evm_rpc import EvmRpc, block_of, quantity, receipt_logs, succeeded

__all__ = ["adopt_payment"]

_DEPOSIT = escrow_deposit_data(b"\0" * 32, "0x" + "00" * 20, "0x" + "00" * 20, 0)[:4]


def _same(a: Any, b: Any) -> bool:
    return str(a).lower() == str(b).lower()


def _hex(value: Any) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return text if text.startswith("0x") else "0x" + text


async def adopt_payment(rpc: EvmRpc, request: PaymentRequest, tx_id: str, *, depth: int) -> list[SignedTx]:
    """``tx_id`` as the order's journaled payment, once the chain shows it pays ``request`` exactly.

    Raises:
        PaymentMismatchError: ``field`` names what differs (``transaction``, ``status``,
            ``confirmations``, ``payer``, ``token``, ``payee``, ``amount``, ``escrow_address``,
            ``order_key``).
    """
    tx = await rpc.call("eth_getTransactionByHash", [tx_id])
    receipt = await rpc.call("eth_getTransactionReceipt", [tx_id])
    if not isinstance(tx, Mapping) or not isinstance(receipt, Mapping):
        raise PaymentMismatchError("transaction", "a mined transaction", f"{tx_id} not found")
    if not succeeded(receipt):
        raise PaymentMismatchError("status", "succeeded", "reverted")
    head = quantity(await rpc.call("eth_blockNumber"), "eth_blockNumber")
    have = head - block_of(receipt) + 1
    if have < depth:
        raise PaymentMismatchError("confirmations", f"at least {depth}", have)
    sender = str(tx["from"])
    if not _same(sender, request.payer):
        raise PaymentMismatchError("payer", request.payer, sender)
    escrow = request.rail_type in ESCROW_RAILS
    to = str(request.escrow_address) if escrow else request.payee
    if escrow:
        _check_deposit(request, tx)
    moved = [t for t in transfer_logs(receipt_logs(receipt)) if _same(t.sender, sender)]
    if not any(_same(t.token, request.token) for t in moved):
        raise PaymentMismatchError("token", request.token, sorted({t.token for t in moved}) or None)
    paid = sum(t.amount for t in moved if _same(t.token, request.token) and _same(t.to, to))
    if paid == 0:
        others = sorted({t.to for t in moved if _same(t.token, request.token)})
        raise PaymentMismatchError("escrow_address" if escrow else "payee", to, others)
    if paid != request.amount.amount:
        raise PaymentMismatchError("amount", request.amount.amount, paid)
    signed = await rpc.call("eth_getRawTransactionByHash", [tx_id])
    if not isinstance(signed, str) or not signed.startswith("0x"):
        raise RailError(f"the node does not serve the signed bytes of {tx_id} (eth_getRawTransactionByHash)")
    purpose = "escrow_deposit" if escrow else "transfer"
    data = _hex(tx.get("input") or tx.get("data") or b"")
    return [
        SignedTx(
            chain=request.chain,
            tx_id=_hex(tx["hash"]),
            raw=bytes.fromhex(signed[2:]),
            purpose=purpose,
            meta={
                "nonce": quantity(tx.get("nonce"), "a transaction's nonce"),
                "from": to_checksum_address(sender),
                "to": to_checksum_address(str(tx["to"])),
                "purpose": purpose,
                "gas": quantity(tx.get("gas"), "a transaction's gas"),
                "max_fee_per_gas": quantity(
                    tx.get("maxFeePerGas") or tx.get("gasPrice") or "0x0", "a transaction's fee"
                ),
                "data": data,
                "adopted": True,
            },
        )
    ]


def _check_deposit(request: PaymentRequest, tx: Mapping[str, Any]) -> None:
    """The transaction is ``Escrow.deposit`` of this order, payee, token and amount."""
    if not request.escrow_address or not _same(tx.get("to"), request.escrow_address):
        raise PaymentMismatchError("escrow_address", request.escrow_address, tx.get("to"))
    data = bytes.fromhex(_hex(tx.get("input") or tx.get("data") or b"")[2:])
    if data[:4] != _DEPOSIT:
        raise PaymentMismatchError("transaction", "Escrow.deposit", "another call")
    key, payee, token, amount = decode(["bytes32", "address", "address", "uint256"], data[4:])
    for field, want, got in (
        ("order_key", "0x" + order_key(request.order_id).hex(), "0x" + bytes(key).hex()),
        ("payee", request.payee, payee),
        ("token", request.token, token),
    ):
        if not _same(want, got):
            raise PaymentMismatchError(field, want, got)
    if int(amount) != request.amount.amount:
        raise PaymentMismatchError("amount", request.amount.amount, int(amount))
