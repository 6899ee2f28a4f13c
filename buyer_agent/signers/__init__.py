"""Signers: where the agent's keys live. Every signature the agent makes goes through one.

- :class:`LocalEvmSigner` / :class:`LocalSolanaSigner`: the key in this process (eth-account, solders).
- :class:`JsonRpcEvmSigner`: the key in another process (Clef, Web3Signer, or
  ``python -m buyer_agent.testing.signer``), reached over JSON-RPC; every answer is checked.
"""

from buyer_agent.signers._jsonrpc import JsonRpcEvmSigner
from buyer_agent.signers._local import LocalEvmSigner, LocalSolanaSigner, as_evm_signer, as_solana_signer
from buyer_agent.signers._protocol import EvmSigner, EvmTransaction, SignedEvmTransaction, SolanaSigner

__all__ = [
    "EvmSigner",
    "EvmTransaction",
    "JsonRpcEvmSigner",
    "LocalEvmSigner",
    "LocalSolanaSigner",
    "SignedEvmTransaction",
    "SolanaSigner",
    "as_evm_signer",
    "as_solana_signer",
]
