"""Pairing against the sandbox: rotate before expiry, renew after a policy change or a revoke, single-flight.

The sandbox binds each session token to the pairing's current session and delegation-policy hash, so
a rotated session invalidates the token before it and a policy change invalidates every token.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_workflow_e2e import Stack, buyer, run, sandbox, spec, transfers_from

from buyer_agent._errors import OrchestrationApiError
from buyer_agent._redact import Secret
from buyer_agent.journal import Journal
from buyer_agent.workflow import OrderState, PairingSession
from buyer_agent.workflow._pairing import _jwt_expiry

__all__ = ["sandbox"]

pytestmark = pytest.mark.chains

POLICY = {"per_transaction_limit": "5", "daily_spend_limit": "100", "currency": "USDC"}
SEARCH = {"service_type": "compute.marketplace", "operation": "sha256"}


class Counting:
    """The market client, counting the pairing writes that go through it."""

    def __init__(self, market: Any) -> None:
        self._market = market
        self.sessions = 0
        self.pairings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._market, name)

    async def create_agent_pairing_session(self, *args: Any, **kwargs: Any) -> Any:
        self.sessions += 1
        return await self._market.create_agent_pairing_session(*args, **kwargs)

    async def create_agent_pairing(self, *args: Any, **kwargs: Any) -> Any:
        self.pairings += 1
        return await self._market.create_agent_pairing(*args, **kwargs)


async def _accepted(market: Any, info: dict[str, Any], pairing_id: str, token: Secret) -> str | None:
    """None when the market takes ``token`` for a search, else the error code it answers."""
    params = {**SEARCH, "machine_id": info["machine_id"], "agent_pairing_id": pairing_id}
    try:
        await market.search_market(params, token)
    except OrchestrationApiError as exc:
        return exc.code
    return None


def test_the_session_is_rotated_before_it_expires(sandbox: dict[str, Any]) -> None:
    offset = timedelta(0)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    async def go() -> None:
        nonlocal offset
        async with _operator(sandbox) as client:
            market, session = _session(client, sandbox, clock=clock)
            first = await session.token()
            pairing_id = session.pairing_id
            assert pairing_id is not None and market.pairings == 1
            assert await session.token() is first  # far from expiry: kept
            expires = _jwt_expiry(first)
            assert expires is not None
            offset = expires - datetime.now(UTC) - timedelta(seconds=30)  # inside the 60 s margin
            second = await session.token()
            assert second.reveal() != first.reveal()
            assert (session.pairing_id, market.pairings, market.sessions) == (pairing_id, 1, 1)
            assert await _accepted(client, sandbox, pairing_id, second) is None
            # The rotated-out token no longer works: the session was replaced, not added.
            assert await _accepted(client, sandbox, pairing_id, first) == "AGENT_AUTH_INVALID"

    run(go())


def _wire(**change: str) -> dict[str, Any]:
    """The policy as the operator sends it (amounts are JSON numbers)."""
    policy = {**POLICY, **change}
    return {k: (v if k == "currency" else Decimal(v)) for k, v in policy.items()}


def _operator(info: dict[str, Any]) -> Any:
    from buyer_agent.market import AsyncMarketClient

    return AsyncMarketClient(info["url"], api_key=info["api_key"])


def _session(client: Any, info: dict[str, Any], **kwargs: Any) -> tuple[Counting, PairingSession]:
    """The demo agent's pairing session over ``client``, counting the pairing writes."""
    market = Counting(client)
    session = PairingSession.with_platform_key(
        market,
        machine_id=info["machine_id"],
        agent_key=info["wallets"]["evm"]["private_key"],
        delegation_policy=POLICY,
        **kwargs,
    )
    return market, session


