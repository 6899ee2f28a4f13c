"""A process of the fleet: its settings (a task file and the environment), a market URL, the shared store.

``submit``, ``worker``, and ``run`` / ``resume`` with ``--store`` build their agents here. Orders in
a shared store outlive any one process, so their market must too: the embedded sandbox (which stops
with the process that started it) is refused, with how to serve one instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from buyer_agent._compose import Connection, connect, disconnect, env, market_label
from buyer_agent._errors import OrchestrationConfigError, TaskFileError
from buyer_agent.agent import BuyerAgent
from buyer_agent.fleet._worker import MARKET_META
from buyer_agent.journal import OrderStore
from buyer_agent.task import Task
from buyer_agent.workflow import DriveObserver, PairingSession, ProgressEvent, Runner

__all__ = ["SANDBOX_REFUSED", "fleet_agent", "fleet_connection", "submit_orders"]

#: Why a shared store refuses the embedded sandbox (the one line the commands print, exit 2).
SANDBOX_REFUSED = (
    "must be the URL of a market that outlives this process when orders live in a shared store "
    "(--store): the embedded sandbox stops with the process that started it. Serve one with "
    "`python -m buyer_agent sandbox` and give its url (market: in the task file, --market or "
    "$PEAQOS_ORCHESTRATION_URL), or give a real market's URL"
)


def fleet_agent(task: Task | None, market: str | None, *, field: str = "market") -> BuyerAgent:
    """The agent a fleet process runs as: the task's market and keys (or the environment's).

    Raises:
        TaskFileError: The market is the embedded sandbox (``field`` names where it came from).
    """
    agent = (
        BuyerAgent.from_task(task, market=market) if task is not None else BuyerAgent.from_env(market=market)
    )
    if agent.uses_sandbox:
        raise TaskFileError(field, SANDBOX_REFUSED)
    return agent


@asynccontextmanager
async def fleet_connection(
    agent: BuyerAgent,
    store: OrderStore,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    lease_ttl: float | None = None,
    observer: DriveObserver | None = None,
) -> AsyncIterator[Connection]:
    """The agent's parts over the shared ``store`` (nonces reserved there, the pairing shared there).

    ``observer`` hears the orders driven here (the CLI's log context, metrics and traces); one with
    a ``watch_store`` hook (the metrics' ledger gauges) is lent the store (see :func:`connect`).
    """
    conn = await connect(
        agent._settings(), store, on_progress=on_progress, lease_ttl=lease_ttl, observer=observer
    )
    try:
        yield conn
    finally:
        await disconnect(conn)


async def submit_orders(store: OrderStore, task: Task, agent: BuyerAgent, count: int) -> list[str]:
    """Enqueue ``count`` orders of ``task`` in ``store`` (state ``created``) for the workers to claim.

    Nothing is asked of the market: each order is journaled with its spec, its machine and the
    market it is for, which the workers of that market then claim.

    Raises:
        OrchestrationConfigError: No machine id (``machine_id:`` in the task, or ``$PEAQOS_MACHINE_ID``).
    """
    machine_id = task.machine_id or env("machine_id")
    if not machine_id:
        raise OrchestrationConfigError(
            "no machine id to submit for: set machine_id in the task file or $PEAQOS_MACHINE_ID "
            "(a served sandbox prints its own in its JSON line)"
        )
    placing = _submitter(store, machine_id)
    label = market_label(agent._market_arg)
    ids = []
    for _ in range(count):
        order_id = await placing.submit(task.spec)
        await store.set_meta(MARKET_META + order_id, label)
        ids.append(order_id)
    return ids


def _submitter(store: OrderStore, machine_id: str) -> Runner:
    """A runner that only journals new orders (no market, no rails: it never drives one)."""
    return Runner(
        market=cast(Any, None), journal=store, rails=[], pairing=PairingSession(machine_id=machine_id)
    )
