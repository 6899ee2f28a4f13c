"""Signed exports: the agent's own EVM wallet signs each exported order's head hash (EIP-191).

The hash chain proves an export is consistent, not who wrote it: anyone can edit an event and
recompute every hash after it. The signature binds the order id and its last event's hash to the
agent's key, so an edited, re-hashed export no longer verifies against the agent's address.

The expected signer is the address the journal itself records for the agent: the EVM payer of the
order's payment (``pay`` request ``payer``, the payment intent's or proof's ``payer_address``). An
order with no EVM payer recorded (a Solana payment, an order that never paid) is checked against
``--signer ADDRESS`` when given; otherwise the signature is reported as valid but unpinned.

The key never enters the export: only the address, the signed message and the signature do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buyer_agent._redact import Secret

__all__ = [
    "SCHEME",
    "SignatureCheck",
    "check_signature",
    "expected_signer",
    "head_message",
    "sign_head",
    "signing_key",
]

#: The ``signature.scheme`` of a signed export's header.
SCHEME = "eip191"
_EVM_KEY_ENV = "BUYER_AGENT_EVM_KEY"


def head_message(order_id: str, head_hash: str) -> str:
    """The text signed (EIP-191 ``personal_sign``) for an order whose last event hashes to ``head_hash``."""
    return f"buyer-agent journal {order_id} head {head_hash}"


def _address_of(key: Secret) -> str | None:
    from eth_account import Account

    try:
        return str(Account.from_key(key.reveal()).address)
    except (ValueError, TypeError):
        return None


def _evm_payer(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The EVM payer the journal records (the first one found), or None."""
    for ev in events:
        payload = ev.get("payload")
        if not isinstance(payload, Mapping):
            continue
        candidates: list[Any] = []
        request = payload.get("request")
        if ev.get("trigger") == "pay" and isinstance(request, Mapping):
            candidates.append(request.get("payer"))
        intent = payload.get("intent")
        if isinstance(intent, Mapping) and isinstance(intent.get("rail"), Mapping):
            candidates.append(intent["rail"].get("payer_address"))
        proof = payload.get("proof")
        if isinstance(proof, Mapping):
            candidates.append(proof.get("payer_address"))
        for value in candidates:
            if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
                return value
    return None


def expected_signer(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The address an export of these events must be signed by (None: the journal records none)."""
    return _evm_payer(events)


def signing_key(events: Sequence[Mapping[str, Any]], *, sandbox_order: bool) -> Secret | None:
    """The agent key to sign an export with: the one whose address the journal records.

    Candidates are ``$BUYER_AGENT_EVM_KEY`` and, for orders placed on a sandbox, the sandbox's demo
    key. With no EVM payer recorded, the environment's key (else the demo key of a sandbox order).
    None when no candidate fits: the export is then written unsigned.
    """
    keys: list[Secret] = []
    env = os.environ.get(_EVM_KEY_ENV, "").strip()
    if env:
        keys.append(Secret(env))
    if sandbox_order or not env:
        from buyer_agent.sandbox._sandbox import DEMO_EVM_KEY

        keys.append(Secret(DEMO_EVM_KEY))
    want = expected_signer(events)
    if want is None:
        return keys[0] if (env or sandbox_order) else None
    for key in keys:
        address = _address_of(key)
        if address is not None and address.lower() == want.lower():
            return key
    return None


def sign_head(key: Secret, order_id: str, head_hash: str) -> dict[str, str]:
    """The header's ``signature`` member: scheme, signer address, message and signature."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    message = head_message(order_id, head_hash)
    signed = Account.sign_message(encode_defunct(text=message), key.reveal())
    return {
        "scheme": SCHEME,
        "address": str(Account.from_key(key.reveal()).address),
        "message": message,
        "signature": signed.signature.to_0x_hex(),
    }


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What a file's signature says about its origin.

    ``status``: ``valid`` (signed by the address the journal records, or ``--signer``), ``unpinned``
    (a good signature, but no address to check it against), ``unsigned``, ``invalid`` (does not
    sign this order's head) or ``wrong_signer``.
    """

    status: str
    signer: str | None
    expected: str | None
    reason: str

    @property
    def ok(self) -> bool:
        """True unless the signature is bad (unsigned is judged by the caller)."""
        return self.status in ("valid", "unpinned", "unsigned")

    def to_json(self) -> dict[str, Any]:
        """``{"status", "signer", "expected", "reason"}``."""
        return {
            "status": self.status,
            "signer": self.signer,
            "expected": self.expected,
            "reason": self.reason,
        }


def check_signature(
    header: Mapping[str, Any],
    order_id: str,
    head_hash: str,
    events: Iterable[Mapping[str, Any]],
    *,
    signer: str | None = None,
) -> SignatureCheck:
    """Check ``header['signature']`` over the replayed head hash against the agent's address.

    Args:
        header: The export's header.
        order_id: The order.
        head_hash: The hash of the last event as replayed (not as the header claims).
        events: The order's events (where the agent's address is read from).
        signer: The address the caller expects (``--signer``); else the journal's EVM payer.
    """
    expected = signer or expected_signer(events)
    sig = header.get("signature")
    if sig is None:
        return SignatureCheck("unsigned", None, expected, "the export is not signed: its origin is unproven")
    if (
        not isinstance(sig, Mapping)
        or sig.get("scheme") != SCHEME
        or not isinstance(sig.get("signature"), str)
    ):
        return SignatureCheck("invalid", None, expected, f"the signature is not an {SCHEME} signature")
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        recovered = str(
            Account.recover_message(
                encode_defunct(text=head_message(order_id, head_hash)), signature=sig["signature"]
            )
        )
    except Exception:  # a malformed signature: eth-account raises several kinds
        return SignatureCheck("invalid", None, expected, "the signature cannot be read")
    claimed = sig.get("address")
    if isinstance(claimed, str) and claimed.lower() != recovered.lower():
        return SignatureCheck(
            "invalid",
            recovered,
            expected,
            f"the signature does not sign this journal's head hash by {claimed} (edited after signing?)",
        )
    if expected is None:
        return SignatureCheck(
            "unpinned",
            recovered,
            None,
            f"signed by {recovered}; the journal records no EVM payer to check it against (give --signer)",
        )
    if recovered.lower() != expected.lower():
        return SignatureCheck(
            "wrong_signer",
            recovered,
            expected,
            f"signed by {recovered}, not by the agent {expected} (edited after signing, or another key)",
        )
    return SignatureCheck("valid", recovered, expected, f"signed by the agent {recovered}")
