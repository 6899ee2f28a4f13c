"""The local Machine Markets sandbox: a market server over real HTTP with real local chains."""

from buyer_agent.sandbox._sandbox import DEMO_EVM_KEY, Sandbox, SandboxInfo
from buyer_agent.sandbox.market import FaultConfig, MarketSettings

__all__ = ["DEMO_EVM_KEY", "FaultConfig", "MarketSettings", "Sandbox", "SandboxInfo"]
