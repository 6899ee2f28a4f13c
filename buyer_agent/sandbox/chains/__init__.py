"""The sandbox's local chains: anvil (EVM) with the test contracts, and a LiteSVM-backed Solana RPC."""

from buyer_agent.sandbox.chains._anvil import (
    AnvilNode,
    DevAccount,
    anvil_available,
    find_anvil,
)
from buyer_agent.sandbox.chains._evm_setup import EscrowDeposit, EvmChain, EvmWallet

__all__ = [
    "AnvilNode",
    "DevAccount",
    "EscrowDeposit",
    "EvmChain",
    "EvmWallet",
    "anvil_available",
    "find_anvil",
]