def test_a_policy_change_mid_order_renews_the_token_and_the_order_completes(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    db = tmp_path / "policy.db"
    before = transfers_from(sandbox, buyer(sandbox))

    async def go() -> tuple[Any, str, str, Any]:
        stack = Stack(sandbox, db, POLICY)
        try:
            order_id = await stack.runner.submit(spec())
            await stack.runner.step(order_id, "pair")
            await stack.runner.step(order_id, "search")
            old = await stack.pairing.token()
            pairing_id = str(stack.pairing.pairing_id)
            async with _operator(sandbox) as operator:
                await operator.update_agent_pairing(
                    sandbox["machine_id"],
                    pairing_id,
                    {"delegation_policy": _wire(daily_spend_limit="50")},
                )
                # The operator's change invalidates the agent's token at once.
                assert await _accepted(operator, sandbox, pairing_id, old) == "AGENT_AUTH_INVALID"
            summary = await stack.runner.drive(order_id)
            new = await stack.pairing.token()
            return summary, old.reveal(), new.reveal(), stack.pairing.policy()
        finally:
            await stack.aclose()

    summary, old, new, policy = run(go())
    assert summary.state is OrderState.CONFIRMED, summary.error
    assert new != old
    assert policy is not None and policy.daily_spend_limit is not None
    assert policy.daily_spend_limit.to_decimal() == 50  # the renewed session carries the new policy
    assert transfers_from(sandbox, buyer(sandbox)) == before + 1
    assert Journal(db).verify(summary.order_id) > 0


def test_a_revoked_pairing_is_replaced_by_a_new_pairing(sandbox: dict[str, Any]) -> None:
    async def go() -> None:
        async with _operator(sandbox) as client:
            market, session = _session(client, sandbox)
            old = await session.token()
            old_id = str(session.pairing_id)
            await client.revoke_agent_pairing(sandbox["machine_id"], old_id)
            code = await _accepted(client, sandbox, old_id, old)
            assert code is not None
            await session.refresh(code, old)
            new = await session.token()
            assert session.pairing_id != old_id and market.pairings == 2
            assert await _accepted(client, sandbox, str(session.pairing_id), new) is None

    run(go())


def test_concurrent_renewals_are_single_flight(sandbox: dict[str, Any]) -> None:
    async def go() -> None:
        async with _operator(sandbox) as client:
            market, session = _session(client, sandbox)
            rejected = await session.token()
            pairing_id = str(session.pairing_id)
            # Eight orders see the same token rejected at once: one rotation serves them all.
            await asyncio.gather(*(session.refresh("AGENT_AUTH_INVALID", rejected) for _ in range(8)))
            assert (market.pairings, market.sessions) == (1, 1)
            tokens = {(await session.token()).reveal() for _ in range(3)}
            assert len(tokens) == 1 and rejected.reveal() not in tokens
            assert await _accepted(client, sandbox, pairing_id, Secret(tokens.pop())) is None

    run(go())


def test_orders_resumed_side_by_side_after_a_policy_change_all_confirm(
    sandbox: dict[str, Any], tmp_path: Path
) -> None:
    # Commit c84ebf7: side by side, each order rotated the session and invalidated the others' token;
    # an execute refused that way was disputed. One renewal must serve every order.
    db = tmp_path / "side.db"
    before = transfers_from(sandbox, buyer(sandbox))

    async def go() -> tuple[list[Any], int, int]:
        stack = Stack(sandbox, db, POLICY)
        counting = Counting(stack.market)
        stack.pairing._market = counting
        try:
            ids = [await stack.runner.submit(spec()) for _ in range(3)]
            for order_id in ids:
                await stack.runner.step(order_id, "pair")
            async with _operator(sandbox) as operator:
                await operator.update_agent_pairing(
                    sandbox["machine_id"],
                    str(stack.pairing.pairing_id),
                    {"delegation_policy": _wire(daily_spend_limit="60")},
                )
            assert (counting.pairings, counting.sessions) == (1, 0)  # paired once for all three
            summaries = await asyncio.gather(*(stack.runner.drive(i) for i in ids))
            return list(summaries), counting.sessions, counting.pairings - 1
        finally:
            await stack.aclose()

    summaries, sessions, pairings = run(go())
    assert [s.state for s in summaries] == [OrderState.CONFIRMED] * 3, [s.error for s in summaries]
    assert (sessions, pairings) == (1, 0)
    assert transfers_from(sandbox, buyer(sandbox)) == before + 3
