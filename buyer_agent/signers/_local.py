"""Keys held in this process: an EVM key signed with eth-account, a Solana keypair with solders.

The key is kept as a :class:`~buyer_agent._redact.Secret` and only revealed inside the signing call;
reprs print ``[secure]`` and no error message ever carries the key's value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from solders.keypair import Keypair

from buyer_agent._errors import SignerError
from buyer_agent._redact import REDACTED, Secret
from buyer_agent.signers._protocol import EvmSigner, EvmTransaction, SignedEvmTransaction, SolanaSigner

__all__ = ["LocalEvmSigner", "LocalSolanaSigner", "as_evm_signer", "as_solana_signer"]


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


class LocalEvmSigner:
    """An EVM private key (hex) in this process.

    Raises:
        SignerError: the key is not a valid 32-byte hex key (its value is never shown).
    """

    __slots__ = ("__account", "_address")

    def __init__(self, private_key: str | Secret) -> None:
        try:
            account: LocalAccount = Account.from_key(_secret(private_key).reveal())
        except Exception:  # the message (and its cause) could echo the key: say nothing about its value
            raise SignerError("the EVM private key is not a valid 32-byte hex key") from None
        # Built once: deriving the account (public key, checksummed address) again for every signature
        # was a quarter of its time. Name-mangled and slotted, it shows in no repr, vars() or error.
        self.__account = account
        self._address = str(account.address)

    def _account(self) -> LocalAccount:
        return self.__account

    def __repr__(self) -> str:
        return f"LocalEvmSigner(address={self._address!r}, key={REDACTED})"

    @property
    def address(self) -> str:
        """The key's checksummed address."""
        return self._address

    async def sign_transaction(self, tx: EvmTransaction) -> SignedEvmTransaction:
        """Sign ``tx`` with the key."""
        out = self._account().sign_transaction(tx.to_eth_account())
        return SignedEvmTransaction(raw=bytes(out.raw_transaction), tx_hash=out.hash.to_0x_hex())

    async def sign_message(self, message: bytes) -> bytes:
        """EIP-191 (version ``E``, ``personal_sign``) over the message bytes."""
        signed = self._account().sign_message(encode_defunct(primitive=message))
        return bytes(signed.signature)

    async def sign_typed_data(self, typed_data: Mapping[str, Any]) -> bytes:
        """EIP-712 over the full typed-data message."""
        signed = self._account().sign_message(encode_typed_data(full_message=dict(typed_data)))
        return bytes(signed.signature)

    async def aclose(self) -> None:
        """Nothing to release."""


def _keypair(secret: Secret) -> Keypair:
    """A keypair from a base58 64-byte secret or a JSON array of 64 ints; the value never shows in errors."""
    text = secret.reveal().strip()
    try:
        if text.startswith("["):
            numbers = json.loads(text, parse_float=Decimal)
            if not isinstance(numbers, list) or not all(isinstance(n, int) for n in numbers):
                raise ValueError("not a list of ints")
            return Keypair.from_bytes(bytes(numbers))
        return Keypair.from_base58_string(text)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # solders raises a pyo3 PanicException (a BaseException) on bad bytes
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise SignerError(
            "the Solana secret key is not a base58 64-byte keypair or a JSON array of 64 ints"
        ) from None


class LocalSolanaSigner:
    """A Solana keypair in this process: base58 of the 64 bytes, or a JSON array of 64 ints.

    Raises:
        SignerError: the secret is not a keypair (its value is never shown).
    """

    def __init__(self, secret_key: str | Secret) -> None:
        self._secret = _secret(secret_key)
        self._public_key = str(_keypair(self._secret).pubkey())

    def __repr__(self) -> str:
        return f"LocalSolanaSigner(public_key={self._public_key!r}, key={REDACTED})"

    @property
    def public_key(self) -> str:
        """The public key, base58."""
        return self._public_key

    async def sign_solana_message(self, message: bytes) -> bytes:
        """The ed25519 signature of the serialized message."""
        return bytes(_keypair(self._secret).sign_message(message))

    async def aclose(self) -> None:
        """Nothing to release."""


def as_evm_signer(value: EvmSigner | str | Secret) -> EvmSigner:
    """``value`` itself when it is a signer, else a :class:`LocalEvmSigner` over the key it holds."""
    if isinstance(value, str | Secret):
        return LocalEvmSigner(value)
    return value


def as_solana_signer(value: SolanaSigner | str | Secret) -> SolanaSigner:
    """``value`` itself when it is a signer, else a :class:`LocalSolanaSigner` over the key it holds."""
    if isinstance(value, str | Secret):
        return LocalSolanaSigner(value)
    return value
