"""Shared by the market client tests: canned wire answers, a MockTransport recorder and request views."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from buyer_agent.market import AsyncMarketClient, RetryPolicy

BASE = "https://market.example"
API_KEY = "pk-platform-key-7f3a9c"
TOKEN = "apt-pairing-token-4b8e2d"
MACHINE = "mach_01"
PAIRING = "pair_01"
ORDER = "ord_01"
SERVICE = "svc_01"
SEARCH = "srch_01"
NOW = "2026-11-23T00:00:00.000Z"
LATER = "2026-11-23T00:10:00.000Z"
MACHINE_DID = "did:peaq:123456789"

# --- canned answers, in wire spelling (camelCase), shaped as the reference documents them ----------

HANDOFF = {"label": "Provider console", "url": "https://provider.example/run", "notes": ["manual step"]}

RAIL_RECOMMENDATION = {
    "defaultRail": "wallet",
    "supportedRails": ["wallet", "escrow"],
    "required": True,
    "notes": ["pay before execute"],
    "chain": "base-sepolia",
    "token": "USDC",
    "tokenAddress": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    "walletAddress": "0x1111111111111111111111111111111111111111",
    "payeeAddress": "0x2222222222222222222222222222222222222222",
}

MACHINE_ITEM = {
    "id": MACHINE,
    "displayName": "Buyer robot",
    "status": "active",
    "ownerId": "owner_01",
    "machineType": "robot",
    "runtimeProfile": "edge",
    "capabilities": ["compute"],
    "labels": {"site": "lab"},
    "policyIds": ["pol_01"],
    "skillKeys": ["compute.hash"],
    "createdAt": NOW,
    "updatedAt": NOW,
    "identityRef": MACHINE_DID,
}

DELEGATION = {
    "allowedSkillKeys": ["compute.hash"],
    "deniedSkillKeys": [],
    "allowedServiceIds": [SERVICE],
    "deniedServiceIds": [],
    "perTransactionLimit": 2.5,
    "dailySpendLimit": 10.75,
    "currency": "USDC",
}

PAIRING_ITEM = {
    "id": PAIRING,
    "machineId": MACHINE,
    "agentAddress": "0x3333333333333333333333333333333333333333",
    "agentProvider": "buyer-agent",
    "agentRole": "buyer",
    "status": "active",
    "hasAuthToken": True,
    "delegationPolicy": DELEGATION,
    "createdAt": NOW,
    "updatedAt": NOW,
    "description": "test pairing",
    "tokenLastFour": "2d4e",
    "agentDid": "did:peaq:0x3333",
    "verification": {
        "method": "eip191",
        "signerAddress": "0x3333333333333333333333333333333333333333",
        "verifiedAt": NOW,
        "challengeExpiresAt": LATER,
    },
    "sessionId": "sess_01",
    "sessionTokenId": "stok_01",
    "sessionIssuedAt": NOW,
    "sessionExpiresAt": LATER,
}
# Create and session rotation hand the one-time token back.
PAIRING_WITH_TOKEN = {**PAIRING_ITEM, "pairingToken": "apt-fresh-token-from-market"}

CHALLENGE_ITEM = {
    "challengeId": "chal_01",
    "machineId": MACHINE,
    "machineIdentityRef": MACHINE_DID,
    "agentAddress": "0x3333333333333333333333333333333333333333",
    "agentDid": "did:peaq:0x3333",
    "agentProvider": "buyer-agent",
    "agentRole": "buyer",
    "message": "Sign to pair with mach_01: nonce 42",
    "expiresAt": LATER,
    "verificationMethod": "eip191",
}

SERVICE_ITEM = {
    "id": SERVICE,
    "skillKey": "compute.hash",
    "providerKey": "hasher",
    "providerId": "prov_01",
    "providerLabel": "Hasher Inc",
    "serviceType": "compute.marketplace",
    "name": "SHA-256 as a service",
    "description": "Hashes things",
    "operations": ["sha256"],
    "authType": "none",
    "accessMode": "public",
    "executionMode": "native",
    "integrationStatus": "native",
    "distribution": "peaq-native",
    "maturity": "beta",
    "kind": "runtime",
    "capabilities": ["hash"],
    "region": "eu-west",
    "freshnessSeconds": 60,
    "requiresHumanEnablement": False,
    "metadata": {"tier": "gold"},
    "updatedAt": NOW,
}

QUOTE = {
    "id": "quote_01",
    "serviceId": SERVICE,
    "skillKey": "compute.hash",
    "providerKey": "hasher",
    "executionMode": "native",
    "integrationStatus": "native",
    "operation": "sha256",
    "score": 0.875,
    "reasons": ["cheapest"],
    "pricing": {"mode": "fixed", "notes": ["per call"], "amount": 1.25, "currency": "USDC"},
    "payment": RAIL_RECOMMENDATION,
    "expiresAt": LATER,
}

SEARCH_ITEM = {
    "id": SEARCH,
    "machineId": MACHINE,
    "requestPayload": {"serviceType": "compute.marketplace"},
    "normalizedTask": {
        "serviceType": "compute.marketplace",
        "requiredCapabilities": ["hash"],
        "allowExternalHandoff": False,
        "requireNativeExecution": True,
        "operation": "sha256",
        "region": "eu-west",
    },
    "status": "completed",
    "quotes": [QUOTE],
    "createdAt": NOW,
    "agentPairingId": PAIRING,
}

ORDER_ITEM = {
    "id": ORDER,
    "machineId": MACHINE,
    "agentPairingId": PAIRING,
    "serviceId": SERVICE,
    "skillKey": "compute.hash",
    "providerKey": "hasher",
    "serviceType": "compute.marketplace",
    "operation": "sha256",
    "executionMode": "native",
    "integrationStatus": "native",
    "status": "payment_pending",
    "inputPayload": {"data": "hello"},
    "payment": RAIL_RECOMMENDATION,
    "createdAt": NOW,
    "updatedAt": NOW,
    "searchId": SEARCH,
    "quoteId": "quote_01",
    "budget": {"amount": 1.25, "currency": "USDC"},
}

PAYMENT_ITEM = {
    "id": "pay_01",
    "orderId": ORDER,
    "machineId": MACHINE,
    "status": "held",
    "rail": {
        "type": "wallet",
        "chain": "base-sepolia",
        "token": "USDC",
        "tokenAddress": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "payerAddress": "0x3333333333333333333333333333333333333333",
        "payeeAddress": "0x2222222222222222222222222222222222222222",
    },
    "notes": ["held until confirm"],
    "createdAt": NOW,
    "updatedAt": NOW,
    "amount": 1.25,
    "currency": "USDC",
    "proof": {
        "chain": "base-sepolia",
        "token": "USDC",
        "transactionHash": "0x" + "ab" * 32,
        "payerAddress": "0x3333333333333333333333333333333333333333",
        "verifiedAt": NOW,
        "verificationMode": "rpc",
    },
}

EXECUTE_200 = {
    "order": {**ORDER_ITEM, "status": "delivered"},
    "execution": {
        "statusCode": 200,
        "run": {
            "id": "run_01",
            "status": "completed",
            "executionMode": "native",
            "skillKey": "compute.hash",
            "serviceId": SERVICE,
            "outcomeId": "out_01",
        },
        "outcome": {
            "id": "out_01",
            "status": "completed",
            "skillKey": "compute.hash",
            "serviceId": SERVICE,
            "executionMode": "native",
            "result": {"digestHex": "2cf24dba", "Nested_Key": {"keepMe": 1}},
        },
    },
}

EXECUTE_202 = {
    "order": {**ORDER_ITEM, "status": "handoff_required", "executionMode": "external-handoff"},
    "execution": {"statusCode": 202, "handoff": HANDOFF},
}

CONFIRM = {"order": {**ORDER_ITEM, "status": "completed"}, "payment": {**PAYMENT_ITEM, "status": "released"}}

DISPUTE = {
    "order": {**ORDER_ITEM, "status": "disputed"},
    "payment": {**PAYMENT_ITEM, "status": "frozen"},
    "dispute": {
        "id": "disp_01",
        "orderId": ORDER,
        "machineId": MACHINE,
        "status": "open",
        "reason": "wrong digest",
        "evidence": {"expected": "abc"},
        "createdAt": NOW,
        "updatedAt": NOW,
    },
}

AUDIT_ITEM = {
    "id": "evt_01",
    "actor": "agent:pair_01",
    "type": "market.order.created",
    "resourceType": "market_order",
    "resourceId": ORDER,
    "payload": {"orderId": ORDER},
    "createdAt": NOW,
}


def item(value: Mapping[str, Any]) -> dict[str, Any]:
    """An ``{item}`` envelope holding a deep copy."""
    return {"item": copy.deepcopy(dict(value))}


def page(*values: Mapping[str, Any], next_cursor: str | None = None) -> dict[str, Any]:
    """A ``{items, nextCursor}`` envelope."""
    return {"items": [copy.deepcopy(dict(v)) for v in values], "nextCursor": next_cursor}


# --- what a request looked like, reduced to what both clients must agree on ------------------------


@dataclass(frozen=True)
class Sent:
    """One request as the market sees it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    api_key: str | None
    pairing_token: str | None
    body: Any
    headers: Mapping[str, str] = field(compare=False)


