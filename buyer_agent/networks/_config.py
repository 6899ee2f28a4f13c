"""Which profiles an agent uses: the built-ins, the user's file, the task's own, the sandbox's chains."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from buyer_agent.networks._profiles import (
    NETWORKS_ENV,
    NativeToken,
    NetworkProfile,
    Networks,
    TokenInfo,
    builtin_networks,
    load_networks_file,
)

__all__ = ["SANDBOX_DECIMALS", "agent_networks", "dump_profiles", "sandbox_profiles"]

#: The sandbox's USDC has 6 decimals on both of its chains.
SANDBOX_DECIMALS = 6


def agent_networks(
    task_profiles: list[NetworkProfile] | None = None, *, env: Mapping[str, str] | None = None
) -> Networks:
    """The built-in profiles, extended by ``$BUYER_AGENT_NETWORKS``'s file, then by the task's own.

    Raises:
        TaskFileError: The environment's file cannot be read or breaks the schema (field named).
    """
    environ = os.environ if env is None else env
    networks = builtin_networks()
    path = (environ.get(NETWORKS_ENV) or "").strip()
    if path:
        networks = networks.extend(load_networks_file(path))
    if task_profiles:
        networks = networks.extend(task_profiles)
    return networks


def sandbox_profiles(info: Any) -> list[NetworkProfile]:
    """Profiles of a started sandbox's chains (anvil and the local Solana RPC), made at its start.

    ``info`` is a :class:`~buyer_agent.sandbox.SandboxInfo` (or anything with its attributes).
    """
    out = [
        NetworkProfile(
            name="sandbox-evm",
            chain=str(info.evm_chain),
            display="sandbox anvil",
            aliases=("sandbox-evm",),
            native=NativeToken("ETH", 18),
            confirmations=1,
            tokens={"USDC": TokenInfo("USDC", str(info.token_address), SANDBOX_DECIMALS)},
            source="sandbox",
            # x402 authorizations are signed for the sandbox's second USDC, the EIP-3009 one.
            x402_tokens=(
                {"USDC": TokenInfo("USDC", str(info.x402_token_address), SANDBOX_DECIMALS)}
                if getattr(info, "x402_token_address", None)
                else {}
            ),
        )
    ]
    if getattr(info, "solana_chain", None) and getattr(info, "mint", None):
        out.append(
            NetworkProfile(
                name="sandbox-solana",
                chain=str(info.solana_chain),
                display="sandbox Solana (LiteSVM)",
                aliases=("sandbox-solana",),
                native=NativeToken("SOL", 9),
                commitment="confirmed",
                tokens={"USDC": TokenInfo("USDC", str(info.mint), SANDBOX_DECIMALS)},
                source="sandbox",
            )
        )
    return out


def dump_profiles(profiles: Iterable[NetworkProfile]) -> dict[str, Any]:
    """Profiles as a ``networks:`` document that :func:`load_networks_file` reads back."""
    out: dict[str, Any] = {}
    for p in profiles:
        body: dict[str, Any] = {"name": p.display or p.name, "chain": p.chain, "aliases": list(p.aliases)}
        if p.native is not None:
            body["native"] = {"symbol": p.native.symbol, "decimals": p.native.decimals}
        if p.confirmations is not None:
            body["confirmations"] = p.confirmations
        if p.commitment is not None:
            body["commitment"] = p.commitment
        if p.explorer is not None:
            body["explorer"] = p.explorer
        key = "address" if p.is_evm else "mint"
        body["tokens"] = {s: {key: t.address, "decimals": t.decimals} for s, t in p.tokens.items()}
        if p.x402_tokens:
            body["x402_tokens"] = {
                s: {key: t.address, "decimals": t.decimals} for s, t in p.x402_tokens.items()
            }
        out[p.name] = body
    return {"networks": out}
