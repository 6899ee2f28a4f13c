"""x402 (v2, scheme ``exact``, EVM) on the wire: an intent's challenge, and checking an authorization.

A payment intent on rail ``x402`` carries the provider's ``PAYMENT-REQUIRED`` challenge, base64 JSON,
in ``rail.metadata.paymentRequest.paymentRequired`` (where the official client reads it). The buyer
signs an EIP-3009 ``TransferWithAuthorization`` for it and sends the base64 payment payload (the
``PAYMENT-SIGNATURE`` header value) as ``payment.paymentSignature``. :func:`check_authorization`
decides whether that payload pays the challenge; refusals are ``PAYMENT_AUTHORIZATION_INVALID``
(402) with ``details.reason`` from the x402 specification's vocabulary.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from buyer_agent.sandbox.chains import Authorization
from buyer_agent.sandbox.market._errors import ApiError, invalid

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "HEADER_NAME",
    "MAX_TIMEOUT_S",
    "MIN_VALIDITY_S",
    "X402_VERSION",
    "Challenge",
    "check_authorization",
    "decode_payload",
    "payment_reference",
    "refused",
]

X402_VERSION = 2
SCHEME = "exact"
HEADER_NAME = "PAYMENT-SIGNATURE"
#: The EIP-712 domain of the sandbox's EIP-3009 USDC (``AuthorizedUsdc``), as USDC's own.
DOMAIN_NAME = "USD Coin"
DOMAIN_VERSION = "2"
#: ``maxTimeoutSeconds`` of every challenge: how long an authorization may stay valid.
MAX_TIMEOUT_S = 300
#: An authorization must stay valid at least this long when it is checked, so that its settlement
#: can still be mined (the x402 reference facilitator keeps the same margin).
MIN_VALIDITY_S = 6
#: Clock skew tolerated between the signer and the market on ``validBefore``'s upper bound.
SKEW_S = 30
_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_UINT = re.compile(r"^(0[xX][0-9a-fA-F]{1,64}|[0-9]{1,78})$")
_HEX32 = re.compile(r"^0[xX][0-9a-fA-F]{64}$")
_HEX65 = re.compile(r"^0[xX][0-9a-fA-F]{130}$")
_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ],
}


def refused(reason: str, message: str, field: str | None = None) -> ApiError:
    """``PAYMENT_AUTHORIZATION_INVALID`` (402); ``details``: the x402 ``reason`` and the ``field``."""
    details: dict[str, Any] = {"reason": reason}
    if field is not None:
        details["field"] = field
    return ApiError(402, "PAYMENT_AUTHORIZATION_INVALID", message, details)


@dataclass(frozen=True, slots=True)
class Challenge:
    """What one x402 payment must be: the ``accepts`` entry of the provider's challenge."""

    network: str  # CAIP-2, eip155:<chain id>
    asset: str
    pay_to: str
    amount: int
    resource: str

    @property
    def chain_id(self) -> int:
        """The EVM chain id of :attr:`network`."""
        return int(self.network.split(":", 1)[1])

    def requirements(self) -> dict[str, Any]:
        """The ``PaymentRequirements`` (an ``accepts`` entry), x402 wire spelling."""
        return {
            "scheme": SCHEME,
            "network": self.network,
            "amount": str(self.amount),
            "asset": self.asset,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": MAX_TIMEOUT_S,
            "extra": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION},
        }

    def payment_required(self) -> dict[str, Any]:
        """The whole ``PaymentRequired`` object."""
        return {
            "x402Version": X402_VERSION,
            "error": f"{HEADER_NAME} header is required",
            "resource": {
                "url": self.resource,
                "description": "sandbox market order execution",
                "mimeType": "application/json",
            },
            "accepts": [self.requirements()],
        }

    def metadata(self) -> dict[str, Any]:
        """What the intent's ``rail.metadata`` adds: the base64 ``PAYMENT-REQUIRED`` header value."""
        encoded = base64.b64encode(json.dumps(self.payment_required()).encode("utf-8")).decode("ascii")
        return {"x402Version": X402_VERSION, "paymentRequest": {"paymentRequired": encoded}}


def payment_reference(network: str, header: str) -> str:
    """``x402:<network>:<sha256(header)[:24]>``, the reference the official client derives."""
    return f"x402:{network}:{hashlib.sha256(header.encode('utf-8')).hexdigest()[:24]}"


def decode_payload(header: Any, field: str) -> dict[str, Any]:
    """The payment payload inside a ``PAYMENT-SIGNATURE`` value (base64 of JSON).

    Raises:
        ApiError: ``VALIDATION_ERROR`` naming ``field`` when it is not base64 JSON of an object.
    """
    if not isinstance(header, str) or not header.strip():
        raise invalid(field, "required non-empty string (the base64 PAYMENT-SIGNATURE value)")
    try:
        payload = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise invalid(field, "not base64 of a JSON x402 payment payload") from exc
    if not isinstance(payload, dict):
        raise invalid(field, "not base64 of a JSON x402 payment payload")
    return payload


