"""What ``replay`` and ``import`` check beyond the hash chain: who signed the export, what the chain says.

``--signer ADDRESS`` pins the agent address a signature must recover to (default: the EVM payer the
journal records). ``replay`` reports an unsigned export on a line and exits 1 for it only with
``--require-signature`` (exports from before signing, hand-made journals and the golden files are
unsigned); a signature that does not hold is a broken journal (exit 1). ``import`` refuses an
unsigned export unless ``--allow-unsigned``, and a bad signature always. ``--check-chain`` reads the
payments back from the RPCs (:mod:`buyer_agent.journal._onchain`).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from buyer_agent._errors import TaskFileError
from buyer_agent._urls import check_port
from buyer_agent.history import Replay
from buyer_agent.journal._signature import SignatureCheck, check_signature

__all__ = ["add_chain_args", "add_signer_arg", "chain_doc", "check_trust_args", "head_of", "signature_of"]

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def add_signer_arg(parser: argparse.ArgumentParser) -> None:
    """``--signer ADDRESS``."""
    parser.add_argument(
        "--signer",
        metavar="ADDRESS",
        default=None,
        help="the agent address the export's signature must recover to "
        "(default: the EVM payer the journal records)",
    )


def add_chain_args(parser: argparse.ArgumentParser) -> None:
    """``--check-chain``, ``--evm-rpc``, ``--solana-rpc``."""
    parser.add_argument(
        "--check-chain",
        action="store_true",
        help="read each payment transaction back from the chain's RPC and compare payer, payee, "
        "token and amount with the journal (exit 1 on any difference)",
    )
    parser.add_argument(
        "--evm-rpc",
        metavar="URL",
        default=None,
        help="EVM JSON-RPC for --check-chain (default $BUYER_AGENT_EVM_RPC)",
    )
    parser.add_argument(
        "--solana-rpc",
        metavar="URL",
        default=None,
        help="Solana JSON-RPC for --check-chain (default $BUYER_AGENT_SOLANA_RPC)",
    )


def check_trust_args(args: argparse.Namespace) -> None:
    """Refuse a ``--signer`` that is no EVM address and an RPC URL with an impossible port (usage, 2).

    Raises:
        TaskFileError: ``--signer`` is not a 0x address.
        OrchestrationConfigError: ``--evm-rpc`` / ``--solana-rpc`` names a port outside 1..65535.
    """
    signer = getattr(args, "signer", None)
    if signer is not None and not _EVM_ADDRESS.match(signer):
        raise TaskFileError("--signer", f"must be a 0x EVM address (40 hex digits), not {signer!r}")
    for flag in ("evm_rpc", "solana_rpc"):
        url = getattr(args, flag, None)
        if url:
            check_port(url, f"--{flag.replace('_', '-')}")


def head_of(result: Replay) -> str:
    """The replayed chain's last hash (the header's claim only when no event was kept)."""
    if result.events:
        return str(result.events[-1].get("hash"))
    return str(result.header.get("head_hash") or "")


def signature_of(result: Replay, signer: str | None) -> SignatureCheck:
    """The export's signature checked over its replayed head."""
    return check_signature(result.header, result.order_id, head_of(result), result.events, signer=signer)


def chain_doc(result: Replay, args: argparse.Namespace) -> dict[str, Any]:
    """``--check-chain``'s verdict for one order, as JSON."""
    from buyer_agent.journal._onchain import check_payments  # needs httpx and the ABI: lazily

    evm = args.evm_rpc or os.environ.get("BUYER_AGENT_EVM_RPC") or None
    sol = args.solana_rpc or os.environ.get("BUYER_AGENT_SOLANA_RPC") or None
    return check_payments(result.events, evm_rpc=evm, solana_rpc=sol).to_json()
