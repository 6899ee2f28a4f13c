"""Shared by the reliability suite: a served sandbox, funded wallets, task files and on-chain counts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cli_fork import clean_env

ROOT = Path(__file__).resolve().parents[2]
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ERC20_MINT = "0x40c10f19"  # mint(address,uint256)
# USDC a fresh wallet gets: enough for a few orders at the sandbox's prices.
WALLET_USDC = 10 * 10**6

TASK_TEMPLATE = """\
market: sandbox
task:
  service_type: compute.marketplace
  task_type: hash
  operation: sha256
  input: {{data: "reliability {n}"}}
  region: eu-west
budget: "2.50 USDC"
strategy: cheapest
payment:
  rail: {rail}
  chain: {chain}
  max_fee_per_gas_gwei: 50
acceptance:
  outcome: completed
deadlines: {{quote: 60, payment: 120, execution: 60, refund: 60}}
"""


WORKER = Path(__file__).with_name("crash_worker.py")
HEX_KEY = re.compile(r"[0-9a-f]{64}")
HEX_RUN = re.compile(r"[0-9a-fA-F]{64,}")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def fork_cli(info: dict[str, Any], orders: list[dict[str, Any]], **cfg: Any) -> list[dict[str, Any]]:
    """Run CLI orders through the fork server (``crash_worker.py``); one report per order.

    Each order is ``{"state_dir", "key", "task"}`` plus optional ``"url"`` (the market) and ``"env"``.
    ``cfg`` overrides the worker's settings (``kill``, ``seed``, windows, ``parallel``, ``hang_s``).
    """
    config = {
        "env": market_env(info),
        "url": info["url"],
        "orders": orders,
        "kill": False,
        "parallel": 4,
        "hang_s": 90.0,
        "early": 0.0,
        "pre_window": 0.0,
        "post_window": 0.0,
        **cfg,
    }
    done = subprocess.run(
        [sys.executable, str(WORKER)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return sorted(reports, key=lambda r: r["index"])


def secret_hits(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Where any secret (or any JWT-shaped token) appears in ``texts``: ``["<text> holds <secret>"]``.

    Hex keys are matched inside every run of hex digits (with or without ``0x``, any case); other
    secrets by plain substring search.
    """
    hex_keys: dict[str, str] = {}
    plain: dict[str, str] = {}
    for name, secret in secrets.items():
        bare = secret.lower().removeprefix("0x")
        if HEX_KEY.fullmatch(bare):
            hex_keys[bare] = name
        elif secret:
            plain[name] = secret
    hits = []
    for where, text in texts.items():
        for run in HEX_RUN.findall(text):
            run = run.lower()
            found = hex_keys.get(run) if len(run) == 64 else next((k for k in hex_keys if k in run), None)
            if found is not None:
                hits.append(f"{where} holds {hex_keys.get(found, found)}")
        hits += [f"{where} holds {name}" for name, secret in plain.items() if secret in text]
        if JWT.search(text):
            hits.append(f"{where} holds a JWT-shaped token")
    return hits


def market_env(
    info: dict[str, Any], evm_key: str | None = None, evm_rpc: str | None = None
) -> dict[str, str]:
    """The variables pointing the CLI's keys and RPCs at a served sandbox (the market URL not included)."""
    return {
        "PEAQOS_API_KEY": info["api_key"],
        "PEAQOS_MACHINE_ID": info["machine_id"],
        "BUYER_AGENT_EVM_KEY": evm_key or info["wallets"]["evm"]["private_key"],
        "BUYER_AGENT_EVM_RPC": evm_rpc or info["evm"]["rpc_url"],
        "BUYER_AGENT_SOLANA_KEY": info["wallets"]["solana"]["secret_key"],
        "BUYER_AGENT_SOLANA_RPC": info["solana"]["rpc_url"],
    }


def write_task(path: Path, n: int = 0, *, rail: str = "wallet", chain: str = "evm") -> Path:
    """A task file buying one hash over ``rail`` on ``chain``."""
    path.write_text(TASK_TEMPLATE.format(n=n, rail=rail, chain=chain), encoding="utf-8")
    return path


