"""The rails' node transports: a silent node is said within seconds, an endless answer is not read to the end.

Found by the audit of issue 19: with ``rpc.evm`` on a node that accepts and never answers, ``run``
was silent for 30 s before its first ``wait:`` line (and again on every round, 2 min 43 s in all);
a node streaming an endless answer took the process's memory. Loopback servers only.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_stalls import endless, silent
from solana.rpc.async_api import AsyncClient

from buyer_agent._errors import RailError
from buyer_agent.rails import EvmRail, SolanaRail
from buyer_agent.rails._evm_rpc import EvmRpc
from buyer_agent.rails._nodes import SolanaNodeProvider

ROOT = Path(__file__).resolve().parents[2]
KEY = "0x" + "11" * 32


def waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "buyer_agent.wait"]


def test_a_silent_evm_node_is_said_after_two_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="buyer_agent.wait")

    async def ask(url: str) -> None:
        rpc = EvmRpc(url, timeout_s=3)
        try:
            await rpc.call("eth_chainId")
        finally:
            await rpc.aclose()

    with silent() as url, pytest.raises(RailError) as caught:
        asyncio.run(ask(url))
    assert caught.value.retryable  # a timeout: the node may answer a later try
    (line,) = waits(caplog)
    assert "the EVM node's answer to eth_chainId" in line and "no answer after 2 s" in line


def test_a_silent_solana_node_is_said_after_two_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="buyer_agent.wait")

    async def ask(url: str) -> None:
        client = AsyncClient(url, timeout=3, http2=False)
        client._provider = SolanaNodeProvider(url, timeout=3, http2=False, max_transport_retries=0)
        try:
            await client.get_genesis_hash()
        finally:
            await client.close()

    with silent() as url, pytest.raises(Exception):  # noqa: B017 - solana-py's wrapped timeout
        asyncio.run(ask(url))
    assert any("the Solana node's answer" in w and "no answer after 2 s" in w for w in waits(caplog))


def test_an_endless_evm_answer_is_read_only_up_to_the_limit() -> None:
    async def ask(url: str) -> None:
        rail = EvmRail(url, KEY)
        try:
            await rail.node_chain()
        finally:
            await rail.aclose()

    with endless() as url, pytest.raises(RailError, match="larger than the limit of 8 MiB"):
        asyncio.run(ask(url))


def test_an_endless_solana_answer_is_read_only_up_to_the_limit() -> None:
    from solders.keypair import Keypair

    async def ask(url: str) -> None:
        rail = SolanaRail(url, str(Keypair()), chain="solana:x")
        try:
            await rail._check_genesis()
        finally:
            await rail.aclose()

    with endless() as url, pytest.raises(RailError, match="larger than the limit of 8 MiB"):
        asyncio.run(ask(url))


def test_run_says_within_seconds_that_it_waits_for_a_silent_node(tmp_path: Path) -> None:
    # The market is silent too: the agent asks the node first which chain it is on (the task names
    # one: base), before pairing.
    with silent() as node, silent() as market:
        task = tmp_path / "task.yaml"
        task.write_text(
            f"market: {market}\nmachine_id: m\nkeys: {{api_key: '${{K}}', evm: '${{E}}'}}\n"
            f"rpc: {{evm: '{node}'}}\ntask: {{service_type: compute.marketplace}}\nbudget: \"1 USDC\"\n"
            "payment: {chain: base}\n",
            encoding="utf-8",
        )
        argv = ["run", str(task), "--state-dir", str(tmp_path / "s"), "--timeout", "8"]
        proc = subprocess.run(
            [sys.executable, "-m", "buyer_agent", *argv],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "K": "k", "E": KEY, "HOME": str(tmp_path)},
            timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    assert "wait: waiting for the EVM node's answer to eth_chainId" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
