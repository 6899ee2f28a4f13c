"""A fork server for the crash suite: run the real CLI in forked children and SIGKILL them at seeded moments.

Started as ``python tests/reliability/crash_worker.py`` with a JSON config on stdin. It imports the
framework once, then for every order forks a child that calls ``buyer_agent.cli.main`` exactly as
``python -m buyer_agent`` would (``run TASK --json --market URL --state-dir DIR``), and SIGKILLs it
after a seeded random delay; then it forks ``resume`` (possibly killed too) until one finishes unkilled.
Forking after ``cli_fork.preload()`` (the imports, and the work a process does once: the first HTTP
client, the TLS context, the parser, the packaged network profiles) saves the ~2 s interpreter start
and ~0.3 s more per process, which is what lets hundreds of kills fit in the normal test run. One
JSON line per order goes to stdout.

The worker itself is single-threaded (no asyncio, no threads): only children run event loops.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Order:
    """One order's life in the crash loop."""

    index: int
    state_dir: str
    key: str
    task: str
    url: str
    env: dict[str, str] = field(default_factory=dict)
    kills: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None


@dataclass
class Child:
    """A running child: which order, what it runs, when to kill it."""

    pid: int
    order: Order
    argv: list[str]
    kill_at: float | None
    out: str
    started: float
    signal_fd: int
    after_journal: float | None = None
    journaled: float | None = None


def _journaled(state_dir: str) -> bool:
    db = os.path.join(state_dir, "buyer_agent.db")
    if not os.path.exists(db):
        return False
    conn = sqlite3.connect(db)
    try:
        return bool(conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0)
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _signal_first_event(fd: int) -> None:
    """Instrument the child's journal: one byte on ``fd`` once the order's first event is committed."""
    from buyer_agent.journal import Journal

    create = Journal.create_order

    def create_order(self: Journal, *args: Any, **kwargs: Any) -> Any:
        event = create(self, *args, **kwargs)
        os.write(fd, b"j")
        return event

    Journal.create_order = create_order  # type: ignore[method-assign]


def _fork(order: Order, argv: list[str], n: int) -> Child:
    out = os.path.join(order.state_dir, f"child-{n}")
    for suffix in (".out", ".err"):  # made here: a child killed at once may not get to open them
        open(out + suffix, "w").close()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the CLI, with its output in files
        code = 70
        try:
            os.close(read_fd)
            _signal_first_event(write_fd)
            os.environ["BUYER_AGENT_EVM_KEY"] = order.key
            os.environ.update(order.env)
            fd_out = os.open(out + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            fd_err = os.open(out + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            from buyer_agent.cli import main

            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return Child(pid, order, argv, None, out, time.monotonic(), read_fd)


def main() -> None:
    """Read the config, run the loop, print one JSON line per order."""
    cfg = json.load(sys.stdin)
    os.environ.update(cfg["env"])
    import buyer_agent.cli  # noqa: F401 - first: the top-level ``strategies`` it imports, tests/ would shadow

    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for cli_fork
    from cli_fork import preload

    preload()  # what every child would import and build first, done once before any fork

    rng = random.Random(cfg.get("seed", 0))
    max_delay: float = cfg.get("max_delay", 0.0)
    kill_resume: float = cfg.get("kill_resume", 0.0)
    url: str = cfg["url"]
    pending = [
        Order(i, o["state_dir"], o["key"], o["task"], o.get("url", url), o.get("env", {}))
        for i, o in enumerate(cfg["orders"])
    ]
    pending.reverse()
    running: list[Child] = []
    counter = 0

    def start(order: Order, verb: str, kill: bool) -> None:
        nonlocal counter
        counter += 1
        if verb == "run":
            argv = ["run", order.task, "--json", "--market", order.url, "--state-dir", order.state_dir]
        else:
            argv = ["resume", "--json", "--market", order.url, "--state-dir", order.state_dir]
        child = _fork(order, argv, counter)
        child.kill_at = child.started + cfg["hang_s"]
        if kill and verb == "run" and rng.random() >= cfg["early"]:
            # Most kills of a run land after the order is journaled (the first seconds only connect).
            child.after_journal = rng.uniform(0.0, cfg["post_window"])
        elif kill:
            child.kill_at = child.started + rng.uniform(
                0.0, cfg["pre_window"] if verb == "run" else max_delay
            )
        child.argv.append("(kill)" if kill else "(final)")
        running.append(child)

    while pending or running:
        while pending and len(running) < cfg["parallel"]:
            start(pending.pop(), cfg.get("verb", "run"), kill=cfg.get("kill", True))
        time.sleep(0.002)
        now = time.monotonic()
        for child in list(running):
            if child.journaled is None:
                try:
                    if os.read(child.signal_fd, 1):
                        child.journaled = now
                        if child.after_journal is not None:
                            child.kill_at = now + child.after_journal
                except BlockingIOError:
                    pass
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            killed = False
            if pid == 0:
                if child.kill_at is not None and now >= child.kill_at:
                    os.kill(child.pid, signal.SIGKILL)
                    os.waitpid(child.pid, 0)
                    killed = True
                else:
                    continue
            running.remove(child)
            os.close(child.signal_fd)
            order = child.order
            final_run = child.argv[-1] == "(final)"
            code = -signal.SIGKILL if killed else os.waitstatus_to_exitcode(status)
            if killed and not final_run:
                order.kills += 1
            with open(child.out + ".out", encoding="utf-8") as fh:
                stdout = fh.read()
            with open(child.out + ".err", encoding="utf-8") as fh:
                stderr = fh.read()
            record = {
                "argv": child.argv[:1],
                "code": code,
                "killed": killed,
                "seconds": round(now - child.started, 3),
                "journaled": None if child.journaled is None else round(child.journaled - child.started, 3),
                "stderr": stderr[-2000:],
            }
            order.runs.append(record)
            if not killed or final_run:
                # Finished by itself (or hung past ``hang_s``): the order's outcome.
                order.final = {"code": code, "stdout": stdout, "stderr": stderr[-4000:], "hung": killed}
                print(json.dumps(_report(order)), flush=True)
            elif not _journaled(order.state_dir):
                # Killed before the order reached the journal: nothing to resume, so run it again.
                start(order, "run", kill=False)
            else:
                start(order, "resume", kill=rng.random() < kill_resume)


def _report(order: Order) -> dict[str, Any]:
    return {
        "index": order.index,
        "state_dir": order.state_dir,
        "kills": order.kills,
        "runs": order.runs,
        "final": order.final,
    }


if __name__ == "__main__":
    main()
