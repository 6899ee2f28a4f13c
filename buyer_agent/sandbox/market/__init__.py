"""The sandbox's Machine Markets server: the documented buyer API over stdlib HTTP, state in one store."""

from buyer_agent.sandbox.market._catalogue import CATALOGUE, ChainFacts, ServiceSpec
from buyer_agent.sandbox.market._chainview import EvmView, SolanaView
from buyer_agent.sandbox.market._context import MarketContext, MarketSettings
from buyer_agent.sandbox.market._faults import FaultConfig, parse_fault_spec
from buyer_agent.sandbox.market._http import API_BASE, MarketServer
from buyer_agent.sandbox.market._state import Store

__all__ = [
    "API_BASE",
    "CATALOGUE",
    "ChainFacts",
    "EvmView",
    "FaultConfig",
    "MarketContext",
    "MarketServer",
    "MarketSettings",
    "ServiceSpec",
    "SolanaView",
    "Store",
    "parse_fault_spec",
]