def _uint(value: Any, field: str) -> int:
    # The x402 EVM encoding: decimal text, or 0x hex.
    if not isinstance(value, str) or not _UINT.match(value):
        raise refused("invalid_payload", f"{field} must be a decimal or 0x-hex integer string", field)
    return int(value, 16) if value[:2].lower() == "0x" else int(value)


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or not Web3.is_address(value):
        raise refused("invalid_payload", f"{field} must be an EVM address", field)
    return Web3.to_checksum_address(value)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def check_authorization(
    payload: Mapping[str, Any], challenge: Challenge, payer: str, now: datetime
) -> Authorization:
    """The authorization in ``payload`` if it pays ``challenge`` from ``payer`` and is valid at ``now``.

    Checked offline: the version and scheme, the accepted requirements (network, asset, payee,
    amount) against the challenge, the authorization's recipient, value and payer, the signature
    (EIP-712, recovering ``payer``; low ``s``, ``v`` 27 or 28 as the token requires) and the
    validity window (started, at least :data:`MIN_VALIDITY_S` left, at most the challenge's
    ``maxTimeoutSeconds`` ahead). The chain (nonce unused, balance) is the settlement's to check.

    Raises:
        ApiError: ``PAYMENT_AUTHORIZATION_INVALID`` (402) with the x402 ``reason``.
    """
    if payload.get("x402Version") != X402_VERSION:
        raise refused("invalid_x402_version", f"x402Version must be {X402_VERSION}", "x402Version")
    accepted = payload.get("accepted")
    if not isinstance(accepted, Mapping):
        raise refused("invalid_payload", "accepted (the payment requirements paid) is missing", "accepted")
    if accepted.get("scheme") != SCHEME:
        raise refused("unsupported_scheme", f"only the {SCHEME!r} scheme is accepted", "accepted.scheme")
    if accepted.get("network") != challenge.network:
        raise refused("network_mismatch", f"the payment is on {challenge.network}", "accepted.network")
    wanted = challenge.requirements()
    for key in ("asset", "payTo", "amount"):
        given = accepted.get(key)
        if not isinstance(given, str) or not _same(given, wanted[key]):
            raise refused(
                "invalid_payment_requirements", f"accepted.{key} is not the challenge's", f"accepted.{key}"
            )
    inner = payload.get("payload")
    auth = inner.get("authorization") if isinstance(inner, Mapping) else None
    if not isinstance(inner, Mapping) or not isinstance(auth, Mapping):
        raise refused("invalid_payload", "payload.authorization is missing", "payload.authorization")
    where = "payload.authorization."
    sender = _address(auth.get("from"), where + "from")
    to = _address(auth.get("to"), where + "to")
    value = _uint(auth.get("value"), where + "value")
    valid_after = _uint(auth.get("validAfter"), where + "validAfter")
    valid_before = _uint(auth.get("validBefore"), where + "validBefore")
    nonce_text = auth.get("nonce")
    if not isinstance(nonce_text, str) or not _HEX32.match(nonce_text):
        raise refused("invalid_payload", "nonce must be 32 bytes of 0x hex", where + "nonce")
    signature_text = inner.get("signature")
    if not isinstance(signature_text, str) or not _HEX65.match(signature_text):
        raise refused("invalid_payload", "signature must be 65 bytes of 0x hex", "payload.signature")
    if not _same(to, challenge.pay_to):
        raise refused(
            "invalid_exact_evm_payload_recipient_mismatch",
            "the authorization pays someone else",
            where + "to",
        )
    if value != challenge.amount:
        raise refused(
            "invalid_exact_evm_payload_authorization_value_mismatch",
            f"the authorization is for {value} base units, the price is {challenge.amount}",
            where + "value",
        )
    if not _same(sender, payer):
        raise refused(
            "invalid_exact_evm_payload_payer_mismatch",
            "the authorization is not from the payment intent's payer",
            where + "from",
        )
    nonce = bytes.fromhex(nonce_text[2:])
    signature = bytes.fromhex(signature_text[2:])
    message = {
        "from": sender,
        "to": to,
        "value": value,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    if signature[64] not in (27, 28) or int.from_bytes(signature[32:64], "big") > _HALF_ORDER:
        raise refused("invalid_exact_evm_payload_signature", "not a canonical signature", "payload.signature")
    if _recover(challenge, message, signature) != sender.lower():
        raise refused(
            "invalid_exact_evm_payload_signature",
            "the signature is not the payer's over this authorization",
            "payload.signature",
        )
    moment = int(now.timestamp())
    if valid_after >= moment:
        raise refused(
            "invalid_exact_evm_payload_authorization_valid_after",
            "the authorization is not valid yet",
            where + "validAfter",
        )
    if valid_before < moment + MIN_VALIDITY_S:
        raise refused(
            "invalid_exact_evm_payload_authorization_valid_before",
            f"the authorization expires in under {MIN_VALIDITY_S} s (or has expired)",
            where + "validBefore",
        )
    if valid_before > moment + MAX_TIMEOUT_S + SKEW_S:
        raise refused(
            "invalid_exact_evm_payload_authorization_valid_before",
            f"the authorization stays valid longer than maxTimeoutSeconds ({MAX_TIMEOUT_S} s)",
            where + "validBefore",
        )
    return Authorization(sender, to, value, valid_after, valid_before, nonce, signature)


def _recover(challenge: Challenge, message: dict[str, Any], signature: bytes) -> str:
    typed = {
        "types": _TYPES,
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": challenge.chain_id,
            "verifyingContract": Web3.to_checksum_address(challenge.asset),
        },
        "message": message,
    }
    try:
        return str(
            Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
        ).lower()
    except Exception:  # a signature eth-account cannot even parse recovers no one
        return ""
