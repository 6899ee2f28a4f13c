"""An agent on a running sandbox, for integration tests of what you build on the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from buyer_agent.agent import BuyerAgent
from buyer_agent.sandbox import SandboxInfo

__all__ = ["sandbox_agent"]


def sandbox_agent(info: SandboxInfo, state_dir: str | Path, **kwargs: Any) -> BuyerAgent:
    """A :class:`BuyerAgent` on the sandbox ``info`` describes: its market, machine, demo keys and chains.

    Unlike ``BuyerAgent()`` (which starts an embedded sandbox of its own), many agents can share one
    sandbox this way, each with its journal in ``state_dir``. ``kwargs`` go to :class:`BuyerAgent`
    (``spec=``, ``on_progress=``, ``approver=``, …).
    """
    return BuyerAgent(
        info.url,
        machine_id=info.machine_id,
        api_key=info.api_key,
        evm_key=info.evm_private_key,
        evm_rpc=info.evm_rpc_url,
        solana_key=info.solana_secret_key,
        solana_rpc=info.solana_rpc_url,
        state_dir=state_dir,
        **kwargs,
    )
