"""Sealing a value with a key only the agent's own signer can make: AES-GCM under a signature's hash.

The workers of one agent hold (or reach) the same EVM signer, and an ECDSA signature of a fixed
message is deterministic (RFC 6979, which eth-account and libsecp256k1 follow), so each of them
derives the same 256-bit key from it without the key ever being stored or sent. Whoever can read the
store but not sign as the agent cannot open what is sealed; whoever can sign as the agent could pair
as it anyway.
"""

from __future__ import annotations

import base64
import hashlib
import os

from Crypto.Cipher import AES

from buyer_agent._redact import Secret
from buyer_agent.signers import EvmSigner

__all__ = ["Sealer"]

_VERSION = b"\x01"
_PURPOSE = b"buyer_agent: derive the key that seals this agent's shared pairing session (v1)\n"


class Sealer:
    """Seals and opens short texts with a key derived from one agent's signature.

    Build it with :meth:`for_signer`. The key stays in this object (never shown in its repr).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Sealer([secure])"

    @classmethod
    async def for_signer(cls, signer: EvmSigner, context: str) -> Sealer:
        """The sealer of ``signer`` for ``context`` (the market and machine the sealed values belong to)."""
        signature = await signer.sign_message(_PURPOSE + context.encode("utf-8"))
        return cls(hashlib.sha256(b"buyer_agent seal v1" + bytes(signature)).digest())

    def seal(self, value: Secret, bound_to: str) -> str:
        """``value`` sealed (base64 text); ``bound_to`` must be given again to open it."""
        nonce = os.urandom(12)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(bound_to.encode("utf-8"))
        body, tag = cipher.encrypt_and_digest(value.reveal().encode("utf-8"))
        return base64.b64encode(_VERSION + nonce + tag + body).decode("ascii")

    def open(self, sealed: str, bound_to: str) -> Secret | None:
        """The value :meth:`seal` sealed; None when it does not open (another key or binding, damage)."""
        try:
            raw = base64.b64decode(sealed.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) < 29 or raw[:1] != _VERSION:
            return None
        nonce, tag, body = raw[1:13], raw[13:29], raw[29:]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(bound_to.encode("utf-8"))
        try:
            return Secret(cipher.decrypt_and_verify(body, tag).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
