"""What the agent asks of a key: the two signer protocols and the EVM transaction they sign.

Every signature the agent makes goes through one of these (the rails' payments, the nonce-gap
fillers, the pairing's EIP-191 challenge), so where the key lives is a choice of implementation: in
this process (:class:`~buyer_agent.signers.LocalEvmSigner`) or in another one reached over JSON-RPC
(:class:`~buyer_agent.signers.JsonRpcEvmSigner`, as Clef and Web3Signer speak it).

EVM and Solana keys are different keys, so there are two protocols; an object holding both may
implement both. The methods are async: a signer may be a network call away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["EvmSigner", "EvmTransaction", "SignedEvmTransaction", "SolanaSigner"]


def _quantity(value: int) -> str:
    return hex(value)


@dataclass(frozen=True, slots=True)
class EvmTransaction:
    """An EIP-1559 (type 2) transaction to sign; amounts in wei, ``data`` the call data."""

    chain_id: int
    nonce: int
    to: str
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    data: bytes = b""
    value: int = 0

    def to_eth_account(self) -> dict[str, Any]:
        """The dict eth-account's ``sign_transaction`` takes."""
        return {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self.nonce,
            "to": self.to,
            "value": self.value,
            "data": self.data,
            "gas": self.gas,
            "maxFeePerGas": self.max_fee_per_gas,
            "maxPriorityFeePerGas": self.max_priority_fee_per_gas,
        }

    def to_rpc(self, sender: str) -> dict[str, str]:
        """The ``eth_signTransaction`` transaction object: hex quantities, ``from`` the signer's address."""
        return {
            "from": sender,
            "to": self.to,
            "gas": _quantity(self.gas),
            "maxFeePerGas": _quantity(self.max_fee_per_gas),
            "maxPriorityFeePerGas": _quantity(self.max_priority_fee_per_gas),
            "value": _quantity(self.value),
            "nonce": _quantity(self.nonce),
            "chainId": _quantity(self.chain_id),
            "data": "0x" + self.data.hex(),
        }

    @classmethod
    def from_rpc(cls, obj: Mapping[str, Any]) -> EvmTransaction:
        """Parse an ``eth_signTransaction`` transaction object (``data`` or ``input``; hex quantities).

        Raises:
            ValueError: a field is missing or not a hex quantity / hex data.
        """

        def quantity(name: str, default: int | None = None) -> int:
            raw = obj.get(name)
            if raw is None:
                if default is None:
                    raise ValueError(f"{name} is required")
                return default
            text = str(raw)
            if not text.startswith("0x"):
                raise ValueError(f"{name} must be a 0x hex quantity")
            return int(text, 16)

        data = str(obj.get("data") or obj.get("input") or "0x")
        if not data.startswith("0x"):
            raise ValueError("data must be 0x hex")
        if not obj.get("to"):
            raise ValueError("to is required (contract creation is not signed)")
        return cls(
            chain_id=quantity("chainId"),
            nonce=quantity("nonce"),
            to=str(obj["to"]),
            gas=quantity("gas"),
            max_fee_per_gas=quantity("maxFeePerGas"),
            max_priority_fee_per_gas=quantity("maxPriorityFeePerGas", 0),
            data=bytes.fromhex(data[2:]),
            value=quantity("value", 0),
        )


@dataclass(frozen=True, slots=True)
class SignedEvmTransaction:
    """The signed bytes (what ``eth_sendRawTransaction`` takes) and their 0x transaction hash."""

    raw: bytes
    tx_hash: str


@runtime_checkable
class EvmSigner(Protocol):
    """Holds one EVM key (somewhere) and signs with it."""

    @property
    def address(self) -> str:
        """The key's checksummed address."""
        ...

    async def sign_transaction(self, tx: EvmTransaction) -> SignedEvmTransaction:
        """Sign ``tx`` from :attr:`address`."""
        ...

    async def sign_message(self, message: bytes) -> bytes:
        """An EIP-191 ``personal_sign`` signature (65 bytes) over ``message``."""
        ...

    async def sign_typed_data(self, typed_data: Mapping[str, Any]) -> bytes:
        """An EIP-712 signature (65 bytes) over the full message.

        ``typed_data`` holds ``types``, ``domain``, ``primaryType`` and ``message``.
        """
        ...

    async def aclose(self) -> None:
        """Release connections (a local key has none)."""
        ...


@runtime_checkable
class SolanaSigner(Protocol):
    """Holds one Solana (ed25519) key (somewhere) and signs with it."""

    @property
    def public_key(self) -> str:
        """The key's public key, base58."""
        ...

    async def sign_solana_message(self, message: bytes) -> bytes:
        """The 64-byte ed25519 signature of a serialized Solana transaction message."""
        ...

    async def aclose(self) -> None:
        """Release connections (a local key has none)."""
        ...
