"""Shared by the dashboard tests: a served sandbox, a proxy that makes it hostile, runs, the ui, Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import cli_fork
from loopback_proxy import LoopbackProxy

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The service id the hostile market serves instead of ``svc_hash_budget`` (what cheapest picks).
REAL_SERVICE = "svc_hash_budget"
HOSTILE = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>svc_hash_budget"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any PEAQOS_ / BUYER_AGENT_ variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python -m buyer_agent ARGS``, forked off a process that imported it once (``tests/cli_fork.py``)."""
    return cli_fork.run(*args, env=env if env is not None else clean_env(), timeout=timeout)


@contextmanager
def served(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    """A long-running ``python -m buyer_agent ARGS`` whose first stdout line is JSON; stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env if env is not None else clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"{args[0]} printed no JSON line"
        yield json.loads(line), proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def market_env(info: dict[str, Any]) -> dict[str, str]:
    """The environment pointing the CLI's keys at a served sandbox."""
    return clean_env(
        PEAQOS_API_KEY=info["api_key"],
        PEAQOS_MACHINE_ID=info["machine_id"],
        BUYER_AGENT_EVM_KEY=info["wallets"]["evm"]["private_key"],
        BUYER_AGENT_EVM_RPC=info["evm"]["rpc_url"],
        BUYER_AGENT_SOLANA_KEY=info["wallets"]["solana"]["secret_key"],
        BUYER_AGENT_SOLANA_RPC=info["solana"]["rpc_url"],
    )


class HostileMarket(LoopbackProxy):
    """The sandbox with one service renamed to markup: answers say ``HOSTILE``, requests are mapped back."""

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        """Forward with the service id mapped back, answer with it rewritten."""
        body = self.body(req)
        if body is not None:
            body = body.replace(HOSTILE.encode(), REAL_SERVICE.encode())
        status, ctype, data = self.forward(req.command, req.path, body, dict(req.headers.items()))
        # The id is a JSON string in every answer; the hostile text needs no JSON escaping.
        self.reply(req, status, ctype, data.replace(f'"{REAL_SERVICE}"'.encode(), f'"{HOSTILE}"'.encode()))


def run_orders(info: dict[str, Any], hostile: str, state_dir: Path, root: Path) -> dict[str, str]:
    """The three orders the pages are read over, run through the command line into ``state_dir``.

    A confirmed one bought through ``hostile`` (the proxy naming its service ``<script>…``), a
    disputed one the market refunds (``examples/dispute.yaml``), and one held in
    ``awaiting_approval``; their ids by final state.
    """
    env = market_env(info)
    orders: dict[str, str] = {}
    hold = root / "hold.yaml"
    hold.write_text(
        (ROOT / "examples" / "task.yaml")
        .read_text()
        .replace('budget: "2.50 USDC"', 'budget: "2.50 USDC"\napproval_threshold: "0.10 USDC"')
    )
    for name, task, market, code in (
        ("confirmed", "examples/task.yaml", hostile, 0),
        ("refunded", "examples/dispute.yaml", info["url"], 3),
        ("awaiting_approval", str(hold), info["url"], 1),
    ):
        proc = cli("run", task, "--json", "--market", market, "--state-dir", str(state_dir), env=env)
        assert proc.returncode == code, proc.stderr
        out = json.loads(proc.stdout)
        assert out["state"] == name
        orders[name] = out["order_id"]
    return orders


def networks_file(info: dict[str, Any], path: Path, explorer: str) -> Path:
    """A chain profile for the sandbox's chain with an explorer, so a payment links to it."""
    path.write_text(
        f'networks:\n  local-anvil:\n    chain: "{info["evm"]["chain"]}"\n    explorer: "{explorer}"\n'
    )
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    """A fresh headless Chromium (Debian's) driven by Playwright: a context with its own profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            # Playwright passes the fresh profile as --user-data-dir itself (and refuses it in args).
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
