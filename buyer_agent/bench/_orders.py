"""The order-level benchmarks: per-order overhead, concurrency and resume, on one served sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buyer_agent._errors import BuyerAgentError
from buyer_agent.agent import BuyerAgent
from buyer_agent.bench._stack import BENCH_POLICY, RawBuyer, ServedSandbox, bench_spec
from buyer_agent.journal import Journal
from buyer_agent.market import AsyncMarketClient
from buyer_agent.workflow import OrderState, PairingSession

__all__ = [
    "ConcurrencyFigures",
    "OverheadFigures",
    "ResumeFigures",
    "bench_concurrency",
    "bench_overhead",
    "bench_resume",
]

Progress = Callable[[str], None]

#: Test USDC for the raw flow's own wallet: two rounds of 1,000 orders at up to 2.50 each, and more.
_RAW_WALLET_USDC = 6_000 * 10**6


@dataclass(frozen=True, slots=True)
class OverheadFigures:
    """Mean seconds per order: BuyerAgent end to end, and the same calls made raw."""

    agent_s: float
    raw_s: float

    @property
    def ratio(self) -> float:
        """``agent_s / raw_s`` (target ≤ 1.05)."""
        return self.agent_s / self.raw_s


@dataclass(frozen=True, slots=True)
class ConcurrencyFigures:
    """Orders per second with ``in_flight`` orders at once: the agent's, and the raw flow's."""

    in_flight: int
    orders_per_s: float
    sandbox_orders_per_s: float
    failed: int = 0
    sandbox_failed: int = 0
    first_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{in_flight, orders_per_s, sandbox_orders_per_s, failed, sandbox_failed, first_error}``."""
        return {
            "in_flight": self.in_flight,
            "orders_per_s": self.orders_per_s,
            "sandbox_orders_per_s": self.sandbox_orders_per_s,
            "failed": self.failed,
            "sandbox_failed": self.sandbox_failed,
            "first_error": self.first_error,
        }


@dataclass(frozen=True, slots=True)
class ResumeFigures:
    """Seconds to resume ``orders`` interrupted orders, and to read their journals."""

    orders: int
    resume_s: float
    read_s: float
    confirmed: int = 0

    @property
    def ratio(self) -> float:
        """``resume_s / read_s``."""
        return self.resume_s / self.read_s


class _Sides:
    """An agent and a raw buyer on the same sandbox, both paired and warmed up."""

    def __init__(self, sandbox: ServedSandbox, state_dir: Path) -> None:
        self.sandbox = sandbox
        self.agent = BuyerAgent(sandbox.task.url, **sandbox.agent_kwargs(state_dir))
        info = sandbox.task.info
        self.client = AsyncMarketClient(sandbox.task.url, api_key=info["api_key"])
        market: Any = self.client
        self.pairing = PairingSession.with_platform_key(
            market,
            machine_id=info["machine_id"],
            agent_key=info["wallets"]["evm"]["private_key"],
            delegation_policy=BENCH_POLICY,
        )
        self.raw: RawBuyer | None = None
        self.pairing_id = ""
        self.spec = bench_spec()

    async def start(self) -> None:
        token = await self.pairing.token()
        self.pairing_id = str(self.pairing.pairing_id)
        policy = self.pairing.policy()
        denied = policy.denied_service_ids | policy.denied_skill_keys if policy is not None else frozenset()
        key = self.sandbox.new_wallet(_RAW_WALLET_USDC)
        self.raw = RawBuyer(self.sandbox.task, self.client, token, key, denied)
        await self.agent_order()
        await self.raw_order()

    async def agent_order(self) -> None:
        summary = await self.agent.buy(self.spec)
        if summary.state is not OrderState.CONFIRMED:
            error = summary.error or {}
            raise BuyerAgentError(
                f"benchmark order {summary.order_id} ended {summary.state.value}: "
                f"{error.get('code')}: {error.get('message')}"
            )

    async def raw_order(self) -> None:
        assert self.raw is not None
        status = await self.raw.buy(self.pairing_id)
        if status != "confirmed":
            raise BuyerAgentError(f"raw benchmark order ended {status}")

    async def aclose(self) -> None:
        await self.agent.aclose()
        if self.raw is not None:
            await self.raw.aclose()
        await self.client.aclose()


