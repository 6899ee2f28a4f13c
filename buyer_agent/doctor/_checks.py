"""The doctor's checks, in order: task file, keys, RPCs, gas, token balance, market, pairing, policy, clock.

Everything is read-only: the doctor signs nothing, pairs nothing and places no order. Keys are shown
only as the addresses they derive; a secret never reaches a line of the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import httpx

from buyer_agent._errors import TaskFileError
from buyer_agent.doctor._chain import gas_checks, key_checks, rpc_checks, token_checks
from buyer_agent.doctor._market import clock_checks, market_checks, pairing_checks, policy_checks
from buyer_agent.doctor._report import Check, Status
from buyer_agent.doctor._setup import make_setup
from buyer_agent.doctor._watch import WatchedTransport
from buyer_agent.networks import NETWORKS_ENV, agent_networks
from buyer_agent.task import Task, load_task

_TIMEOUT = 10.0

__all__ = ["diagnose"]


def diagnose(
    task_path: str | None,
    *,
    env: Mapping[str, str] | None = None,
    on_check: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Run every check in order; each is PASS, WARN or FAIL with one line on how to fix it.

    ``on_check`` is called with each check as soon as it is made (the command line prints it then,
    so a slow node or market never looks like a hung doctor).

    Raises:
        TaskFileError: ``task_path`` cannot be read at all (missing, a directory, not text, too large);
            a task file that reads but breaks the schema is the ``task`` check's FAIL instead.
    """
    environ = os.environ if env is None else env
    checks: list[Check] = []

    def emit(*new: Check) -> None:
        for check in new:
            checks.append(check)
            if on_check is not None:
                on_check(check)

    task: Task | None = None
    if task_path is None:
        emit(
            Check(
                "task",
                Status.WARN,
                "no task file: checking the environment only (budget and policy not compared)",
                "python -m buyer_agent doctor TASK.yaml",
            )
        )
    else:
        try:
            task = load_task(task_path, env=environ)
        except TaskFileError as exc:
            if exc.field == "<file>":
                raise  # no file to check at that path: bad usage (exit 2), as for every command
            emit(Check("task", Status.FAIL, str(exc), "correct that field (README: 'Task file')"))
            return checks
        spec = task.spec
        emit(Check("task", Status.PASS, f"{task_path}: {spec.service_type}, budget {spec.budget}"))
    try:
        networks = agent_networks(list(task.networks) if task else None, env=environ)
    except TaskFileError as exc:
        emit(Check("networks", Status.FAIL, str(exc), f"correct the file ${NETWORKS_ENV} names"))
        return checks
    setup = make_setup(task, networks, environ)
    if setup.market is None:
        emit(
            Check(
                "market",
                Status.WARN,
                "no market configured: a run uses the embedded sandbox (local chains, demo keys)",
                "set market: in the task or PEAQOS_ORCHESTRATION_URL to go live",
            )
        )
        return checks
    transport = WatchedTransport(_TIMEOUT)
    with httpx.Client(timeout=_TIMEOUT, follow_redirects=False, transport=transport) as client:
        emit(*key_checks(setup))
        emit(*rpc_checks(setup, client))
        emit(*gas_checks(setup, client))
        emit(*token_checks(setup, client))
        reached = market_checks(setup, client)
        emit(*reached)
        reachable = bool(reached) and reached[0].status is not Status.FAIL
        if reachable:
            emit(*pairing_checks(setup, client))
        emit(*policy_checks(setup))
        if reachable:
            emit(*clock_checks(setup))
    return checks
