"""A fork server for the fleet crash suite: start a worker, SIGKILL it at a seeded moment, start it again.

Started as ``python tests/reliability/fleet_killer.py`` with a JSON config on stdin::

    {"argv": ["worker", "--store", URL, ...], "env": {...}, "store": URL, "seed": N, "kills": N,
     "early": P, "start_window": S, "min_delay": S, "max_delay": S, "log_dir": DIR}

It imports the framework once, then forks a child per life that calls ``buyer_agent.cli.main(argv)``
exactly as ``python -m buyer_agent worker`` would (so a restart costs no interpreter start), and
SIGKILLs it at a moment drawn from ``random.Random(seed)``: with probability ``early`` uniformly over
its start-up (``start_window`` seconds from the fork: connecting to the store and the market),
otherwise uniformly between ``min_delay`` and ``max_delay`` seconds after it said it drives orders
(its first stderr line), when it is claiming and driving. A kill *lands* when the dead worker still
held leases (read from the store right after): it was driving orders. It stops after ``kills`` landed
kills. One JSON line per life goes to ``log_dir/lives.jsonl`` (a file, not a pipe nobody drains while
the kills go on); each child's stderr to ``log_dir/victim-N.log``.

The server itself is single-threaded and holds no connection while it forks.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sys
import time
from typing import Any

READY = b"driving orders of"
#: A life that has not said it drives orders by then is killed and reported as hung.
HANG_S = 60.0


def _held(store: str, pid: int) -> int:
    """How many orders the worker process ``pid`` holds leases on (its owner id is ``host:pid:tag``)."""
    import psycopg

    with psycopg.connect(store, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM buyer_agent.orders WHERE lease_owner LIKE %s",
            [f"{socket.gethostname()}:{pid}:%"],
        ).fetchone()
    return int(row[0]) if row else 0


def _spawn(cfg: dict[str, Any], log_path: str) -> int:
    from buyer_agent import cli

    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    pid = os.fork()
    if pid == 0:  # the worker: the command line, as the shell would run it
        try:
            os.dup2(log, 2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            code = cli.main(list(cfg["argv"]))
        except BaseException:  # a child never returns into the server's loop
            code = 99
        os._exit(code)
    os.close(log)
    return pid


def _life(cfg: dict[str, Any], n: int, rng: random.Random) -> dict[str, Any]:
    early = rng.random() < cfg["early"]
    delay = (
        rng.uniform(0.0, cfg["start_window"]) if early else rng.uniform(cfg["min_delay"], cfg["max_delay"])
    )
    log_path = os.path.join(cfg["log_dir"], f"victim-{n}.log")
    pid = _spawn(cfg, log_path)
    started = time.monotonic()
    ready: float | None = None
    code: int | None = None
    hung = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        now = time.monotonic()
        if ready is None and not early:
            with open(log_path, "rb") as f:
                if READY in f.read():
                    ready = now
        if early and now - started >= delay:
            break
        if ready is not None and now - ready >= delay:
            break
        if ready is None and now - started >= HANG_S:
            hung = True
            break
        time.sleep(0.005)
    killed = code is None
    if killed:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    held = _held(cfg["store"], pid) if killed else 0
    print(f"held-check {time.monotonic() - started:.3f}", file=sys.stderr)
    return {
        "life": n,
        "pid": pid,
        "early": early,
        "delay": round(delay, 3),
        "ready_s": None if ready is None else round(ready - started, 3),
        "killed": killed,
        "held": held,
        "hung": hung,
        "code": code,
        "life_s": round(time.monotonic() - started, 3),
    }


def main() -> None:
    cfg = json.load(sys.stdin)
    os.environ.update(cfg["env"])
    # Everything a worker imports, imported once here so each forked life starts at once; the framework
    # before tests/ goes on the path, where tests/strategies would shadow the top-level ``strategies``.
    import importlib

    for name in ("buyer_agent.fleet", "buyer_agent.journal._postgres", "buyer_agent.rails._solana"):
        importlib.import_module(name)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for cli_fork
    from cli_fork import preload

    preload()  # the command line, every command's module, and the work a process does once

    rng = random.Random(cfg["seed"])
    landed, n = 0, 0
    with open(os.path.join(cfg["log_dir"], "lives.jsonl"), "w", encoding="utf-8") as lives:
        while landed < cfg["kills"]:
            report = _life(cfg, n, rng)
            landed += bool(report["killed"] and report["held"])
            lives.write(json.dumps(report) + "\n")
            lives.flush()
            n += 1
            if report["hung"]:
                raise SystemExit(f"life {n - 1} never said it drives orders in {HANG_S:g} s")


if __name__ == "__main__":
    main()
