"""buyer_agent.history: readers over journals — replay, timeline, what-if, evidence, summaries.

Each reads orders through their facts (:func:`buyer_agent.workflow._facts.fold`); none writes an
order. The journal itself (storage) is :mod:`buyer_agent.journal`.
"""

from buyer_agent.history._evidence import build_evidence, context_from_events
from buyer_agent.history._imported import imported_context
from buyer_agent.history._readable import error_text, named_candidates, strategy_order
from buyer_agent.history._replay import (
    Breakage,
    Rebuilder,
    Replay,
    replay_benchmark,
    replay_events,
    replay_file,
    replay_order,
    synthetic_journal,
    synthetic_orders,
)
from buyer_agent.history._summary import order_summary
from buyer_agent.history._timeline import build_timeline, render_timeline, summarise
from buyer_agent.history._whatif import what_if

__all__ = [
    "Breakage",
    "Rebuilder",
    "Replay",
    "build_evidence",
    "build_timeline",
    "context_from_events",
    "error_text",
    "imported_context",
    "named_candidates",
    "order_summary",
    "render_timeline",
    "replay_benchmark",
    "replay_events",
    "replay_file",
    "replay_order",
    "strategy_order",
    "summarise",
    "synthetic_journal",
    "synthetic_orders",
    "what_if",
]
