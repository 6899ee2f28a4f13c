"""``worker``: claim orders from a shared store and drive them, until SIGTERM (or, ``--once``, drained)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from buyer_agent._logformat import say
from buyer_agent._progress import progress_printer
from buyer_agent.commands._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUNDED,
    add_state_dir,
    guarded,
    print_json,
)
from buyer_agent.commands._store_write import add_write_store, number, opened, whole_number, write_target
from buyer_agent.commands._telemetry import observer_for
from buyer_agent.fleet import Worker, WorkerReport, fleet_agent, fleet_connection
from buyer_agent.task import load_task
from buyer_agent.workflow import OrderState

__all__ = ["DEFAULT_LEASE_TTL_S", "register", "run"]

#: A worker's lease: renewed every third of it while an order is driven; a dead worker's orders are
#: free again this long after its last renewal.
DEFAULT_LEASE_TTL_S = 30.0


def register(subparsers: Any) -> None:
    """Add ``worker`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="claim orders from a shared store and drive them (a fleet of these shares one store)",
        description=(
            "Claim orders that are submitted or interrupted (open, not awaiting approval, nobody's live "
            "lease) from the store and drive them, up to --concurrency at once, each under a lease the "
            "worker renews while it drives (by the database's clock). Any number of workers, on any "
            "number of hosts, share one PostgreSQL store: they never drive one order twice, never sign "
            "one nonce twice, and commit against one daily budget. A worker killed outright loses its "
            "leases when they run out (--lease-ttl) and another worker resumes its orders from the "
            "journal. SIGTERM (or Ctrl-C) stops claiming, lets each order reach its next safe point, "
            "gives the leases back and exits 0 (130 for Ctrl-C). The market, keys and pairing policy "
            "come from --task's file or the environment; the market must be a URL. Progress on stderr."
        ),
        epilog=(
            "exit codes: 0 stopped cleanly (--once: every order it drove confirmed), 1 an order it drove "
            "failed or stopped short (--once) or the store failed, 2 bad usage, 3 an order it drove was "
            "disputed or refunded (--once)"
        ),
    )
    add_state_dir(parser)
    add_write_store(parser)
    parser.add_argument(
        "--task",
        metavar="TASK.yaml",
        default=None,
        help="take the market, keys, RPCs, pairing policy and networks from this task file (its order "
        "part is ignored); the environment fills what it leaves out",
    )
    parser.add_argument(
        "--market",
        metavar="URL",
        default=None,
        help="the market to drive orders on (overrides $PEAQOS_ORCHESTRATION_URL and the task's); "
        "orders placed on another market are left alone",
    )
    parser.add_argument("--concurrency", metavar="N", default="4", help="orders driven at once (default 4)")
    parser.add_argument(
        "--once", action="store_true", help="drive what is claimable now, then exit (do not wait for more)"
    )
    parser.add_argument(
        "--lease-ttl",
        metavar="S",
        default=str(DEFAULT_LEASE_TTL_S),
        help=f"seconds an order's lease lasts, renewed every third of it (default {DEFAULT_LEASE_TTL_S:g})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on exit: owner, store, market, claimed, ended (states counted), stopped",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    concurrency = whole_number(args.concurrency, "--concurrency", 1, 10_000)
    lease_ttl = number(args.lease_ttl, "--lease-ttl", 1.0, 86_400.0)
    task = load_task(args.task) if args.task else None
    where = "--market" if args.market else ("market" if task is not None else "PEAQOS_ORCHESTRATION_URL")
    agent = fleet_agent(task, args.market, field=where)
    target = write_target(args)
    signals: list[str] = []

    async def go() -> tuple[WorkerReport, str, str]:
        async with opened(target) as store:
            progress = progress_printer()
            async with fleet_connection(
                agent, store, on_progress=progress, lease_ttl=lease_ttl, observer=observer_for(args)
            ) as conn:
                worker = Worker(
                    conn.runner,
                    store,
                    market=conn.market_label,
                    concurrency=concurrency,
                    once=args.once,
                    say=lambda line: say(line),
                )
                _on_signals(worker, signals)
                say(
                    f"worker {worker.owner}: driving orders of {store.label} on {conn.market_label}, "
                    f"up to {concurrency} at once" + (" (until drained)" if args.once else "")
                )
                report = await worker.run()
                say(
                    f"worker {worker.owner}: stopped ({', '.join(signals) or 'drained'}); "
                    f"{_counts(report)}; leases given back"
                )
                return report, worker.owner, store.label

    report, owner, label = asyncio.run(go())
    if args.json:
        print_json(
            {
                "owner": owner,
                "store": label,
                "market": agent.market_label,
                "claimed": report.claimed,
                "ended": dict(sorted(report.ended.items())),
                "stopped": report.stopped,
                "signal": signals[0] if signals else None,
            }
        )
    if "SIGINT" in signals:
        return EXIT_INTERRUPTED
    if signals or not args.once:
        return EXIT_OK
    return _once_code(report)


def _on_signals(worker: Worker, signals: list[str]) -> None:
    """SIGTERM / SIGINT: stop at the next safe point; a second one stops at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def handle(name: str) -> None:
        if signals and main is not None:
            print(f"worker: {name} again: stopping now", file=sys.stderr)
            main.cancel()
            return
        signals.append(name)
        say(f"worker {worker.owner}: {name}: no new orders; each in flight stops at its next safe point")
        worker.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig.name)


def _counts(report: WorkerReport) -> str:
    ended = ", ".join(f"{n} {state}" for state, n in sorted(report.ended.items())) or "none ended"
    return f"{report.claimed} claimed, {ended}, {report.stopped} stopped short"


def _once_code(report: WorkerReport) -> int:
    """``--once``: failed (or stopped short) beats disputed beats confirmed."""
    good = {OrderState.CONFIRMED.value, OrderState.HANDED_OFF.value}
    refunded = {OrderState.DISPUTED.value, OrderState.REFUNDED.value}
    if report.stopped or any(s not in good | refunded for s in report.ended):
        return EXIT_FAILED
    if any(s in refunded for s in report.ended):
        return EXIT_REFUNDED
    return EXIT_OK
