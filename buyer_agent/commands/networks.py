"""``networks``: the network profiles the agent knows (built-in, ``$BUYER_AGENT_NETWORKS``, a task's)."""

from __future__ import annotations

import argparse
from typing import Any

from buyer_agent.commands._common import EXIT_OK, guarded, print_json
from buyer_agent.networks import NETWORKS_ENV, NetworkProfile, Networks, agent_networks

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``networks`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "networks",
        help="list the network profiles: chains, aliases, tokens, confirmation depth, explorer",
        description=(
            "List the network profiles the agent pays on: each chain's CAIP-2 id and the names that "
            "resolve to it (a task may say `chain: base`), its gas token, the stablecoins it pays in "
            "(contract or mint, decimals), the confirmation depth (Solana: commitment) and the "
            f"explorer link. Built-in profiles are extended or overridden by the file ${NETWORKS_ENV} "
            "names and by a task's `networks:`. A payment whose token is not the profile's (or the "
            "task's payment.tokens) is refused before signing."
        ),
    )
    parser.add_argument(
        "task", metavar="TASK.yaml", nargs="?", default=None, help="also list this task's own profiles"
    )
    parser.add_argument("--json", action="store_true", help="print the profiles as one JSON list")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    networks = _networks(args.task)
    if args.json:
        print_json(networks.to_json())
    else:
        print(human(networks))
    return EXIT_OK


def _networks(task_path: str | None) -> Networks:
    if task_path is None:
        return agent_networks()
    from buyer_agent.task import load_task

    return agent_networks(list(load_task(task_path).networks))


def _depth(profile: NetworkProfile) -> str:
    if profile.confirmations is not None:
        return f"{profile.confirmations} conf"
    return profile.commitment or "-"


def _tokens(profile: NetworkProfile) -> str:
    if not profile.tokens:
        return "(none: name it in payment.tokens)"
    return ", ".join(f"{t.symbol} {t.address} ({t.decimals})" for t in profile.tokens.values())


def human(networks: Networks) -> str:
    """One block per profile, for people."""
    lines: list[str] = []
    for p in networks:
        native = f"{p.native.symbol}" if p.native else "-"
        lines.append(f"{p.name:<14} {p.chain}  ({p.display or p.name}; {p.source})")
        lines.append(f"  aliases   {', '.join(p.aliases) or '-'}")
        lines.append(f"  gas       {native}    depth {_depth(p)}")
        lines.append(f"  tokens    {_tokens(p)}")
        lines.append(f"  explorer  {p.explorer or '-'}")
    return "\n".join(lines)
