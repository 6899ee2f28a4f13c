"""The doctor's checks, in order: task file, keys, RPCs, gas, token balance, market, pairing, policy, clock.

Everything is read-only: the doctor signs nothing, pairs nothing and places no order. Keys are shown
only as the addresses they derive; a secret never reaches a line of the report.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from buyer_agent._errors import TaskFileError
from buyer_agent._money import Money, _plain
from buyer_agent._redact import Secret
from buyer_agent.doctor._report import Check, Status
from buyer_agent.doctor._rpc import RpcFailure, call, erc20_balance, spl_balance
from buyer_agent.networks import NETWORKS_ENV, NetworkProfile, Networks, agent_networks
from buyer_agent.task import Task, load_task

__all__ = ["diagnose"]

_ENV = {
    "market": "PEAQOS_ORCHESTRATION_URL",
    "api_key": "PEAQOS_API_KEY",
    "machine_id": "PEAQOS_MACHINE_ID",
    "evm_key": "BUYER_AGENT_EVM_KEY",
    "solana_key": "BUYER_AGENT_SOLANA_KEY",
    "evm_rpc": "BUYER_AGENT_EVM_RPC",
    "solana_rpc": "BUYER_AGENT_SOLANA_RPC",
    "pairing_id": "PEAQOS_AGENT_PAIRING_ID",
    "pairing_token": "PEAQOS_AGENT_PAIRING_TOKEN",
}
# Gas a payment may use: an ERC-20 transfer (~50-65k), or approve + escrow deposit; with headroom.
_GAS_TRANSFER = 120_000
_GAS_ESCROW = 300_000
# Lamports: two signatures' fees, and the rent of the payee's token account the payment may create.
_SOL_FEES = 10_000
_SOL_TOKEN_ACCOUNT_RENT = 2_039_280
_CLOCK_WARN_S = 5.0
_TIMEOUT = 10.0


@dataclass
class _Setup:
    """What the run would use: the task's settings, the environment filling the gaps."""

    task: Task | None
    networks: Networks
    market: str | None = None
    api_key: Secret | None = None
    machine_id: str | None = None
    evm_key: Secret | None = None
    solana_key: Secret | None = None
    evm_rpc: str | None = None
    solana_rpc: str | None = None
    pairing_id: str | None = None
    pairing_token: Secret | None = None
    evm_address: str | None = None
    solana_address: str | None = None
    chains: dict[str, str] = field(default_factory=dict)
    date_skew_s: float | None = None
    pairing_policy: Mapping[str, Any] | None = None

    @property
    def budget(self) -> Money | None:
        return self.task.spec.budget if self.task is not None else None

    @property
    def want_chain(self) -> str | None:
        return self.task.spec.chain if self.task is not None else None

    def wants(self, family: str) -> bool:
        """True when the task may pay on this family (``evm`` or ``solana``)."""
        chain = self.want_chain
        if chain is None:
            return True
        prefix = "eip155:" if family == "evm" else "solana:"
        return chain == family or chain.startswith(prefix)


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(_ENV[name]) or "").strip()
    return value or None


def _secret(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value) if value else None


def diagnose(task_path: str | None, *, env: Mapping[str, str] | None = None) -> list[Check]:
    """Run every check in order; each is PASS, WARN or FAIL with one line on how to fix it."""
    environ = os.environ if env is None else env
    checks: list[Check] = []
    task: Task | None = None
    if task_path is None:
        checks.append(
            Check(
                "task",
                Status.WARN,
                "no task file: checking the environment only (budget and policy not compared)",
                "python -m buyer_agent doctor TASK.yaml",
            )
        )
    else:
        try:
            task = load_task(task_path, env=environ)
        except TaskFileError as exc:
            checks.append(Check("task", Status.FAIL, str(exc), "correct that field (README: 'Task file')"))
            return checks
        spec = task.spec
        checks.append(
            Check(
                "task",
                Status.PASS,
                f"{task_path}: {spec.service_type}, budget {spec.budget}",
            )
        )
    try:
        networks = agent_networks(list(task.networks) if task else None, env=environ)
    except TaskFileError as exc:
        checks.append(Check("networks", Status.FAIL, str(exc), f"correct the file ${NETWORKS_ENV} names"))
        return checks
    setup = _setup(task, networks, environ)
    if setup.market is None:
        checks.append(
            Check(
                "market",
                Status.WARN,
                "no market configured: a run uses the embedded sandbox (local chains, demo keys)",
                "set market: in the task or PEAQOS_ORCHESTRATION_URL to go live",
            )
        )
        return checks
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as client:
        checks += _keys(setup)
        checks += _rpcs(setup, client)
        checks += _gas(setup, client)
        checks += _tokens(setup, client)
        market_checks = _market(setup, client)
        checks += market_checks
        reachable = bool(market_checks) and market_checks[0].status is not Status.FAIL
        if reachable:
            checks += _pairing(setup, client)
        checks += _policy(setup)
        if reachable:
            checks += _clock(setup)
    return checks


