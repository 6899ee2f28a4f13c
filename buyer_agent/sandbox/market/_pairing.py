"""Agent pairing: EIP-191 challenges with a server nonce, HS256 session tokens bound to the policy hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from buyer_agent._redact import Secret
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._wire import dumps, iso, parse_iso

__all__ = [
    "SessionClaims",
    "agent_did_for",
    "challenge_message",
    "checked_address",
    "decode_token",
    "issue_token",
    "new_challenge",
    "policy_hash",
    "recover_signer",
    "verify_proof",
]


def agent_did_for(address: str, chain_id: int = 1) -> str:
    """``did:pkh:eip155:<chain>:<checksummed address>``."""
    return f"did:pkh:eip155:{chain_id}:{Web3.to_checksum_address(address)}"


def checked_address(value: str, field: str) -> str:
    """A checksummed EVM address, or ``VALIDATION_ERROR`` naming ``field``."""
    if not Web3.is_address(value):
        raise invalid(field, "not an EVM address")
    return Web3.to_checksum_address(value)


def challenge_message(
    *, machine_id: str, identity_ref: str, agent: str, provider: str, role: str, nonce: str, expires_at: str
) -> str:
    """The exact text the agent signs (EIP-191 personal_sign); it carries a fresh server nonce."""
    return (
        "peaqOS Machine Markets sandbox: agent pairing\n"
        f"Machine: {machine_id} ({identity_ref})\n"
        f"Agent: {agent}\n"
        f"Provider: {provider}\n"
        f"Role: {role}\n"
        f"Nonce: {nonce}\n"
        f"Expires: {expires_at}"
    )


def recover_signer(message: str, signature: str) -> str | None:
    """The checksummed address that signed ``message`` (EIP-191), or None for a malformed signature."""
    try:
        signer: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:
        # Any decoding failure of a caller's signature is simply "not a valid proof".
        return None
    return signer


def policy_hash(policy: dict[str, Any]) -> str:
    """``0x`` sha256 of the policy's canonical JSON (sorted keys)."""
    canonical = json.dumps(json.loads(dumps(policy)), sort_keys=True, separators=(",", ":"))
    return "0x" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """The claims of a pairing session token."""

    machine_id: str
    pairing_id: str
    session_id: str
    agent_address: str
    agent_did: str
    delegation_policy_hash: str
    iat: int
    exp: int


def issue_token(secret: Secret, claims: SessionClaims) -> str:
    """An HS256 JWT carrying ``claims`` (keys in camelCase, plus ``iat``/``exp``)."""
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "machineId": claims.machine_id,
        "pairingId": claims.pairing_id,
        "sessionId": claims.session_id,
        "agentAddress": claims.agent_address,
        "agentDid": claims.agent_did,
        "delegationPolicyHash": claims.delegation_policy_hash,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": secrets.token_hex(8),
    }
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    mac = hmac.new(secret.reveal().encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def decode_token(secret: Secret, token: str, now_ts: int) -> SessionClaims:
    """Verify a token's signature and expiry and return its claims.

    Raises:
        ApiError: ``AGENT_AUTH_INVALID`` (bad format or signature) or ``AGENT_AUTH_EXPIRED`` (401).
    """
    bad = ApiError(401, "AGENT_AUTH_INVALID", "pairing token is invalid")
    parts = token.split(".")
    if len(parts) != 3:
        raise bad
    signing_input = (parts[0] + "." + parts[1]).encode("ascii", "replace")
    expected = hmac.new(secret.reveal().encode(), signing_input, hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            raise bad
        header = json.loads(_unb64(parts[0]))
        payload = json.loads(_unb64(parts[1]))
        claims = SessionClaims(
            machine_id=str(payload["machineId"]),
            pairing_id=str(payload["pairingId"]),
            session_id=str(payload["sessionId"]),
            agent_address=str(payload["agentAddress"]),
            agent_did=str(payload["agentDid"]),
            delegation_policy_hash=str(payload["delegationPolicyHash"]),
            iat=int(payload["iat"]),
            exp=int(payload["exp"]),
        )
    except ApiError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise bad from exc
    if header.get("alg") != "HS256":
        raise bad
    if claims.exp <= now_ts:
        raise ApiError(401, "AGENT_AUTH_EXPIRED", "pairing token expired; rotate the session")
    return claims


def new_challenge(
    *,
    challenge_id: str,
    machine_id: str,
    identity_ref: str,
    agent: str,
    agent_did: str,
    provider: str,
    role: str,
    created: datetime,
    ttl_s: float,
) -> dict[str, Any]:
    """A stored challenge record (the wire ``AgentPairingChallenge`` plus bookkeeping)."""
    expires_at = iso(created + timedelta(seconds=ttl_s))
    message = challenge_message(
        machine_id=machine_id,
        identity_ref=identity_ref,
        agent=agent,
        provider=provider,
        role=role,
        nonce=secrets.token_hex(16),
        expires_at=expires_at,
    )
    return {
        "challengeId": challenge_id,
        "machineId": machine_id,
        "machineIdentityRef": identity_ref,
        "agentAddress": agent,
        "agentDid": agent_did,
        "agentProvider": provider,
        "agentRole": role,
        "message": message,
        "expiresAt": expires_at,
        "verificationMethod": "eip191",
        "used": False,
    }


def verify_proof(challenge: dict[str, Any] | None, signature: str, agent: str, moment: datetime) -> None:
    """Check an agent proof against its challenge; marks nothing (the caller consumes the challenge).

    Raises:
        ApiError: ``AGENT_PAIRING_PROOF_INVALID`` (unknown or used challenge, other agent, bad
            signature) or ``AGENT_PAIRING_PROOF_EXPIRED``.
    """
    if challenge is None or challenge.get("used"):
        raise ApiError(401, "AGENT_PAIRING_PROOF_INVALID", "unknown or already used pairing challenge")
    if challenge["agentAddress"].lower() != agent.lower():
        raise ApiError(401, "AGENT_PAIRING_PROOF_INVALID", "the challenge was issued to another agent")
    if parse_iso(challenge["expiresAt"]) <= moment:
        raise ApiError(401, "AGENT_PAIRING_PROOF_EXPIRED", "pairing challenge expired; request a new one")
    signer = recover_signer(challenge["message"], signature)
    if signer is None or signer.lower() != agent.lower():
        raise ApiError(401, "AGENT_PAIRING_PROOF_INVALID", "signature does not recover to agentAddress")
