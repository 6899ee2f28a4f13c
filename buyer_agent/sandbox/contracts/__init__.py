"""The sandbox's Solidity contracts (TestToken, Escrow, AuthorizedUsdc): artifacts and deployment helpers."""

from buyer_agent.sandbox.contracts._artifacts import (
    CONTRACT_NAMES,
    artifacts,
    load_artifact,
    order_key,
    source_sha256,
)
from buyer_agent.sandbox.contracts._deploy import (
    Deployed,
    connect,
    deploy_contract,
    deploy_contracts,
    mint,
    send_transaction,
)

__all__ = [
    "CONTRACT_NAMES",
    "Deployed",
    "artifacts",
    "connect",
    "deploy_contract",
    "deploy_contracts",
    "load_artifact",
    "mint",
    "order_key",
    "send_transaction",
    "source_sha256",
]