def _setup(task: Task | None, networks: Networks, env: Mapping[str, str]) -> _Setup:
    t = task
    return _Setup(
        task=task,
        networks=networks,
        market=(_env(env, "market") or (t.market if t else None)),
        api_key=(t.api_key if t and t.api_key else None) or _secret(_env(env, "api_key")),
        machine_id=(t.machine_id if t and t.machine_id else None) or _env(env, "machine_id"),
        evm_key=(t.evm_key if t and t.evm_key else None) or _secret(_env(env, "evm_key")),
        solana_key=(t.solana_key if t and t.solana_key else None) or _secret(_env(env, "solana_key")),
        evm_rpc=(t.evm_rpc if t and t.evm_rpc else None) or _env(env, "evm_rpc"),
        solana_rpc=(t.solana_rpc if t and t.solana_rpc else None) or _env(env, "solana_rpc"),
        pairing_id=_env(env, "pairing_id"),
        pairing_token=_secret(_env(env, "pairing_token")),
    )


# --- keys --------------------------------------------------------------------------------------------


def _keys(s: _Setup) -> list[Check]:
    out: list[Check] = []
    if s.evm_key is not None:
        try:
            from eth_account import Account

            s.evm_address = str(Account.from_key(s.evm_key.reveal()).address)
            out.append(Check("key evm", Status.PASS, f"EVM key present: address {s.evm_address}"))
        except Exception:
            out.append(
                Check(
                    "key evm",
                    Status.FAIL,
                    "the EVM key is not a valid private key",
                    "set BUYER_AGENT_EVM_KEY (or keys.evm) to the agent's 0x-hex private key",
                )
            )
    if s.solana_key is not None:
        try:
            from solders.keypair import Keypair

            s.solana_address = str(Keypair.from_base58_string(s.solana_key.reveal()).pubkey())
            out.append(Check("key solana", Status.PASS, f"Solana key present: address {s.solana_address}"))
        except Exception:
            out.append(
                Check(
                    "key solana",
                    Status.FAIL,
                    "the Solana key is not a valid base58 keypair",
                    "set BUYER_AGENT_SOLANA_KEY (or keys.solana) to the 64-byte keypair in base58",
                )
            )
    if s.evm_key is None and s.solana_key is None:
        out.append(
            Check(
                "keys",
                Status.FAIL,
                "no payment key: neither an EVM nor a Solana key is set",
                "set BUYER_AGENT_EVM_KEY (or BUYER_AGENT_SOLANA_KEY), referenced from keys: in the task",
            )
        )
    return out


# --- RPCs --------------------------------------------------------------------------------------------


def _label(networks: Networks, chain: str) -> str:
    profile = networks.get(chain)
    return f"{chain} ({profile.name})" if profile is not None else chain


def _rpcs(s: _Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    for family, url, address in (
        ("evm", s.evm_rpc, s.evm_address),
        ("solana", s.solana_rpc, s.solana_address),
    ):
        name = f"rpc {family}"
        env_name = _ENV[f"{family}_rpc"]
        if address is None or not s.wants(family):
            continue
        if url is None:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"a {family} key is set but no {family} RPC",
                    f"set rpc.{family} or {env_name}",
                )
            )
            continue
        try:
            if family == "evm":
                chain = f"eip155:{int(str(call(client, url, 'eth_chainId')), 16)}"
            else:
                chain = f"solana:{str(call(client, url, 'getGenesisHash'))[:32]}"
        except (RpcFailure, ValueError) as exc:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"cannot reach the RPC at {url}: {exc}",
                    f"check rpc.{family} / {env_name}, or the node",
                )
            )
            continue
        want = s.want_chain
        if want is not None and want not in ("evm", "solana") and want != chain:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"the RPC at {url} is on {_label(s.networks, chain)}, "
                    f"the task pays on {_label(s.networks, want)}",
                    f"point rpc.{family} / {env_name} at a node of {want}, or change payment.chain",
                )
            )
            continue
        s.chains[family] = chain
        profile = s.networks.get(chain)
        if profile is None:
            out.append(
                Check(
                    name,
                    Status.WARN,
                    f"{chain} at {url}: no network profile (token contracts pinned only by payment.tokens)",
                    f"add a profile for {chain} to the file ${NETWORKS_ENV} names, or networks: in the task",
                )
            )
        else:
            out.append(Check(name, Status.PASS, f"{_label(s.networks, chain)} at {url}"))
    return out


