"""``doctor``: read-only checks that a task can run live: keys, RPCs, balances, market, policy, clock."""

from buyer_agent.doctor._checks import diagnose
from buyer_agent.doctor._report import Check, Status, exit_code, render

__all__ = ["Check", "Status", "diagnose", "exit_code", "render"]
