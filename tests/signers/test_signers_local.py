"""Keys in this process: what LocalEvmSigner / LocalSolanaSigner sign, and how their answers are checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils.crypto import keccak
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from buyer_agent import SignerError
from buyer_agent._redact import Secret
from buyer_agent.signers import (
    EvmSigner,
    EvmTransaction,
    LocalEvmSigner,
    LocalSolanaSigner,
    SolanaSigner,
    as_evm_signer,
)
from buyer_agent.signers._verify import (
    checked_message_signature,
    checked_transaction,
    checked_typed_signature,
)

T = TypeVar("T")
KEY = "0x" + "4c" * 32
OTHER = "0x" + "5d" * 32
TX = EvmTransaction(
    chain_id=31337,
    nonce=7,
    to="0x000000000000000000000000000000000000dEaD",
    gas=120_000,
    max_fee_per_gas=2 * 10**9,
    max_priority_fee_per_gas=10**9,
    data=bytes.fromhex("a9059cbb") + b"\x00" * 64,
)
TYPED: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
        "Order": [{"name": "id", "type": "string"}, {"name": "amount", "type": "uint256"}],
    },
    "primaryType": "Order",
    "domain": {"name": "buyer_agent", "chainId": 31337},
    "message": {"id": "ord_1", "amount": 2_500_000},
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_the_local_evm_signer_signs_all_three_kinds_and_never_shows_its_key() -> None:
    signer = LocalEvmSigner(Secret(KEY))
    address = Account.from_key(KEY).address
    assert isinstance(signer, EvmSigner) and signer.address == address
    assert KEY[2:] not in repr(signer) and "[secure]" in repr(signer)

    signed = run(signer.sign_transaction(TX))
    assert signed.tx_hash == "0x" + keccak(signed.raw).hex()
    assert Account.recover_transaction(signed.raw) == address
    assert checked_transaction(TX, signed.raw, address) == signed

    message = b"peaq pairing challenge 42"
    sig = run(signer.sign_message(message))
    assert Account.recover_message(encode_defunct(primitive=message), signature=sig) == address
    typed = run(signer.sign_typed_data(TYPED))
    assert Account.recover_message(encode_typed_data(full_message=TYPED), signature=typed) == address
    assert checked_typed_signature(TYPED, typed, address) == typed
    assert as_evm_signer(KEY).address == address and as_evm_signer(signer) is signer


def test_a_bad_evm_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SignerError) as caught:
        LocalEvmSigner("0x1234deadbeef")
    assert "1234deadbeef" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_signed_bytes_that_differ_from_the_request_or_come_from_another_key_are_refused() -> None:
    address = Account.from_key(KEY).address
    mine = LocalEvmSigner(KEY)
    elsewhere = replace(TX, to="0x000000000000000000000000000000000000bEEF")
    with pytest.raises(SignerError, match="different transaction: to"):
        checked_transaction(TX, run(mine.sign_transaction(elsewhere)).raw, address)
    bumped = replace(TX, nonce=TX.nonce + 1)
    with pytest.raises(SignerError, match="different transaction: nonce"):
        checked_transaction(TX, run(mine.sign_transaction(bumped)).raw, address)
    other = run(LocalEvmSigner(OTHER).sign_transaction(TX))
    with pytest.raises(SignerError, match="signed by"):
        checked_transaction(TX, other.raw, address)
    with pytest.raises(SignerError, match="not a signed transaction"):
        checked_transaction(TX, b"\x02garbage", address)
    foreign = run(LocalEvmSigner(OTHER).sign_message(b"hello"))
    with pytest.raises(SignerError, match="signed by"):
        checked_message_signature(b"hello", foreign, address)
    with pytest.raises(SignerError, match="signed by"):
        checked_message_signature(b"hell0", run(mine.sign_message(b"hello")), address)


def test_rpc_transaction_objects_round_trip_as_hex_quantities() -> None:
    obj = TX.to_rpc("0xabc")
    assert obj["from"] == "0xabc" and obj["nonce"] == "0x7" and obj["chainId"] == hex(31337)
    assert obj["gas"] == hex(120_000) and obj["value"] == "0x0" and obj["data"].startswith("0xa9059cbb")
    assert EvmTransaction.from_rpc(obj) == TX
    with pytest.raises(ValueError, match="nonce"):
        EvmTransaction.from_rpc({k: v for k, v in obj.items() if k != "nonce"})
    with pytest.raises(ValueError, match="hex quantity"):
        EvmTransaction.from_rpc({**obj, "gas": 120000})


def test_the_local_solana_signer_signs_messages_its_public_key_verifies() -> None:
    keypair = Keypair()
    for secret in (str(keypair), json.dumps(list(bytes(keypair)))):
        signer = LocalSolanaSigner(Secret(secret))
        assert isinstance(signer, SolanaSigner) and signer.public_key == str(keypair.pubkey())
        assert secret not in repr(signer) and "[secure]" in repr(signer)
        sig = Signature.from_bytes(run(signer.sign_solana_message(b"a message")))
        assert sig.verify(Pubkey.from_string(signer.public_key), b"a message")
    with pytest.raises(SignerError) as caught:
        LocalSolanaSigner("not-a-key")
    assert "not-a-key" not in str(caught.value)
