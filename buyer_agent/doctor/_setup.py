"""What a doctor run checks: the task's settings with the environment filling the gaps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buyer_agent._money import Money
from buyer_agent._redact import Secret
from buyer_agent.agent import ENV
from buyer_agent.networks import Networks
from buyer_agent.task import Task

__all__ = ["ENV", "Setup", "make_setup"]


@dataclass
class Setup:
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
    value = (env.get(ENV[name]) or "").strip()
    return value or None


def _secret(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value) if value else None


def make_setup(task: Task | None, networks: Networks, env: Mapping[str, str]) -> Setup:
    t = task
    return Setup(
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