def parse_body(raw: bytes | None) -> Any:
    """A request body parsed with exact decimals (None for no body)."""
    return json.loads(raw, parse_float=Decimal) if raw else None


def sent_view(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Sent:
    """A request reduced to method, path, parsed query, auth headers and the parsed JSON body."""
    parts = urlsplit(url)
    lowered = {k.lower(): v for k, v in headers.items()}
    return Sent(
        method=method.upper(),
        path=parts.path,
        query=tuple(sorted(parse_qsl(parts.query, keep_blank_values=True))),
        api_key=lowered.get("x-api-key"),
        pairing_token=lowered.get("x-agent-pairing-token"),
        body=parse_body(body),
        headers=lowered,
    )


Answer = tuple[int, Any] | httpx.Response | Exception


class Market:
    """A ``httpx.MockTransport`` handler answering from a queue and recording every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        status, body = answer
        if body is None:
            return httpx.Response(status)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    @property
    def sent(self) -> list[Sent]:
        """Every recorded request as a :class:`Sent`."""
        return [sent_view(r.method, str(r.url), r.headers, r.content) for r in self.requests]


def client_for(
    market: Market | Callable[[httpx.Request], httpx.Response],
    *,
    api_key: str | None = API_KEY,
    retry: RetryPolicy | None = None,
) -> AsyncMarketClient:
    """Our client on a MockTransport (retries off unless a policy is given)."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(market))
    return AsyncMarketClient(BASE, api_key=api_key, http_client=http, retry=retry or RetryPolicy.none())


class Sleeps:
    """A ``RetryPolicy.sleep`` that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def retrying(sleeps: Sleeps, attempts: int = 4) -> RetryPolicy:
    """A retry policy that records its waits and never sleeps."""
    return RetryPolicy(attempts=attempts, sleep=sleeps)
