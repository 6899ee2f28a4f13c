"""Payment rails: sign first, journal, broadcast the same bytes, reconcile by hash — never pay twice."""

from buyer_agent.rails._base import EscrowProof, NonceStore, PaymentRequest, Rail, SignedTx, TxStatus
from buyer_agent.rails._evm import EvmRail
from buyer_agent.rails._nonces import MemoryNonceStore
from buyer_agent.rails._registry import ENTRY_POINT_GROUP, load_entry_point_rails, rail_for
from buyer_agent.rails._solana import SolanaRail
from buyer_agent.rails._x402 import X402Rail

__all__ = [
    "ENTRY_POINT_GROUP",
    "EscrowProof",
    "EvmRail",
    "MemoryNonceStore",
    "NonceStore",
    "PaymentRequest",
    "Rail",
    "SignedTx",
    "SolanaRail",
    "TxStatus",
    "X402Rail",
    "load_entry_point_rails",
    "rail_for",
]
