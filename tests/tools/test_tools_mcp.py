"""``python -m buyer_agent mcp`` as a subprocess, driven by the official ``mcp`` client over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from buyer_agent.journal import DB_NAME
from buyer_agent.tools import TOOLS

pytestmark = pytest.mark.chains
ROOT = Path(__file__).resolve().parents[2]


def _result(res: Any) -> dict[str, Any]:
    (block,) = res.content
    data: dict[str, Any] = json.loads(block.text)
    assert res.is_error == ("error" in data)
    if res.structured_content is not None:
        assert res.structured_content == data
    return data


async def _session(
    state_dir: Path, errlog: Any, task: bool = True, env_state_dir: Path | None = None
) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    # With a task file the state dir is given by --state-dir (over $BUYER_AGENT_STATE_DIR pointing
    # elsewhere); without, through the environment only, as an MCP client's config would set it.
    flag = ["--state-dir", str(state_dir)] if task else []
    params = StdioServerParameters(
        command=sys.executable,
        # Without --task the embedded sandbox buys the built-in task (the model gives the input).
        args=[
            "-m",
            "buyer_agent",
            "mcp",
            *(["--task", str(ROOT / "examples" / "task.yaml")] if task else []),
            *flag,
        ],
        env={
            "BUYER_AGENT_STATE_DIR": str(env_state_dir or state_dir),
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
        cwd=ROOT,
    )
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.server_info.name == "buyer-agent"
        listed = await session.list_tools()
        assert [t.name for t in listed.tools] == [t.name for t in TOOLS]
        for tool, spec in zip(listed.tools, TOOLS, strict=True):
            assert tool.input_schema == dict(spec.parameters)
            assert tool.annotations is not None and bool(tool.annotations.read_only_hint) == spec.read_only

        search_args = {} if task else {"input": {"data": "hello from mcp"}}
        found = _result(await session.call_tool("search_market", search_args))
        assert found["state"] == "searched" and found["recommended"], found
        order_id = found["order_id"]

        refused = _result(await session.call_tool("pay_order", {"order_id": order_id, "amount": "0.01"}))
        assert refused["error"]["code"] == "ARGUMENT_REFUSED"
        early = _result(await session.call_tool("confirm_order", {"order_id": order_id}))
        assert early["error"]["code"] == "STEP_OUT_OF_ORDER" and early["error"]["state"] == "searched"

        listed_cands = _result(await session.call_tool("list_candidates", {"order_id": order_id}))
        quote_id = listed_cands["recommended"]
        # The candidates come with the strategy's reasons and its decision line (cheapest here).
        assert listed_cands["strategy_reason"] == "cheapest eligible quote: 0.80 USDC (svc_hash_budget)"
        (top,) = [c for c in listed_cands["candidates"] if c["quote_id"] == quote_id]
        assert "price 0.80 USDC, the lowest" in top["reasons"]
        chosen = _result(
            await session.call_tool("choose_quote", {"order_id": order_id, "quote_id": quote_id})
        )
        assert chosen["state"] == "quoted"
        for step, state in (
            ("place_order", "ordered"),
            ("pay_order", "paid"),
            ("execute_order", "executed"),
            ("confirm_order", "confirmed"),
        ):
            got = _result(await session.call_tool(step, {"order_id": order_id}))
            assert got["state"] == state, got
        assert got["payment"]["amount"] == "0.80" and got["outcome"]["status"] == "completed"

        orders = _result(await session.call_tool("list_orders", {}))
        assert orders["orders"][0]["order_id"] == order_id
        unknown = _result(await session.call_tool("transfer", {"to": "0xabc"}))
        assert unknown["error"]["code"] == "UNKNOWN_TOOL"


@pytest.mark.parametrize("task", [True, False], ids=["task-file", "built-in-sandbox-task"])
def test_the_mcp_server_lists_the_tools_and_completes_an_order(tmp_path: Path, task: bool) -> None:
    state_dir = tmp_path / "state"
    elsewhere = tmp_path / "env-state"
    log = tmp_path / "server.log"
    with log.open("w") as errlog:
        run = _session(state_dir, errlog, task, env_state_dir=elsewhere if task else None)
        asyncio.run(asyncio.wait_for(run, timeout=120))
    # The order is in the journal --state-dir (with a task file) or the environment pointed at.
    assert (state_dir / DB_NAME).exists()
    assert not (elsewhere / DB_NAME).exists()
    assert "Traceback" not in log.read_text()


def test_without_the_mcp_package_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['mcp'] = None\n"
        "from buyer_agent.cli import main\n"
        f"sys.exit(main(['mcp', '--state-dir', {str(tmp_path)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert "pip install 'buyer-agent[mcp]'" in done.stderr


def test_stdout_carries_only_protocol_messages(tmp_path: Path) -> None:
    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        # Starting the embedded sandbox (chains, market) happens here: none of it may reach stdout.
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "search_market", "arguments": {}},
        },
    ]
    messages: list[dict[str, Any]] = []
    with (
        (tmp_path / "server.log").open("w") as errlog,
        subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", "mcp", "--task", str(ROOT / "examples" / "task.yaml")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            text=True,
            cwd=ROOT,
            env={**os.environ, "BUYER_AGENT_STATE_DIR": str(tmp_path / "state")},
        ) as proc,
    ):
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
            proc.stdin.flush()
            # Every line is a JSON-RPC message, up to the answer to the tool call.
            while not any(m.get("id") == 2 for m in messages):
                line = proc.stdout.readline()
                assert line, "the server closed stdout before answering"
                messages.append(json.loads(line))
            proc.stdin.close()
            rest = proc.stdout.read()
            assert proc.wait(timeout=60) == 0
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    assert rest.strip() == ""
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    answers = {m["id"]: m for m in messages if "id" in m}
    assert answers[1]["result"]["serverInfo"]["name"] == "buyer-agent"
    found = answers[2]["result"]["structuredContent"]
    assert found["state"] == "searched" and found["order_id"].startswith("ord_")
