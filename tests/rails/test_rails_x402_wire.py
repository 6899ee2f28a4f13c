"""Our x402 signing against the oracles: the x402 package's decoder and EIP-712 hash, the official SDK's
output, and the sandbox's own offline check. Offline: no node, no market.

The signing is ours (typed data from the challenge, the agent's signer, our encoding); the package and
the SDK are dev dependencies used here only as judges.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from eth_account import Account

from buyer_agent.rails._x402 import _canonical_v
from buyer_agent.rails._x402_wire import (
    Authorization,
    ChallengeError,
    payment_reference,
    read_challenge,
    typed_data,
)
from buyer_agent.signers import LocalEvmSigner

KEY = "0x" + "42" * 32
PAYER = Account.from_key(KEY).address
NETWORK = "eip155:31337"
ASSET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PAY_TO = "0x70997970C51812dc3A732A7Fc9c48b32e1F5aDd0"
PRICE = 750_000


def metadata(**change: Any) -> dict[str, Any]:
    """An intent's ``rail.metadata`` with the sandbox's challenge (its own encoder, not ours)."""
    from buyer_agent.sandbox.market._x402 import Challenge as SandboxChallenge

    challenge = SandboxChallenge(
        NETWORK, ASSET, PAY_TO, PRICE, "http://127.0.0.1/api/v1/market/orders/o/execute"
    )
    doc = challenge.payment_required()
    doc["accepts"][0].update(change.pop("accepted", {}))
    doc.update(change)
    encoded = base64.b64encode(json.dumps(doc).encode()).decode()
    return {
        "tokenDecimals": 6,
        "rawAmount": str(PRICE),
        "x402Version": 2,
        "paymentRequest": {"paymentRequired": encoded},
    }


def sign(meta: dict[str, Any], valid_before: int, nonce: bytes = b"\x07" * 32) -> Authorization:
    challenge = read_challenge(meta, NETWORK)
    typed = typed_data(challenge.requirements, PAYER, valid_after=0, valid_before=valid_before, nonce=nonce)
    signature = asyncio.run(LocalEvmSigner(KEY).sign_typed_data(typed))
    return Authorization.make(
        challenge, PAYER, valid_after=0, valid_before=valid_before, nonce=nonce, signature=signature
    )


def decoded(header: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(header))
    return doc


def test_the_x402_package_decodes_our_header_and_its_eip712_hash_recovers_the_payer() -> None:
    pytest.importorskip("x402")
    from eth_keys import keys
    from x402.http.utils import decode_payment_signature_header
    from x402.mechanisms.evm.eip712 import hash_eip3009_authorization
    from x402.mechanisms.evm.types import ExactEIP3009Authorization

    now = int(datetime.now(UTC).timestamp())
    auth = sign(metadata(), now + 120)
    payload = decode_payment_signature_header(auth.header)
    assert payload.x402_version == 2 and payload.accepted.scheme == "exact"
    assert (payload.accepted.network, payload.accepted.asset, payload.accepted.pay_to) == (
        NETWORK,
        ASSET,
        PAY_TO,
    )
    assert payload.accepted.amount == str(PRICE) and payload.resource is not None
    inner = payload.payload["authorization"]
    digest = hash_eip3009_authorization(
        ExactEIP3009Authorization(
            from_address=inner["from"],
            to=inner["to"],
            value=inner["value"],
            valid_after=inner["validAfter"],
            valid_before=inner["validBefore"],
            nonce=inner["nonce"],
        ),
        31337,
        ASSET,
        "USD Coin",
        "2",
    )
    raw = bytes.fromhex(payload.payload["signature"][2:])
    signature = keys.Signature(raw[:64] + bytes([raw[64] - 27]))
    assert signature.recover_public_key_from_msg_hash(digest).to_checksum_address() == PAYER
    assert inner == {
        "from": PAYER,
        "to": PAY_TO,
        "value": str(PRICE),
        "validAfter": "0",
        "validBefore": str(now + 120),
        "nonce": "0x" + "07" * 32,
    }
    assert auth.reference == f"x402:{NETWORK}:{hashlib.sha256(auth.header.encode()).hexdigest()[:24]}"


def test_the_sandbox_market_accepts_our_authorization_offline() -> None:
    from buyer_agent.sandbox.market._x402 import Challenge as SandboxChallenge
    from buyer_agent.sandbox.market._x402 import check_authorization

    now = datetime.now(UTC)
    auth = sign(metadata(), int(now.timestamp()) + 60)
    challenge = SandboxChallenge(NETWORK, ASSET, PAY_TO, PRICE, "http://127.0.0.1/x")
    used = check_authorization(decoded(auth.header), challenge, PAYER, now)
    assert used.from_address == PAYER and used.value == PRICE and used.nonce == b"\x07" * 32


def test_our_payload_has_the_official_sdks_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("x402")
    from peaq_os_sdk.orchestration import sign_x402_payment
    from x402.mechanisms.evm import default_assets

    asset = {"asset": ASSET, "name": "USD Coin", "version": "2", "decimals": 6, "symbol": "USDC"}
    monkeypatch.setitem(default_assets.DEFAULT_ASSETS, NETWORK, [asset])
    meta = metadata()
    theirs = sign_x402_payment(meta, KEY)
    mine = sign(meta, int(datetime.now(UTC).timestamp()) + 300)
    a, b = decoded(theirs.payment_signature), decoded(mine.header)
    # The same document, key for key; only the random nonce, the signature and the moment differ.
    assert sorted(a) == sorted(b) and a["accepted"] == b["accepted"] and a["resource"] == b["resource"]
    assert sorted(a["payload"]) == sorted(b["payload"])
    ours, sdk = b["payload"]["authorization"], a["payload"]["authorization"]
    assert sorted(ours) == sorted(sdk)
    for key in ("from", "to", "value", "validAfter"):
        assert ours[key] == sdk[key], key
    assert abs(int(ours["validBefore"]) - int(sdk["validBefore"])) <= 5  # both now + maxTimeoutSeconds
    assert theirs.payment_reference == payment_reference(NETWORK, theirs.payment_signature)
    assert theirs.header_name == "PAYMENT-SIGNATURE"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"x402Version": 1}, "x402Version"),
        ({"accepted": {"network": "eip155:8453"}}, "accepts"),
        ({"accepted": {"scheme": "upto"}}, "accepts"),
        ({"accepted": {"extra": {}}}, "accepts[].extra"),
        ({"accepted": {"extra": {"name": "USD Coin", "version": "2", "assetTransferMethod": "permit2"}}},
         "accepts[].extra.assetTransferMethod"),
        ({"accepted": {"amount": "0.75"}}, "accepts[].amount"),
        ({"accepted": {"payTo": "somebody"}}, "accepts[].payTo"),
        ({"accepts": []}, "accepts"),
    ],
)  # fmt: skip
def test_a_challenge_that_cannot_be_paid_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ChallengeError) as refused:
        read_challenge(metadata(**change), NETWORK)
    assert refused.value.field == field


def test_a_missing_challenge_and_one_not_base64_are_refused() -> None:
    with pytest.raises(ChallengeError) as missing:
        read_challenge({"tokenDecimals": 6}, NETWORK)
    assert missing.value.field == "rail.metadata.paymentRequest"
    with pytest.raises(ChallengeError) as garbled:
        read_challenge({"paymentRequest": {"paymentRequired": "not base64!"}}, NETWORK)
    assert garbled.value.field == "rail.metadata.paymentRequest.paymentRequired"


def test_an_accepts_list_and_a_decoded_challenge_are_read_alike() -> None:
    encoded = metadata()["paymentRequest"]["paymentRequired"]
    doc = json.loads(base64.b64decode(encoded))
    a = read_challenge(metadata(), NETWORK).requirements
    assert read_challenge(doc, NETWORK).requirements == a
    assert read_challenge({"paymentRequired": doc}, NETWORK).requirements == a
    assert (a.amount, a.max_timeout_s, a.name, a.version, a.chain_id) == (PRICE, 300, "USD Coin", "2", 31337)


def test_the_journaled_authorization_round_trips_and_v_is_canonical() -> None:
    auth = sign(metadata(), 2_000_000_000)
    assert Authorization.from_json(json.loads(json.dumps(auth.to_json()))) == auth
    raw = bytes(range(64))
    assert _canonical_v(raw + b"\x00")[64] == 27 and _canonical_v(raw + b"\x01")[64] == 28
    assert _canonical_v(raw + b"\x1c")[64] == 28
