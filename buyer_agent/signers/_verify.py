"""Checking what a signer outside the process answered: the bytes are what was asked, by the right key.

A remote signer is trusted to hold the key, not to sign the right thing: a signed transaction whose
fields differ from the request (another payee, another nonce, another chain) or whose sender is not
the expected address is refused before it can be journaled or broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from buyer_agent._errors import SignerError
from buyer_agent.signers._protocol import EvmTransaction, SignedEvmTransaction

__all__ = ["checked_message_signature", "checked_transaction", "checked_typed_signature"]


def _same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def checked_transaction(tx: EvmTransaction, raw: bytes, address: str) -> SignedEvmTransaction:
    """``raw`` as a :class:`SignedEvmTransaction` if it is ``tx`` signed by ``address``.

    Raises:
        SignerError: the bytes do not decode, differ from ``tx`` in any field, or were signed by
            another key.
    """
    try:
        decoded = TypedTransaction.from_bytes(HexBytes(raw))
        fields = decoded.as_dict()
        sender = str(Account.recover_transaction(raw))
    except Exception as exc:
        raise SignerError(f"the signer returned bytes that are not a signed transaction: {exc}") from exc
    if decoded.transaction_type != 2:
        raise SignerError(f"the signer returned a type {decoded.transaction_type} transaction, not type 2")
    wanted = tx.to_eth_account()
    got: dict[str, Any] = {
        "chainId": int(fields["chainId"]),
        "nonce": int(fields["nonce"]),
        "to": "0x" + bytes(fields["to"]).hex(),
        "value": int(fields["value"]),
        "data": bytes(fields["data"]),
        "gas": int(fields["gas"]),
        "maxFeePerGas": int(fields["maxFeePerGas"]),
        "maxPriorityFeePerGas": int(fields["maxPriorityFeePerGas"]),
    }
    for name, value in got.items():
        expected = wanted[name]
        same = _same_address(value, expected) if name == "to" else value == expected
        if not same:
            raise SignerError(
                f"the signer signed a different transaction: {name} is {value!r}, not {expected!r}; "
                "it is not used"
            )
    if fields.get("accessList"):
        raise SignerError("the signer added an access list to the transaction; it is not used")
    if not _same_address(sender, address):
        raise SignerError(f"the transaction was signed by {sender}, not by {address}; it is not used")
    return SignedEvmTransaction(raw=bytes(raw), tx_hash="0x" + keccak(bytes(raw)).hex())


def _recovered(message: SignableMessage, signature: bytes) -> str:
    try:
        return str(Account.recover_message(message, signature=signature))
    except Exception as exc:
        raise SignerError(f"the signer returned a signature that does not recover: {exc}") from exc


def checked_message_signature(message: bytes, signature: bytes, address: str) -> bytes:
    """``signature`` if it is ``address``'s EIP-191 signature of ``message``.

    Raises:
        SignerError: it is not (wrong key, wrong message, malformed).
    """
    signer = _recovered(encode_defunct(primitive=message), signature)
    if not _same_address(signer, address):
        raise SignerError(f"the message was signed by {signer}, not by {address}")
    return signature


def checked_typed_signature(typed_data: Mapping[str, Any], signature: bytes, address: str) -> bytes:
    """``signature`` if it is ``address``'s EIP-712 signature of ``typed_data``.

    Raises:
        SignerError: it is not (wrong key, wrong data, malformed).
    """
    signer = _recovered(encode_typed_data(full_message=dict(typed_data)), signature)
    if not _same_address(signer, address):
        raise SignerError(f"the typed data was signed by {signer}, not by {address}")
    return signature
