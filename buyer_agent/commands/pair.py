"""``pair [--reset]``: pair the agent with its machine on the market, or show the stored pairing.

A pairing is stored per (market, machine, agent address), so switching ``BUYER_AGENT_EVM_KEY`` in
one state dir pairs the new key with its own pairing and switching back finds the old one again.
The pairing token is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded, print_json

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``pair`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "pair",
        help="pair the agent with its machine (or show the stored pairing); --reset pairs anew",
        description=(
            "Make sure the agent holds a valid pairing with its machine on the market: the stored "
            "pairing of this (market, machine, agent address) is rotated, or a new one is made, and "
            "shown. Keys come from the environment (PEAQOS_API_KEY, PEAQOS_MACHINE_ID, "
            "BUYER_AGENT_EVM_KEY); the pairing token is never printed."
        ),
    )
    add_state_dir(parser)
    parser.add_argument(
        "--market", metavar="URL", default=None, help="the market's URL (default: $PEAQOS_ORCHESTRATION_URL)"
    )
    parser.add_argument("--reset", action="store_true", help="drop the stored pairing first and pair anew")
    parser.add_argument("--json", action="store_true", help="print the pairing as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    agent = BuyerAgent.from_env(market=args.market, state_dir=args.state_dir)

    async def go() -> dict[str, Any]:
        async with agent:
            session = await agent.pairing()
            had = session.pairing_id
            if args.reset:
                session.forget()
            await session.token()
            policy = session.policy()
            expires = session.expires_at
            return {
                "market": agent.market_label,
                "machine_id": session.machine_id,
                "agent_address": session.agent_address,
                "pairing_id": session.pairing_id,
                "reused": had is not None and had == session.pairing_id and not args.reset,
                "reset": bool(args.reset),
                "session_expires_at": expires.isoformat() if expires else None,
                "policy": policy.to_json() if policy else None,
            }

    info = asyncio.run(go())
    if args.json:
        print_json(info)
        return EXIT_OK
    how = "reused" if info["reused"] else ("paired anew (reset)" if info["reset"] else "paired")
    print(f"pairing  {info['pairing_id']}  ({how})")
    print(f"market   {info['market']}")
    print(f"machine  {info['machine_id']}")
    print(f"agent    {info['agent_address']}")
    if info["session_expires_at"]:
        print(f"expires  {info['session_expires_at']}")
    return EXIT_OK
