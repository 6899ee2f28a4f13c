"""The few ABI pieces the EVM rail needs: ERC-20 and Escrow calls, Transfer logs, revert reasons."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

__all__ = [
    "TRANSFER_TOPIC",
    "TransferLog",
    "approve_data",
    "balance_of_data",
    "decode_revert",
    "escrow_deposit_data",
    "escrow_release_data",
    "order_key",
    "transfer_data",
    "transfer_logs",
]


@functools.cache
def _selector(signature: str) -> bytes:
    # Hashed once per signature: keccak here costs more than the rest of the encoding.
    return bytes(keccak(text=signature))[:4]


TRANSFER_TOPIC = "0x" + bytes(keccak(text="Transfer(address,address,uint256)")).hex()
_ERROR = _selector("Error(string)")
_PANIC = _selector("Panic(uint256)")


def order_key(order_id: str) -> bytes:
    """The escrow's key for an order: ``keccak256(utf8(order_id))`` (the sandbox contract's rule)."""
    return bytes(keccak(text=order_id))


def transfer_data(to: str, amount: int) -> bytes:
    """Calldata of ERC-20 ``transfer(to, amount)``."""
    return _selector("transfer(address,uint256)") + encode(["address", "uint256"], [to, amount])


def balance_of_data(owner: str) -> bytes:
    """Calldata of ERC-20 ``balanceOf(owner)``."""
    return _selector("balanceOf(address)") + encode(["address"], [owner])


def approve_data(spender: str, amount: int) -> bytes:
    """Calldata of ERC-20 ``approve(spender, amount)``."""
    return _selector("approve(address,uint256)") + encode(["address", "uint256"], [spender, amount])


def escrow_deposit_data(key: bytes, payee: str, token: str, amount: int) -> bytes:
    """Calldata of ``Escrow.deposit(orderKey, payee, token, amount)``."""
    return _selector("deposit(bytes32,address,address,uint256)") + encode(
        ["bytes32", "address", "address", "uint256"], [key, payee, token, amount]
    )


def escrow_release_data(key: bytes) -> bytes:
    """Calldata of ``Escrow.release(orderKey)``."""
    return _selector("release(bytes32)") + encode(["bytes32"], [key])


def decode_revert(data: bytes) -> str | None:
    """The reason in revert data: ``Error(string)``, ``Panic(uint256)``, or a custom error's selector."""
    if len(data) < 4:
        return None
    head, body = data[:4], data[4:]
    try:
        if head == _ERROR:
            return str(decode(["string"], body)[0])
        if head == _PANIC:
            return f"panic 0x{int(decode(['uint256'], body)[0]):02x}"
    except Exception:  # malformed revert data: report the selector rather than fail the report
        pass
    return f"custom error 0x{head.hex()}"


@dataclass(frozen=True, slots=True)
class TransferLog:
    """One ERC-20 ``Transfer`` event: ``token`` moved ``amount`` base units from ``sender`` to ``to``."""

    token: str
    sender: str
    to: str
    amount: int


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


def _topic_address(topic: Any) -> str:
    return "0x" + _hex(topic).lower().removeprefix("0x")[-40:]


def transfer_logs(logs: Sequence[Mapping[str, Any]]) -> list[TransferLog]:
    """The ERC-20 ``Transfer`` events in a receipt's logs (addresses lower-cased)."""
    found = []
    for log in logs:
        topics = [_hex(t).lower() for t in log.get("topics") or ()]
        if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
            continue
        data = _hex(log.get("data") or "0x").removeprefix("0x")
        found.append(
            TransferLog(
                token=_hex(log["address"]).lower(),
                sender=_topic_address(topics[1]),
                to=_topic_address(topics[2]),
                amount=int(data, 16) if data else 0,
            )
        )
    return found