async def _timed(fn: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def bench_overhead(
    sandbox: ServedSandbox, workdir: Path, n: int, progress: Progress
) -> OverheadFigures:
    """``n`` orders each way, alternating agent and raw so both see the same sandbox state."""
    sides = _Sides(sandbox, workdir / "overhead")
    try:
        await sides.start()
        agent_s = raw_s = 0.0
        for i in range(n):
            agent_s += await _timed(sides.agent_order)
            raw_s += await _timed(sides.raw_order)
            if (i + 1) % max(1, n // 5) == 0:
                progress(f"overhead: {i + 1}/{n} orders each way")
    finally:
        await sides.aclose()
    return OverheadFigures(agent_s=agent_s / n, raw_s=raw_s / n)


#: The order of the rounds at each level: agent, raw, raw, agent. A machine that speeds up or slows
#: down during a level (another process's load, the journal and the market growing) then weighs on
#: both sides alike, where one round each would hand all of a drift to the side that ran second.
ROUNDS = ("agent", "raw", "raw", "agent")


async def bench_concurrency(
    sandbox: ServedSandbox, workdir: Path, levels: tuple[int, ...], progress: Progress
) -> list[ConcurrencyFigures]:
    """Orders per second at each level of orders in flight, agent (one process) and raw, in :data:`ROUNDS`."""
    out = []
    for level in levels:
        sides = _Sides(sandbox, workdir / f"concurrency-{level}")
        seconds = {"agent": 0.0, "raw": 0.0}
        failed = {"agent": 0, "raw": 0}
        first_error: str | None = None
        try:
            await sides.start()
            for side in ROUNDS:
                took, fails, error = await _timed_gather(
                    sides.agent_order if side == "agent" else sides.raw_order, level
                )
                seconds[side] += took
                failed[side] += fails
                first_error = first_error or error
        finally:
            await sides.aclose()
        rounds = {side: ROUNDS.count(side) for side in seconds}
        figures = ConcurrencyFigures(
            level,
            (rounds["agent"] * level - failed["agent"]) / seconds["agent"],
            (rounds["raw"] * level - failed["raw"]) / seconds["raw"],
            failed["agent"],
            failed["raw"],
            first_error,
        )
        progress(
            f"concurrency: {level} in flight: {figures.orders_per_s:.1f} orders/s "
            f"(raw {figures.sandbox_orders_per_s:.1f}); failed {failed['agent']} (raw {failed['raw']})"
            + (f": {figures.first_error}" if figures.first_error else "")
        )
        out.append(figures)
    return out


async def _timed_gather(fn: Callable[[], Awaitable[None]], n: int) -> tuple[float, int, str | None]:
    """Seconds for ``n`` runs of ``fn`` side by side, how many failed, and the first failure."""
    started = time.perf_counter()
    results = await asyncio.gather(*(fn() for _ in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, Exception):
            raise error
    first = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
    return elapsed, len(errors), first


async def _gather(fn: Callable[[], Awaitable[None]], n: int) -> None:
    tasks = [asyncio.ensure_future(fn()) for _ in range(n)]
    try:
        await asyncio.gather(*tasks)
    finally:
        # One failure must not leave the others running against a client about to be closed.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def bench_resume(sandbox: ServedSandbox, workdir: Path, n: int, progress: Progress) -> ResumeFigures:
    """Interrupt ``n`` orders once paid (a process stopped mid-order), then resume them all in a new one.

    The orders are driven step by step to ``paid`` and the agent is closed; a fresh agent over the
    same journal then resumes every one to ``confirmed`` (execute and confirm against the market).
    The reference is the time to read the same orders' rows and events from the journal.
    """
    state_dir = workdir / "resume"
    first = BuyerAgent(sandbox.task.url, **sandbox.agent_kwargs(state_dir))
    spec = bench_spec()

    async def to_paid() -> None:
        order_id = await first.submit(spec)
        for step in (first.pair, first.search, first.choose, first.place_order, first.pay):
            await step(order_id)

    try:
        await to_paid()  # pairs once, before orders run side by side
        batch = 50
        for start in range(1, n, batch):
            await _gather(to_paid, min(batch, n - start))
        progress(f"resume: {n} orders interrupted after payment")
    finally:
        await first.aclose()
    journal = Journal.open_dir(state_dir)
    try:
        started = time.perf_counter()
        for rec in journal.orders():
            journal.events(rec.order_id)
        read_s = time.perf_counter() - started
    finally:
        journal.close()
    second = BuyerAgent(sandbox.task.url, **sandbox.agent_kwargs(state_dir))
    try:
        started = time.perf_counter()
        summaries = await second.resume()
        resume_s = time.perf_counter() - started
    finally:
        await second.aclose()
    done = sum(1 for s in summaries if s.state is OrderState.CONFIRMED)
    progress(f"resume: {done} of {n} orders confirmed in {resume_s:.2f} s")
    return ResumeFigures(orders=n, resume_s=resume_s, read_s=read_s, confirmed=done)
