"""The sandbox's local chains: anvil (EVM) with the test contracts, and a LiteSVM-backed Solana RPC."""

from buyer_agent.sandbox.chains._anvil import (
    AnvilNode,
    DevAccount,
    anvil_available,
    find_anvil,
)
from buyer_agent.sandbox.chains._evm_setup import Authorization, EscrowDeposit, EvmChain, EvmWallet
from buyer_agent.sandbox.chains._solana_ledger import LedgerRejection, SolanaLedger, TxRecord
from buyer_agent.sandbox.chains._solana_rpc import SolanaRpcServer
from buyer_agent.sandbox.chains._solana_setup import SolanaChain, SolanaWallet

__all__ = [
    "AnvilNode",
    "Authorization",
    "DevAccount",
    "EscrowDeposit",
    "EvmChain",
    "EvmWallet",
    "LedgerRejection",
    "SolanaChain",
    "SolanaLedger",
    "SolanaRpcServer",
    "SolanaWallet",
    "TxRecord",
    "anvil_available",
    "find_anvil",
]