# --- gas ---------------------------------------------------------------------------------------------


def _human(raw: int, decimals: int) -> str:
    return format(Decimal(raw).scaleb(-decimals).normalize(), "f")


def _gas(s: _Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    rail = s.task.spec.rail if s.task is not None else None
    evm_chain = s.chains.get("evm")
    if evm_chain is not None and s.evm_rpc and s.evm_address:
        profile = s.networks.get(evm_chain)
        symbol, decimals = (
            (profile.native.symbol, profile.native.decimals) if profile and profile.native else ("ETH", 18)
        )
        try:
            balance = int(str(call(client, s.evm_rpc, "eth_getBalance", [s.evm_address, "latest"])), 16)
            price = int(str(call(client, s.evm_rpc, "eth_gasPrice")), 16)
        except (RpcFailure, ValueError) as exc:
            out.append(
                Check("gas evm", Status.FAIL, f"cannot read the gas balance: {exc}", "check the EVM RPC")
            )
        else:
            need = price * (_GAS_ESCROW if rail == "onchain-escrow" else _GAS_TRANSFER)
            have = f"{_human(balance, decimals)} {symbol} at {s.evm_address}"
            if balance < need:
                out.append(
                    Check(
                        "gas evm",
                        Status.FAIL,
                        f"{have}; a payment needs about {_human(need, decimals)} {symbol} of gas",
                        f"send {symbol} to {s.evm_address} on {evm_chain}",
                    )
                )
            else:
                out.append(
                    Check("gas evm", Status.PASS, f"{have} (a payment needs about {_human(need, decimals)})")
                )
    sol_chain = s.chains.get("solana")
    if sol_chain is not None and s.solana_rpc and s.solana_address:
        try:
            result = call(client, s.solana_rpc, "getBalance", [s.solana_address])
            lamports = int(result["value"] if isinstance(result, dict) else result)
        except (RpcFailure, ValueError, KeyError, TypeError) as exc:
            out.append(
                Check(
                    "gas solana", Status.FAIL, f"cannot read the SOL balance: {exc}", "check the Solana RPC"
                )
            )
        else:
            have = f"{_human(lamports, 9)} SOL at {s.solana_address}"
            fix = f"send SOL to {s.solana_address} on {sol_chain}"
            if lamports < _SOL_FEES:
                out.append(Check("gas solana", Status.FAIL, f"{have}: not enough for the fees", fix))
            elif lamports < _SOL_FEES + _SOL_TOKEN_ACCOUNT_RENT:
                out.append(
                    Check(
                        "gas solana",
                        Status.WARN,
                        f"{have}: enough for fees, not for a payee's new token account",
                        fix,
                    )
                )
            else:
                out.append(Check("gas solana", Status.PASS, have))
    return out


# --- token balance -------------------------------------------------------------------------------------


def _token_for(s: _Setup, chain: str, symbol: str) -> tuple[str, int] | None:
    allow = s.task.spec.tokens if s.task is not None else {}
    profile: NetworkProfile | None = s.networks.get(chain)
    known = profile.token(symbol) if profile is not None else None
    for sym, address in allow.items():
        if sym.upper() == symbol.upper():
            return address, known.decimals if known is not None else (s.budget.decimals if s.budget else 6)
    return (known.address, known.decimals) if known is not None else None


def _tokens(s: _Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    symbol = s.budget.currency if s.budget is not None else "USDC"
    for family, url, address in (
        ("evm", s.evm_rpc, s.evm_address),
        ("solana", s.solana_rpc, s.solana_address),
    ):
        chain = s.chains.get(family)
        if chain is None or url is None or address is None:
            continue
        name = f"token {family}"
        token = _token_for(s, chain, symbol)
        if token is None:
            out.append(
                Check(
                    name,
                    Status.WARN,
                    f"no {symbol} contract known on {chain}: balance not checked; a payment there is refused",
                    f"name it in payment.tokens ({{{symbol}: '<address>'}}) or in a network profile",
                )
            )
            continue
        contract, decimals = token
        try:
            raw = (
                erc20_balance(client, url, contract, address)
                if family == "evm"
                else spl_balance(client, url, contract, address)
            )
        except (RpcFailure, ValueError) as exc:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"cannot read the {symbol} balance: {exc}",
                    f"check {contract} on {chain}",
                )
            )
            continue
        have = f"{_human(raw, decimals)} {symbol} ({contract}) at {address}"
        budget = s.budget
        if budget is None:
            out.append(Check(name, Status.PASS, have))
        elif raw * 10**budget.decimals < budget.amount * 10**decimals:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"{have}, below the budget {budget}",
                    f"send {symbol} to {address} on {chain}, or lower the budget",
                )
            )
        else:
            out.append(Check(name, Status.PASS, f"{have} covers the budget {budget}"))
    return out


