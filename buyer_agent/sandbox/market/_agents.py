"""Pairing endpoints: challenge, create, list, rotate (sessions), update (PATCH) and revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from web3 import Web3

from buyer_agent.sandbox.market._context import Answer, Call, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._paging import list_page
from buyer_agent.sandbox.market._pairing import (
    SessionClaims,
    agent_did_for,
    checked_address,
    issue_token,
    new_challenge,
    policy_hash,
    verify_proof,
)
from buyer_agent.sandbox.market._policy import parse_policy
from buyer_agent.sandbox.market._state import new_id
from buyer_agent.sandbox.market._wire import iso, not_found, opt_object, opt_str, req_str

__all__ = [
    "create_challenge",
    "create_pairing",
    "list_pairings",
    "public_pairing",
    "revoke_pairing",
    "rotate_session",
    "update_pairing",
]

_STATUSES = ("active", "paused", "revoked")


def public_pairing(pairing: dict[str, Any]) -> dict[str, Any]:
    """The wire ``AgentPairing`` (never the token itself)."""
    return {k: v for k, v in pairing.items() if not k.startswith("_")}


def _agent_did(body: dict[str, Any], agent: str) -> str:
    did = opt_str(body, "agentDid")
    if did is None:
        return agent_did_for(agent)
    parts = did.split(":")
    if len(parts) != 5 or parts[:3] != ["did", "pkh", "eip155"] or not parts[3].isdigit():
        raise invalid("agentDid", "must be did:pkh:eip155:<chainId>:<agentAddress>")
    if parts[4] != Web3.to_checksum_address(agent):
        raise invalid("agentDid", "address must be the checksummed agentAddress")
    return did


def create_challenge(ctx: MarketContext, call: Call) -> Answer:
    """``POST /machines/:machineId/agent-pairings/challenges``."""
    ctx.require_api_key(call)
    machine_id = ctx.check_machine(call.params["machineId"])
    agent = checked_address(req_str(call.body, "agentAddress"), "agentAddress")
    provider = req_str(call.body, "agentProvider")
    role = req_str(call.body, "agentRole")
    did = _agent_did(call.body, agent)
    challenge = new_challenge(
        challenge_id=new_id("apc"),
        machine_id=machine_id,
        identity_ref=ctx.settings.machine_identity_ref,
        agent=agent,
        agent_did=did,
        provider=provider,
        role=role,
        created=ctx.clock(),
        ttl_s=ctx.settings.challenge_ttl_s,
    )
    with ctx.store.transaction():
        ctx.store.put("challenges", challenge["challengeId"], challenge)
    return 200, {"item": {k: v for k, v in challenge.items() if k != "used"}}


def _proof(body: dict[str, Any]) -> tuple[str, str]:
    proof = body.get("agentProof")
    if proof is None:
        raise ApiError(401, "AGENT_PAIRING_PROOF_REQUIRED", "agentProof {challengeId, signature} is required")
    if not isinstance(proof, dict):
        raise invalid("agentProof", "must be an object")
    return req_str(proof, "challengeId", "agentProof."), req_str(proof, "signature", "agentProof.")


def _consume(ctx: MarketContext, challenge_id: str, signature: str, agent: str) -> dict[str, Any]:
    challenge = ctx.store.get("challenges", challenge_id)
    verify_proof(challenge, signature, agent, ctx.clock())
    assert challenge is not None
    challenge["used"] = True
    return challenge


def _new_session(ctx: MarketContext, pairing: dict[str, Any]) -> str:
    """Start a fresh session on ``pairing`` (old tokens die with the old session id); returns the token."""
    issued = ctx.clock()
    expires = issued + timedelta(seconds=ctx.settings.session_ttl_s)
    session_id = new_id("ses")
    claims = SessionClaims(
        machine_id=pairing["machineId"],
        pairing_id=pairing["id"],
        session_id=session_id,
        agent_address=pairing["agentAddress"],
        agent_did=pairing["agentDid"],
        delegation_policy_hash=policy_hash(pairing["delegationPolicy"]),
        iat=int(issued.timestamp()),
        exp=int(expires.timestamp()),
    )
    token = issue_token(ctx.jwt_secret, claims)
    pairing.update(
        hasAuthToken=True,
        tokenLastFour=token[-4:],
        sessionId=session_id,
        sessionTokenId=new_id("tok"),
        sessionIssuedAt=iso(issued),
        sessionExpiresAt=iso(expires),
        updatedAt=iso(issued),
    )
    return token


def create_pairing(ctx: MarketContext, call: Call) -> Answer:
    """``POST /machines/:machineId/agent-pairings`` (proof required; the token is returned once)."""
    ctx.require_api_key(call)
    machine_id = ctx.check_machine(call.params["machineId"])
    agent = checked_address(req_str(call.body, "agentAddress"), "agentAddress")
    provider = req_str(call.body, "agentProvider")
    role = req_str(call.body, "agentRole")
    description = opt_str(call.body, "description")
    did = _agent_did(call.body, agent)
    policy = parse_policy(opt_object(call.body, "delegationPolicy"))
    challenge_id, signature = _proof(call.body)
    with ctx.store.transaction():
        challenge = _consume(ctx, challenge_id, signature, agent)
        moment = iso(ctx.clock())
        pairing: dict[str, Any] = {
            "id": new_id("apr"),
            "machineId": machine_id,
            "status": "active",
            "agentAddress": agent,
            "agentDid": did,
            "agentProvider": provider,
            "agentRole": role,
            "description": description,
            "verification": {
                "method": "eip191",
                "signerAddress": agent,
                "verifiedAt": moment,
                "challengeExpiresAt": challenge["expiresAt"],
            },
            "delegationPolicy": policy,
            "createdAt": moment,
        }
        token = _new_session(ctx, pairing)
        ctx.store.put("pairings", pairing["id"], pairing)
        ctx.store.audit_event(
            "agent-pairing.created", "agent-pairing", pairing["id"], {"agentAddress": agent}
        )
    return 200, {"item": {**public_pairing(pairing), "pairingToken": token}}


def list_pairings(ctx: MarketContext, call: Call) -> Answer:
    """``GET /machines/:machineId/agent-pairings?limit&cursor``, oldest first."""
    ctx.require_api_key(call)
    machine_id = ctx.check_machine(call.params["machineId"])
    with ctx.store.lock:
        items = [
            (i, public_pairing(p))
            for i, p in enumerate(ctx.store.values("pairings"))
            if p["machineId"] == machine_id
        ]
    return 200, list_page(items, call.query)


def _pairing(ctx: MarketContext, call: Call) -> dict[str, Any]:
    ctx.check_machine(call.params["machineId"])
    pairing = ctx.store.get("pairings", call.params["pairingId"])
    if pairing is None:
        raise not_found("agent pairing", call.params["pairingId"])
    return pairing


def rotate_session(ctx: MarketContext, call: Call) -> Answer:
    """``POST …/agent-pairings/:pairingId/sessions``: a fresh proof gives a new token; the old one dies."""
    ctx.require_api_key(call)
    challenge_id, signature = _proof(call.body)
    with ctx.store.transaction():
        pairing = _pairing(ctx, call)
        if pairing["status"] != "active":
            raise ApiError(403, "AGENT_PAIRING_INACTIVE", f"pairing is {pairing['status']}")
        _consume(ctx, challenge_id, signature, pairing["agentAddress"])
        token = _new_session(ctx, pairing)
        ctx.store.audit_event("agent-pairing.session-rotated", "agent-pairing", pairing["id"], {})
    return 200, {"item": {**public_pairing(pairing), "pairingToken": token}}


def update_pairing(ctx: MarketContext, call: Call) -> Answer:
    """``PATCH …/agent-pairings/:pairingId``; a policy change invalidates the current token."""
    ctx.require_api_key(call)
    body = call.body
    status = opt_str(body, "status")
    if status is not None and status not in _STATUSES:
        raise invalid("status", f"must be one of {', '.join(_STATUSES)}")
    policy = parse_policy(opt_object(body, "delegationPolicy")) if "delegationPolicy" in body else None
    changes = {k: opt_str(body, k) for k in ("agentProvider", "agentRole", "description") if k in body}
    with ctx.store.transaction():
        pairing = _pairing(ctx, call)
        if pairing["status"] == "revoked":
            raise ApiError(403, "AGENT_PAIRING_INACTIVE", "pairing is revoked")
        pairing.update({k: v for k, v in changes.items() if v is not None})
        if status is not None:
            pairing["status"] = status
        if policy is not None:
            pairing["delegationPolicy"] = policy
        pairing["updatedAt"] = iso(ctx.clock())
        ctx.store.audit_event(
            "agent-pairing.updated", "agent-pairing", pairing["id"], {"fields": sorted(body)}
        )
    return 200, {"item": public_pairing(pairing)}


def revoke_pairing(ctx: MarketContext, call: Call) -> Answer:
    """``DELETE …/agent-pairings/:pairingId`` → 204; its tokens stop working."""
    ctx.require_api_key(call)
    with ctx.store.transaction():
        pairing = _pairing(ctx, call)
        pairing.update(status="revoked", hasAuthToken=False, sessionId=None, updatedAt=iso(ctx.clock()))
        ctx.store.audit_event("agent-pairing.revoked", "agent-pairing", pairing["id"], {})
    return 204, None