@contextmanager
def served_sandbox(log_dir: Path, *extra: str) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    """``python -m buyer_agent sandbox`` in its own process; its JSON line and the process.

    Market state stays in memory (no ``--state-dir``): with one, the sandbox rewrites its whole state
    file on every write, which grows each call's cost with the number of orders.
    """
    log = (log_dir / "sandbox.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "buyer_agent", "sandbox", *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the sandbox printed no JSON line: " + (log_dir / "sandbox.log").read_text()
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
        log.close()


def fund_wallets(info: dict[str, Any], count: int, usdc: int = WALLET_USDC) -> list[tuple[str, str]]:
    """``count`` fresh EVM wallets with gas money (``anvil_setBalance``) and ``usdc`` minted test USDC.

    The token's owner is anvil's first (unlocked) account, so minting needs no key here.
    """
    from eth_account import Account
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    token = Web3.to_checksum_address(info["evm"]["token_address"])
    owner = w3.eth.accounts[0]
    wallets = [Account.create() for _ in range(count)]
    hashes = []
    for wallet in wallets:
        w3.provider.make_request("anvil_setBalance", [wallet.address, hex(10**18)])  # type: ignore[arg-type]
        if usdc:
            data = ERC20_MINT + wallet.address.lower()[2:].rjust(64, "0") + hex(usdc)[2:].rjust(64, "0")
            hashes.append(w3.eth.send_transaction({"from": owner, "to": token, "data": data, "gas": 100_000}))
    for h in hashes:
        assert w3.eth.wait_for_transaction_receipt(h, timeout=60)["status"] == 1
    return [(w.address, w.key.to_0x_hex()) for w in wallets]


def payments_by_sender(info: dict[str, Any]) -> dict[str, int]:
    """Token Transfer logs on chain, counted by sender (lower-case address): direct and escrow payments."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    logs = w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": Web3.to_checksum_address(info["evm"]["token_address"]),
            "topics": [TRANSFER_TOPIC],
        }
    )
    counts: dict[str, int] = {}
    for log in logs:
        sender = "0x" + bytes(log["topics"][1])[-20:].hex()
        counts[sender] = counts.get(sender, 0) + 1
    return counts


def journal_text(state_dir: Path) -> str:
    """Every row of every table of the journal in ``state_dir``, as text (for secret scans)."""
    import sqlite3

    db = state_dir / "buyer_agent.db"
    if not db.exists():
        return ""
    conn = sqlite3.connect(str(db))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))
    finally:
        conn.close()


def orders_in(state_dir: Path) -> list[tuple[str, str]]:
    """``(order_id, state)`` of every order journaled in ``state_dir``."""
    import sqlite3

    db = state_dir / "buyer_agent.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(str(db))
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT order_id, state FROM orders")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def make_orders(
    info: dict[str, Any], base: Path, count: int, **extra: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    wallets = fund_wallets(info, count)
    orders = []
    for i, (_addr, key) in enumerate(wallets):
        state_dir = base / f"order-{i}"
        state_dir.mkdir(parents=True)
        task = write_task(state_dir / "t.yaml", i)
        orders.append({"state_dir": str(state_dir), "key": key, "task": str(task), **extra})
    return orders, [addr.lower() for addr, _ in wallets]


def final_states(report: dict[str, Any]) -> list[str]:
    return [state for _, state in orders_in(Path(report["state_dir"]))]


def verify_journals(report: dict[str, Any]) -> None:
    from buyer_agent.journal import Journal

    journal = Journal.open_dir(report["state_dir"])
    try:
        for order_id, _ in orders_in(Path(report["state_dir"])):
            journal.verify(order_id)
    finally:
        journal.close()


def assert_no_secrets(info: dict[str, Any], reports: list[dict[str, Any]], keys: list[str]) -> None:
    texts: dict[str, str] = {}
    for r in reports:
        texts[f"{r['state_dir']} journal"] = journal_text(Path(r["state_dir"]))
        texts[f"{r['state_dir']} out"] = r["final"]["stdout"] + r["final"]["stderr"]
        for i, run in enumerate(r["runs"]):
            texts[f"{r['state_dir']} run {i}"] = run["stderr"]
    secrets = {"api key": info["api_key"], **{f"key {i}": k for i, k in enumerate(keys)}}
    assert secret_hits(texts, secrets) == []


def _all_pages(api: Any, path: str, **params: str) -> list[dict[str, Any]]:
    """Every item of a market list, page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": "500", **({"cursor": cursor} if cursor else {})}
        page = api.get(path, params=query).json()
        items += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            return items


def market_ledger(info: dict[str, Any], agents: list[str]) -> dict[str, dict[str, Any]]:
    """What the market itself holds for each agent (lower-case address), read through its platform API.

    ``{"orders": [market order ids under any pairing of that agent], "executions": {order id: how many
    market.order.executed audit events}}`` — the market's own count, never the journal's.
    """
    import httpx

    with httpx.Client(
        base_url=info["url"] + "/api/v1", headers={"x-api-key": info["api_key"]}, timeout=60
    ) as api:
        pairings = _all_pages(api, f"/machines/{info['machine_id']}/agent-pairings")
        orders = _all_pages(api, "/market/orders", machineId=info["machine_id"])
        executed = _all_pages(api, "/audit-events", type="market.order.executed")
    owner = {p["id"]: p["agentAddress"].lower() for p in pairings}
    runs: dict[str, int] = {}
    for event in executed:
        runs[event["resourceId"]] = runs.get(event["resourceId"], 0) + 1
    ledger: dict[str, dict[str, Any]] = {a: {"orders": [], "executions": {}} for a in agents}
    for order in orders:
        agent = owner.get(order["agentPairingId"])
        if agent in ledger:
            ledger[agent]["orders"].append(order["id"])
            ledger[agent]["executions"][order["id"]] = runs.get(order["id"], 0)
    return ledger


def journaled_market_orders(state_dir: Path) -> list[str]:
    """The market order id of every order journaled in ``state_dir`` (read through the one fold)."""
    from buyer_agent.journal import Journal
    from buyer_agent.workflow import fold

    journal = Journal.open_dir(state_dir)
    try:
        ids = [fold(journal.events(order_id)).market_order_id for order_id, _ in orders_in(state_dir)]
    finally:
        journal.close()
    return [i for i in ids if i is not None]


def market_problems(info: dict[str, Any], reports: list[dict[str, Any]], agents: list[str]) -> list[str]:
    """Each order's market-side count: one market order per journaled order, its service run once.

    ``agents[i]`` is the wallet (the agent's address) of ``reports[i]``; every order has its own.
    """
    ledger = market_ledger(info, agents)
    problems = []
    for report, agent in zip(reports, agents, strict=True):
        journaled = journaled_market_orders(Path(report["state_dir"]))
        held = ledger[agent]
        if sorted(held["orders"]) != sorted(journaled):
            problems.append(
                f"{report['state_dir']}: the market holds orders {held['orders']} for journaled {journaled}"
            )
        for order_id in journaled:
            if held["executions"].get(order_id) != 1:
                problems.append(
                    f"{report['state_dir']}: {order_id} executed {held['executions'].get(order_id)} times"
                )
    return problems