# --- market ------------------------------------------------------------------------------------------


def _api(s: _Setup, path: str) -> str:
    return f"{str(s.market).rstrip('/')}/api/v1{path}"


def _market(s: _Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    sent = time.time()
    try:
        resp = client.get(_api(s, "/health"))
    except httpx.HTTPError as exc:
        return [
            Check(
                "market",
                Status.FAIL,
                f"cannot reach the market at {s.market}: {type(exc).__name__}",
                "check market: in the task / PEAQOS_ORCHESTRATION_URL, or the network",
            )
        ]
    received = time.time()
    date = resp.headers.get("date")
    if date:
        try:
            theirs = parsedate_to_datetime(date).timestamp()
            s.date_skew_s = (sent + received) / 2 - theirs
        except (TypeError, ValueError):
            s.date_skew_s = None
    if resp.status_code >= 500:
        return [
            Check(
                "market",
                Status.FAIL,
                f"the market at {s.market} answers HTTP {resp.status_code}",
                "try again later, or check the URL",
            )
        ]
    out.append(Check("market", Status.PASS, f"{s.market} reachable (HTTP {resp.status_code})"))
    if s.api_key is None:
        if s.pairing_token is None:
            out.append(
                Check(
                    "auth",
                    Status.FAIL,
                    "no platform key and no pairing token",
                    "set PEAQOS_API_KEY (or PEAQOS_AGENT_PAIRING_ID and PEAQOS_AGENT_PAIRING_TOKEN)",
                )
            )
        return out
    if not s.machine_id:
        out.append(
            Check("auth", Status.FAIL, "no machine id", "set PEAQOS_MACHINE_ID (or machine_id: in the task)")
        )
        return out
    try:
        resp = client.get(_api(s, f"/machines/{s.machine_id}"), headers={"x-api-key": s.api_key.reveal()})
    except httpx.HTTPError as exc:
        out.append(
            Check("auth", Status.FAIL, f"the market stopped answering: {type(exc).__name__}", "try again")
        )
        return out
    if resp.status_code in (401, 403):
        out.append(
            Check(
                "auth",
                Status.FAIL,
                f"the platform key was refused (HTTP {resp.status_code})",
                "check PEAQOS_API_KEY",
            )
        )
    elif resp.status_code == 404:
        out.append(
            Check(
                "auth",
                Status.FAIL,
                f"machine {s.machine_id} is unknown to the market",
                "check PEAQOS_MACHINE_ID",
            )
        )
    elif resp.status_code >= 400:
        out.append(
            Check(
                "auth",
                Status.FAIL,
                f"reading machine {s.machine_id} failed: HTTP {resp.status_code}",
                "check the key and machine id",
            )
        )
    else:
        out.append(Check("auth", Status.PASS, f"platform key accepted for machine {s.machine_id}"))
    return out


def _jwt_expiry(token: Secret) -> datetime | None:
    parts = token.reveal().split(".")
    if len(parts) != 3:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(body["exp"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None


def _pairings(s: _Setup, client: httpx.Client) -> list[dict[str, Any]] | None:
    if s.api_key is None or not s.machine_id:
        return None
    try:
        resp = client.get(
            _api(s, f"/machines/{s.machine_id}/agent-pairings"),
            headers={"x-api-key": s.api_key.reveal()},
            params={"limit": 100},
        )
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    items = resp.json().get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else None


def _pairing(s: _Setup, client: httpx.Client) -> list[Check]:
    pairings = _pairings(s, client)
    if s.pairing_id and s.pairing_token is not None:
        expiry = _jwt_expiry(s.pairing_token)
        if expiry is not None and expiry <= datetime.now(UTC):
            return [
                Check(
                    "pairing",
                    Status.FAIL,
                    f"the pairing token of {s.pairing_id} expired at {expiry:%Y-%m-%d %H:%M} UTC",
                    "ask the operator for a fresh session token",
                )
            ]
        if pairings is None:
            return [
                Check(
                    "pairing",
                    Status.WARN,
                    f"pairing {s.pairing_id}: its status is not readable without the platform key",
                    "set PEAQOS_API_KEY too, to have the pairing checked",
                )
            ]
        found = next((p for p in pairings if p.get("id") == s.pairing_id), None)
        if found is None:
            return [
                Check(
                    "pairing",
                    Status.FAIL,
                    f"pairing {s.pairing_id} is unknown on machine {s.machine_id}",
                    "check PEAQOS_AGENT_PAIRING_ID",
                )
            ]
        if found.get("status") != "active":
            return [
                Check(
                    "pairing",
                    Status.FAIL,
                    f"pairing {s.pairing_id} is {found.get('status')}",
                    "ask the operator for a new pairing, or unset PEAQOS_AGENT_PAIRING_ID "
                    "to pair with the platform key",
                )
            ]
        s.pairing_policy = found.get("delegationPolicy") or None
        return [Check("pairing", Status.PASS, f"pairing {s.pairing_id} active")]
    if pairings is None:
        return []
    mine = [
        p
        for p in pairings
        if s.evm_address and str(p.get("agentAddress", "")).lower() == s.evm_address.lower()
    ]
    active = [p for p in mine if p.get("status") == "active"]
    if active:
        s.pairing_policy = active[-1].get("delegationPolicy") or None
        return [Check("pairing", Status.PASS, f"pairing {active[-1].get('id')} of {s.evm_address} active")]
    if mine:
        statuses = ", ".join(sorted({str(p.get("status")) for p in mine}))
        return [
            Check(
                "pairing",
                Status.WARN,
                f"the pairings of {s.evm_address} are {statuses}",
                "nothing to do: a run pairs anew with the platform key (and the task's policy)",
            )
        ]
    return [
        Check("pairing", Status.PASS, f"no pairing of {s.evm_address} yet: a run pairs with the platform key")
    ]


# --- policy ------------------------------------------------------------------------------------------


def _policy(s: _Setup) -> list[Check]:
    budget = s.budget
    if budget is None:
        return []
    if s.pairing_policy is not None:
        p = s.pairing_policy
        limits = {"per-transaction": p.get("perTransactionLimit"), "daily": p.get("dailySpendLimit")}
        currency, source = p.get("currency"), "the active pairing's policy"
        who = "ask the operator to raise the pairing's"
    elif s.task is not None and s.task.policy:
        p = s.task.policy
        limits = {"per-transaction": p.get("per_transaction_limit"), "daily": p.get("daily_spend_limit")}
        currency, source = p.get("currency"), "the task's policy (requested at pairing)"
        who = "raise the task's policy."
    else:
        return [Check("policy", Status.PASS, "no delegation policy limits to compare with the budget")]
    out: list[Check] = []
    budget_value = budget.to_decimal()
    if currency and str(currency).upper() not in (budget.currency.upper(), "USD"):
        return [
            Check(
                "policy",
                Status.WARN,
                f"{source} is in {currency}, the budget in {budget.currency}",
                "state both in one currency",
            )
        ]
    for label, value in limits.items():
        if value is None:
            continue
        limit = Decimal(str(value))
        shown = _plain(limit, min_places=2)
        key = "per_transaction_limit" if label == "per-transaction" else "daily_spend_limit"
        if limit < budget_value:
            out.append(
                Check(
                    "policy",
                    Status.FAIL,
                    f"{source}: the {label} limit {shown} is below the budget {budget}",
                    f"{who} {key}, or lower the budget",
                )
            )
        else:
            out.append(
                Check("policy", Status.PASS, f"{source}: {label} limit {shown} covers the budget {budget}")
            )
    return out or [Check("policy", Status.PASS, f"{source} sets no spend limits")]


# --- clock -------------------------------------------------------------------------------------------


def _clock(s: _Setup) -> list[Check]:
    if s.date_skew_s is None:
        return [
            Check(
                "clock",
                Status.WARN,
                "the market sent no Date header: the clock is not compared",
                "make sure NTP runs",
            )
        ]
    deadline = s.task.spec.deadlines.quote if s.task is not None else 60.0
    skew = s.date_skew_s
    side = "ahead of" if skew > 0 else "behind"
    text = f"this clock is {abs(skew):.1f} s {side} the market's (quote deadline {deadline:g} s)"
    if abs(skew) > deadline:
        return [
            Check(
                "clock",
                Status.FAIL,
                text,
                "set the clock (enable NTP): quotes would look expired or fresh when they are not",
            )
        ]
    if abs(skew) > _CLOCK_WARN_S:
        return [Check("clock", Status.WARN, text, "enable NTP")]
    return [Check("clock", Status.PASS, text)]
