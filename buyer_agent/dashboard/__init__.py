"""buyer_agent.dashboard: a read-only local web page over an order store (``python -m buyer_agent ui``).

Orders (filter by state and day, live), one order's timeline, quote and candidates, payment with
its explorer link and dispute evidence, spend per day against the daily limit, and the state
machine diagram; everything read through the one fold and the :mod:`buyer_agent.history` readers.
"""

from buyer_agent.dashboard._app import LOOPBACK_HOSTS, build_app
from buyer_agent.dashboard._data import DashboardData, OrderRow, OrderView, SpendSeries, TimelineStep
from buyer_agent.dashboard._serve import HOST, serve_dashboard

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "DashboardData",
    "HOST",
    "LOOPBACK_HOSTS",
    "OrderRow",
    "OrderView",
    "SpendSeries",
    "TimelineStep",
    "build_app",
    "serve_dashboard",
]
