"""x402 (v2, scheme ``exact``, EVM) on the wire: the challenge read, the EIP-3009 typed data, the header.

Pure and offline. A payment intent on rail ``x402`` carries the provider's ``PAYMENT-REQUIRED``
challenge (base64 JSON, ``rail.metadata.paymentRequest.paymentRequired`` where the official client
reads it; a bare ``paymentRequired`` or an ``accepts`` list is read too). The buyer signs an EIP-3009
``TransferWithAuthorization`` under the token's EIP-712 domain (``extra.name`` / ``extra.version``),
and sends the base64 JSON payment payload ``{x402Version, resource, accepted, payload: {signature,
authorization}}`` as the ``PAYMENT-SIGNATURE`` value. Its reference is ``x402:<network>:<first 24
hex of sha256(header)>``, as the official client derives it. Shapes follow the public x402
specification and the official SDK (``peaq_os_sdk.orchestration.x402``), read, not copied.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HEADER_NAME",
    "MIN_VALIDITY_S",
    "SCHEME",
    "X402_VERSION",
    "Authorization",
    "Challenge",
    "ChallengeError",
    "Requirements",
    "challenge_text",
    "encode_header",
    "payment_reference",
    "read_challenge",
    "typed_data",
]

X402_VERSION = 2
SCHEME = "exact"
HEADER_NAME = "PAYMENT-SIGNATURE"
#: A facilitator refuses an authorization with less than this many seconds of validity left (the x402
#: reference facilitator's margin, so that its settlement can still be mined).
MIN_VALIDITY_S = 6
_EIP3009 = ("", "eip3009")
_TYPES: dict[str, list[dict[str, str]]] = {
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


class ChallengeError(ValueError):
    """The challenge cannot be paid as it stands: ``field`` names what is wrong (``accepted.amount``, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Requirements:
    """The ``accepts`` entry the buyer pays: what one x402 ``exact`` EVM payment must be.

    ``entry`` is the entry as the provider wrote it; the payment payload echoes it as ``accepted``.
    """

    network: str
    asset: str
    pay_to: str
    amount: int
    max_timeout_s: int
    name: str
    version: str
    entry: Mapping[str, Any] = field(repr=False)

    @property
    def chain_id(self) -> int:
        """The EVM chain id of :attr:`network` (``eip155:<id>``)."""
        return int(self.network.split(":", 1)[1])


@dataclass(frozen=True, slots=True)
class Challenge:
    """A decoded ``PAYMENT-REQUIRED`` challenge: the requirements paid and the resource they are for."""

    requirements: Requirements
    resource: Mapping[str, Any] | None
    x402_version: int


def _decode(text: str, where: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ChallengeError(where, "not base64 of a JSON PAYMENT-REQUIRED challenge") from exc
    if not isinstance(doc, Mapping):
        raise ChallengeError(where, "not base64 of a JSON object")
    return doc


def _first(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if mapping.get(name) is not None:
            return mapping[name]
    return None


def _document(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The challenge document in an intent's ``rail.metadata`` (the shapes the official client reads)."""
    request = _first(metadata, "paymentRequest", "payment_request")
    source = request if isinstance(request, Mapping) else metadata
    encoded = _first(source, "paymentRequired", "payment_required", "PAYMENT-REQUIRED")
    if isinstance(encoded, str):
        return _decode(encoded, "rail.metadata.paymentRequest.paymentRequired")
    if isinstance(encoded, Mapping):
        return encoded
    if isinstance(source.get("accepts"), list):
        return source
    raise ChallengeError("rail.metadata.paymentRequest", "the payment intent carries no x402 challenge")


def challenge_text(metadata: Mapping[str, Any]) -> str | None:
    """The x402 challenge in an intent's ``rail.metadata`` as base64 JSON (as sent, or encoded), or None.

    What the journal keeps of it; :func:`read_challenge` reads it back (``{"paymentRequired": text}``).
    """
    request = _first(metadata, "paymentRequest", "payment_request")
    source = request if isinstance(request, Mapping) else metadata
    encoded = _first(source, "paymentRequired", "payment_required", "PAYMENT-REQUIRED")
    if isinstance(encoded, str):
        return encoded
    if isinstance(encoded, Mapping):
        return encode_header(encoded)
    return encode_header(source) if isinstance(source.get("accepts"), list) else None


def _uint(value: Any, where: str) -> int:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) > 78:
        raise ChallengeError(where, f"must be a whole number of base units, not {value!r}")
    return int(text)


def read_challenge(metadata: Mapping[str, Any], network: str) -> Challenge:
    """The ``exact`` EVM requirements on ``network`` in an x402 intent's ``rail.metadata``.

    Raises:
        ChallengeError: no challenge, another version, no ``exact`` entry for ``network``, a field
            missing or malformed, or a transfer method other than EIP-3009.
    """
    doc = _document(metadata)
    version = doc.get("x402Version", X402_VERSION)
    if version != X402_VERSION:
        raise ChallengeError("x402Version", f"only x402 version {X402_VERSION} is paid, not {version!r}")
    accepts = doc.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        raise ChallengeError("accepts", "the challenge lists no payment requirements")
    entries = [e for e in accepts if isinstance(e, Mapping)]
    mine = [e for e in entries if e.get("scheme", SCHEME) == SCHEME and e.get("network") == network]
    if not mine:
        offered = sorted({f"{e.get('scheme')} on {e.get('network')}" for e in entries})
        raise ChallengeError(
            "accepts", f"no '{SCHEME}' requirements on {network} (offered: {', '.join(offered) or 'none'})"
        )
    entry = mine[0]
    where = "accepts[].{}".format
    for key in ("asset", "payTo"):
        if not isinstance(entry.get(key), str) or not str(entry[key]).startswith("0x"):
            raise ChallengeError(where(key), f"must be an EVM address, not {entry.get(key)!r}")
    amount = _uint(entry.get("amount", entry.get("maxAmountRequired")), where("amount"))
    timeout = _uint(entry.get("maxTimeoutSeconds", 0), where("maxTimeoutSeconds"))
    extra = entry.get("extra")
    if not isinstance(extra, Mapping) or not extra.get("name") or not extra.get("version"):
        raise ChallengeError(where("extra"), "must name the token's EIP-712 domain (name and version)")
    method = str(extra.get("assetTransferMethod") or "").lower()
    if method not in _EIP3009:
        raise ChallengeError(where("extra.assetTransferMethod"), f"only eip3009 is signed, not {method!r}")
    resource = doc.get("resource")
    return Challenge(
        requirements=Requirements(
            network=network,
            asset=str(entry["asset"]),
            pay_to=str(entry["payTo"]),
            amount=amount,
            max_timeout_s=timeout,
            name=str(extra["name"]),
            version=str(extra["version"]),
            entry=dict(entry),
        ),
        resource=dict(resource) if isinstance(resource, Mapping) else None,
        x402_version=X402_VERSION,
    )


def typed_data(
    req: Requirements, payer: str, *, valid_after: int, valid_before: int, nonce: bytes
) -> dict[str, Any]:
    """The EIP-712 ``TransferWithAuthorization`` to sign, JSON-safe (a remote signer takes it as is)."""
    return {
        "types": _TYPES,
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": req.name,
            "version": req.version,
            "chainId": req.chain_id,
            "verifyingContract": req.asset,
        },
        "message": {
            "from": payer,
            "to": req.pay_to,
            "value": req.amount,
            "validAfter": valid_after,
            "validBefore": valid_before,
            "nonce": "0x" + nonce.hex(),
        },
    }


def encode_header(payload: Mapping[str, Any]) -> str:
    """The ``PAYMENT-SIGNATURE`` value: base64 of the payload's compact JSON."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def payment_reference(network: str, header: str) -> str:
    """``x402:<network>:<first 24 hex of sha256(header)>``, the reference the official client derives."""
    return f"x402:{network}:{hashlib.sha256(header.encode('utf-8')).hexdigest()[:24]}"


@dataclass(frozen=True, slots=True)
class Authorization:
    """One signed EIP-3009 authorization and the header that carries it (journaled; holds no key).

    ``from_block`` is the chain's head when it was signed: its settlement cannot be in an earlier
    block, so the settlement is looked for from there.
    """

    network: str
    asset: str
    payer: str
    pay_to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: str
    signature: str
    header: str
    reference: str
    from_block: int = 0

    @classmethod
    def make(
        cls,
        challenge: Challenge,
        payer: str,
        *,
        valid_after: int,
        valid_before: int,
        nonce: bytes,
        signature: bytes,
        from_block: int = 0,
    ) -> Authorization:
        """The authorization, its payment payload and header from a signature over :func:`typed_data`."""
        req = challenge.requirements
        auth = {
            "from": payer,
            "to": req.pay_to,
            "value": str(req.amount),
            "validAfter": str(valid_after),
            "validBefore": str(valid_before),
            "nonce": "0x" + nonce.hex(),
        }
        payload: dict[str, Any] = {"x402Version": challenge.x402_version}
        if challenge.resource is not None:
            payload["resource"] = dict(challenge.resource)
        payload["accepted"] = dict(req.entry)
        payload["payload"] = {"signature": "0x" + signature.hex(), "authorization": auth}
        header = encode_header(payload)
        return cls(
            network=req.network,
            asset=req.asset,
            payer=payer,
            pay_to=req.pay_to,
            value=req.amount,
            valid_after=valid_after,
            valid_before=valid_before,
            nonce=auth["nonce"],
            signature=payload["payload"]["signature"],
            header=header,
            reference=payment_reference(req.network, header),
            from_block=from_block,
        )

    def to_json(self) -> dict[str, Any]:
        """The journaled form (base units and times as decimal text)."""
        return {
            "network": self.network,
            "asset": self.asset,
            "payer": self.payer,
            "pay_to": self.pay_to,
            "value": str(self.value),
            "valid_after": str(self.valid_after),
            "valid_before": str(self.valid_before),
            "nonce": self.nonce,
            "signature": self.signature,
            "header": self.header,
            "reference": self.reference,
            "from_block": self.from_block,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Authorization:
        """Inverse of :meth:`to_json`."""
        return cls(
            network=str(d["network"]),
            asset=str(d["asset"]),
            payer=str(d["payer"]),
            pay_to=str(d["pay_to"]),
            value=int(d["value"]),
            valid_after=int(d["valid_after"]),
            valid_before=int(d["valid_before"]),
            nonce=str(d["nonce"]),
            signature=str(d["signature"]),
            header=str(d["header"]),
            reference=str(d["reference"]),
            from_block=int(d.get("from_block") or 0),
        )
