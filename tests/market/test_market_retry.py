"""Retries: failed reads are repeated, writes only when repeating them cannot act twice.

An ``Idempotency-Key`` does not make a write safe to repeat (issue 18): only the writes documented
idempotent by their meaning are, and any request the market provably did not process (no connection,
429).

The policy's ``sleep`` hook records the waits instead of sleeping, so nothing here takes real time.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import market_support as ms
import pytest

from buyer_agent._errors import (
    OrchestrationApiError,
    OrchestrationNetworkError,
    OrchestrationOutcomeUnknown,
    OrchestrationServerError,
)
from buyer_agent._waits import ATTEMPT
from buyer_agent.market import AsyncMarketClient, RetryPolicy, _transport
from buyer_agent.market._retry import call_with_retries

Call = Callable[[AsyncMarketClient], Awaitable[Any]]

UNAVAILABLE = httpx.Response(503, json={"error": {"code": "SERVICE_UNAVAILABLE", "message": "busy"}})
ORDER_BODY = {"machine_id": ms.MACHINE, "agent_pairing_id": ms.PAIRING, "service_id": ms.SERVICE}

GET_ORDER: Call = lambda m: m.get_market_order(ms.ORDER)  # noqa: E731
CREATE_ORDER: Call = lambda m: m.create_market_order(ORDER_BODY, ms.TOKEN)  # noqa: E731
CREATE_ORDER_WITH_KEY: Call = lambda m: m.create_market_order(  # noqa: E731
    ORDER_BODY, ms.TOKEN, options={"idempotency_key": "order-7f3a"}
)


def attempt(market: ms.Market, call: Call, policy: RetryPolicy) -> Any:
    """The call's result or raised exception, under ``policy``."""

    async def go() -> Any:
        async with ms.client_for(market, retry=policy) as client:
            try:
                return await call(client)
            except Exception as exc:  # inspected by the test
                return exc

    return asyncio.run(go())


def test_a_read_answered_503_then_200_succeeds() -> None:
    sleeps = ms.Sleeps()
    market = ms.Market(UNAVAILABLE, (200, ms.item(ms.ORDER_ITEM)))
    result = attempt(market, GET_ORDER, ms.retrying(sleeps))
    assert result.item.id == ms.ORDER
    assert len(market.requests) == 2
    assert len(sleeps.waits) == 1 and 0 <= sleeps.waits[0] <= 4.25


def test_429_with_retry_after_waits_exactly_that_long() -> None:
    sleeps = ms.Sleeps()
    busy = httpx.Response(
        429, headers={"Retry-After": "2"}, json={"error": {"code": "RATE", "message": "slow"}}
    )
    market = ms.Market(busy, (200, ms.page(ms.MACHINE_ITEM)))
    result = attempt(market, lambda m: m.list_machines(), ms.retrying(sleeps))
    assert len(result.items) == 1
    assert sleeps.waits == [2.0]


def test_a_huge_retry_after_is_capped() -> None:
    sleeps = ms.Sleeps()
    busy = httpx.Response(503, headers={"Retry-After": "86400"}, content=b"down")
    market = ms.Market(busy, (200, ms.page()))
    attempt(market, lambda m: m.list_machines(), RetryPolicy(sleep=sleeps, max_retry_after=30.0))
    assert sleeps.waits == [30.0]


def test_a_read_that_keeps_failing_gives_up_after_the_attempts_with_growing_waits() -> None:
    sleeps = ms.Sleeps()
    market = ms.Market(UNAVAILABLE)
    err = attempt(
        market, GET_ORDER, RetryPolicy(attempts=4, initial=0.5, max_wait=1.5, jitter=0.0, sleep=sleeps)
    )
    assert isinstance(err, OrchestrationApiError) and err.status_code == 503  # the last error, unwrapped
    assert len(market.requests) == 4
    assert sleeps.waits == [0.5, 1.0, 1.5]  # doubling from `initial`, capped at `max_wait`


@pytest.mark.parametrize(
    "failure",
    [UNAVAILABLE, httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("closed mid-answer")],
    ids=["503", "read timeout", "connection dropped"],
)
def test_a_post_that_is_not_safe_to_repeat_is_sent_once(failure: Any) -> None:
    sleeps = ms.Sleeps()
    market = ms.Market(failure, (201, ms.item(ms.ORDER_ITEM)))
    err = attempt(market, CREATE_ORDER, ms.retrying(sleeps))
    assert isinstance(err, OrchestrationApiError | OrchestrationOutcomeUnknown)
    if isinstance(failure, Exception):
        assert isinstance(err, OrchestrationOutcomeUnknown)  # it may have been applied: reconcile
    assert len(market.requests) == 1 and sleeps.waits == []


@pytest.mark.parametrize(
    "failure",
    [UNAVAILABLE, httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("closed mid-answer")],
    ids=["503", "read timeout", "connection dropped"],
)
def test_a_post_with_an_idempotency_key_is_still_sent_once_and_its_outcome_is_unknown(failure: Any) -> None:
    # No market is documented to honour the key (issue 18): the key is sent, but nothing relies on it.
    # The caller reconciles by reading what the market holds, never by repeating the write here.
    sleeps = ms.Sleeps()
    market = ms.Market(failure, (201, ms.item(ms.ORDER_ITEM)))
    err = attempt(market, CREATE_ORDER_WITH_KEY, ms.retrying(sleeps))
    assert isinstance(err, OrchestrationOutcomeUnknown) and err.retryable
    (only,) = market.requests
    assert only.headers["idempotency-key"] == "order-7f3a"
    assert sleeps.waits == []


def test_a_503_to_a_write_is_the_markets_error_and_an_unknown_outcome_at_once() -> None:
    market = ms.Market(UNAVAILABLE)
    err = attempt(market, CREATE_ORDER, ms.retrying(ms.Sleeps()))
    assert isinstance(err, OrchestrationServerError)
    assert isinstance(err, OrchestrationOutcomeUnknown) and isinstance(err, OrchestrationApiError)
    assert (err.code, err.status_code, err.retryable) == ("SERVICE_UNAVAILABLE", 503, True)
    assert "POST /market/orders" in str(err) and "may have been applied" in str(err)


def test_a_429_to_a_write_is_repeated_the_market_processed_nothing() -> None:
    sleeps = ms.Sleeps()
    busy = httpx.Response(
        429, headers={"Retry-After": "1"}, json={"error": {"code": "RATE_LIMITED", "message": "slow"}}
    )
    market = ms.Market(busy, (201, ms.item(ms.ORDER_ITEM)))
    result = attempt(market, CREATE_ORDER, ms.retrying(sleeps))
    assert result.item.id == ms.ORDER
    assert len(market.requests) == 2 and sleeps.waits == [1.0]


def test_a_read_answered_503_is_repeated_and_stays_a_plain_api_error() -> None:
    market = ms.Market(UNAVAILABLE)
    err = attempt(market, GET_ORDER, ms.retrying(ms.Sleeps(), attempts=2))
    assert type(err) is OrchestrationApiError and err.status_code == 503
    assert len(market.requests) == 2


def test_a_connect_error_is_repeated_even_for_a_post_that_is_not_safe_to_repeat() -> None:
    # The request never left this machine, so repeating it cannot act twice.
    market = ms.Market(httpx.ConnectError("refused"), (201, ms.item(ms.ORDER_ITEM)))
    result = attempt(market, CREATE_ORDER, ms.retrying(ms.Sleeps()))
    assert result.item.id == ms.ORDER
    assert len(market.requests) == 2


def test_a_connect_error_that_persists_surfaces_as_a_network_error() -> None:
    market = ms.Market(httpx.ConnectError("refused"))
    err = attempt(market, CREATE_ORDER, ms.retrying(ms.Sleeps(), attempts=3))
    assert type(err) is OrchestrationNetworkError
    assert len(market.requests) == 3


WRITES_SAFE_BY_THE_DOCS: list[tuple[str, Call, Any]] = [
    (
        "create_payment_intent",
        lambda m: m.create_payment_intent(ms.ORDER, {"amount": "1.25"}, ms.TOKEN),
        ms.item(ms.PAYMENT_ITEM),
    ),
    (
        "lock_escrow_payment",
        lambda m: m.lock_escrow_payment(ms.ORDER, {"transaction_hash": "0xab"}, ms.TOKEN),
        ms.item(ms.PAYMENT_ITEM),
    ),
    ("revoke_agent_pairing (DELETE)", lambda m: m.revoke_agent_pairing(ms.MACHINE, ms.PAIRING), None),
]


@pytest.mark.parametrize(
    ("call", "answer"), [w[1:] for w in WRITES_SAFE_BY_THE_DOCS], ids=[w[0] for w in WRITES_SAFE_BY_THE_DOCS]
)
def test_writes_the_docs_call_idempotent_are_repeated(call: Call, answer: Any) -> None:
    market = ms.Market(httpx.ReadTimeout("no answer"), UNAVAILABLE, (200 if answer else 204, answer))
    attempt(market, call, ms.retrying(ms.Sleeps()))
    assert len(market.requests) == 3


WRITES_NOT_SAFE: list[tuple[str, Call]] = [
    ("execute_market_order", lambda m: m.execute_market_order(ms.ORDER, None, ms.TOKEN)),
    ("confirm_market_order", lambda m: m.confirm_market_order(ms.ORDER, ms.TOKEN)),
    ("dispute_market_order", lambda m: m.dispute_market_order(ms.ORDER, {"reason": "x"}, ms.TOKEN)),
    (
        "submit_payment_proof",
        lambda m: m.submit_payment_proof(ms.ORDER, {"transaction_hash": "0x"}, ms.TOKEN),
    ),
    ("release_payment", lambda m: m.release_payment(ms.ORDER, None, ms.TOKEN)),
    ("refund_payment", lambda m: m.refund_payment(ms.ORDER, None, ms.TOKEN)),
    ("search_market", lambda m: m.search_market({}, ms.TOKEN)),
    ("create_agent_pairing", lambda m: m.create_agent_pairing(ms.MACHINE, {})),
    ("create_agent_pairing_session", lambda m: m.create_agent_pairing_session(ms.MACHINE, ms.PAIRING, {})),
    ("update_agent_pairing (PATCH)", lambda m: m.update_agent_pairing(ms.MACHINE, ms.PAIRING, {})),
]


@pytest.mark.parametrize("call", [w[1] for w in WRITES_NOT_SAFE], ids=[w[0] for w in WRITES_NOT_SAFE])
def test_other_writes_are_not_repeated_after_a_503(call: Call) -> None:
    market = ms.Market(UNAVAILABLE)
    err = attempt(market, call, ms.retrying(ms.Sleeps()))
    assert isinstance(err, OrchestrationApiError) and err.status_code == 503
    assert isinstance(err, OrchestrationOutcomeUnknown)  # it may have been applied: reconcile
    assert len(market.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_a_4xx_answer_is_never_repeated(status: int) -> None:
    market = ms.Market(httpx.Response(status, json={"error": {"code": "NOT_FOUND", "message": "no"}}))
    err = attempt(market, GET_ORDER, ms.retrying(ms.Sleeps()))
    assert isinstance(err, OrchestrationApiError) and err.status_code == status
    assert len(market.requests) == 1


def test_a_malformed_answer_is_not_repeated() -> None:
    market = ms.Market((200, {"item": {"id": 1}}))
    err = attempt(market, GET_ORDER, ms.retrying(ms.Sleeps()))
    assert isinstance(err, OrchestrationApiError) and err.code == "INVALID_RESPONSE_SHAPE"
    assert len(market.requests) == 1


def test_retries_can_be_turned_off() -> None:
    market = ms.Market(UNAVAILABLE, (200, ms.item(ms.ORDER_ITEM)))
    err = attempt(market, GET_ORDER, RetryPolicy.none())
    assert isinstance(err, OrchestrationApiError) and err.status_code == 503
    assert len(market.requests) == 1


def test_the_default_policy_retries_reads() -> None:
    policy = RetryPolicy()
    assert policy.attempts > 1 and policy.max_retry_after >= 2
    sleeps = ms.Sleeps()
    market = ms.Market(UNAVAILABLE, UNAVAILABLE, (200, ms.item(ms.ORDER_ITEM)))
    attempt(market, GET_ORDER, RetryPolicy(sleep=sleeps))
    assert len(market.requests) == 3
    assert all(0 < w <= policy.max_wait + policy.jitter for w in sleeps.waits)


# --- jitter ------------------------------------------------------------------------------------


def _waits(policy: RetryPolicy, sleeps: ms.Sleeps, failures: int = 3) -> list[float]:
    """The waits ``policy`` makes for a read that fails ``failures`` times, then succeeds."""
    market = ms.Market(*([UNAVAILABLE] * failures), (200, ms.item(ms.ORDER_ITEM)))
    assert attempt(market, GET_ORDER, policy).item.id == ms.ORDER
    assert len(market.requests) == failures + 1
    return list(sleeps.waits)


def _jittered(seed: int, **kw: Any) -> list[float]:
    sleeps = ms.Sleeps()
    settings: dict[str, Any] = {"attempts": 4, "initial": 0.5, "max_wait": 0.5, "jitter": 0.25, **kw}
    policy = RetryPolicy(sleep=sleeps, uniform=random.Random(seed).uniform, **settings)
    return _waits(policy, sleeps)


def test_jitter_spreads_the_waits_between_attempts_and_between_runs_within_its_bounds() -> None:
    # The exponential part is pinned at 0.5 s (initial == max_wait), so only jitter can differ.
    first = _jittered(seed=1)
    assert all(0.5 <= w <= 0.75 for w in first), first
    assert len(set(first)) == len(first)  # every attempt waits a different time
    other = _jittered(seed=2)
    assert all(0.5 <= w <= 0.75 for w in other), other
    assert other != first  # another run (another draw) waits differently
    assert _jittered(seed=1) == first  # the injected source makes it reproducible


def test_jitter_is_added_on_top_of_the_exponential_backoff_and_after_its_cap() -> None:
    waits = _jittered(seed=3, initial=0.5, max_wait=1.0)
    bases = [0.5, 1.0, 1.0]  # doubling, capped at max_wait
    extras = [w - b for w, b in zip(waits, bases, strict=True)]
    assert all(0 <= e <= 0.25 for e in extras), waits
    assert len(set(extras)) == 3  # at the cap too the waits differ, so clients do not retry in step


def test_the_default_jitter_source_is_random() -> None:
    runs = []
    for _ in range(2):
        sleeps = ms.Sleeps()
        runs.append(_waits(RetryPolicy(initial=0.5, max_wait=0.5, jitter=0.25, sleep=sleeps), sleeps))
    assert all(0.5 <= w <= 0.75 for run in runs for w in run), runs
    assert runs[0] != runs[1]


def test_no_jitter_means_exact_waits() -> None:
    assert _jittered(seed=4, initial=0.5, max_wait=4.0, jitter=0.0) == [0.5, 1.0, 2.0]


# --- Retry-After as an HTTP date ---------------------------------------------------------------

NOW_TS = 1_800_000_000.0  # the moment the answer arrives, for the date arithmetic


@pytest.fixture()
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transport, "time", SimpleNamespace(time=lambda: NOW_TS))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (email.utils.formatdate(NOW_TS + 7, usegmt=True), 7.0),  # IMF-fixdate, 7 s ahead
        (email.utils.formatdate(NOW_TS + 2, usegmt=False), 2.0),  # numeric zone, same instant
        (email.utils.formatdate(NOW_TS - 30, usegmt=True), 0.0),  # already past: go now
        (email.utils.formatdate(NOW_TS + 86_400, usegmt=True), 60.0),  # a day ahead: capped
    ],
    ids=["future", "numeric zone", "past", "capped"],
)
def test_retry_after_as_an_http_date_waits_until_that_moment(
    frozen_clock: None, header: str, expected: float
) -> None:
    sleeps = ms.Sleeps()
    busy = httpx.Response(
        429, headers={"Retry-After": header}, json={"error": {"code": "RATE_LIMITED", "message": "slow"}}
    )
    market = ms.Market(busy, (200, ms.item(ms.ORDER_ITEM)))
    result = attempt(market, GET_ORDER, RetryPolicy(sleep=sleeps, max_retry_after=60.0))
    assert result.item.id == ms.ORDER
    assert sleeps.waits == [expected]


def test_an_http_date_is_read_as_gmt_whatever_the_local_zone(
    frozen_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9: a date read as local time would be 9 h off
    time.tzset()
    try:
        sleeps = ms.Sleeps()
        header = email.utils.formatdate(NOW_TS + 5, usegmt=False)  # "… -0000"
        busy = httpx.Response(503, headers={"Retry-After": header}, content=b"down")
        market = ms.Market(busy, (200, ms.item(ms.ORDER_ITEM)))
        attempt(market, GET_ORDER, RetryPolicy(sleep=sleeps, max_retry_after=86_400.0))
        assert sleeps.waits == [5.0]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_unreadable_retry_after_falls_back_to_the_backoff(frozen_clock: None) -> None:
    sleeps = ms.Sleeps()
    busy = httpx.Response(503, headers={"Retry-After": "soon-ish"}, content=b"down")
    market = ms.Market(busy, (200, ms.item(ms.ORDER_ITEM)))
    attempt(market, GET_ORDER, RetryPolicy(initial=0.5, jitter=0.0, sleep=sleeps))
    assert sleeps.waits == [0.5]


# --- the first try, and the clock ----------------------------------------------------------------


def test_no_try_starts_after_max_elapsed_counting_the_first_tries_own_time() -> None:
    sleeps = ms.Sleeps()
    tries: list[int | None] = []
    down = OrchestrationNetworkError("connection refused")

    async def slow_then_refused() -> None:
        tries.append(ATTEMPT.get())
        await asyncio.sleep(0.05)
        raise down

    policy = RetryPolicy(attempts=4, max_elapsed=0.04, sleep=sleeps)
    with pytest.raises(OrchestrationNetworkError) as caught:
        asyncio.run(call_with_retries(policy, True, slow_then_refused))
    assert caught.value is down
    assert tries == [1] and sleeps.waits == []


def test_each_try_knows_its_number_and_the_last_error_is_raised_as_it_was() -> None:
    sleeps = ms.Sleeps()
    tries: list[int | None] = []
    errors = [OrchestrationNetworkError(f"refused {n}") for n in range(3)]

    async def refused() -> None:
        tries.append(ATTEMPT.get())
        raise errors[len(tries) - 1]

    with pytest.raises(OrchestrationNetworkError) as caught:
        asyncio.run(call_with_retries(RetryPolicy(attempts=3, jitter=0.0, sleep=sleeps), True, refused))
    assert caught.value is errors[-1]
    assert tries == [1, 2, 3] and sleeps.waits == [0.25, 0.5]

    tries.clear()

    async def answered() -> str:
        tries.append(ATTEMPT.get())
        return "ok"

    assert asyncio.run(call_with_retries(RetryPolicy(sleep=sleeps), False, answered)) == "ok"
    assert tries == [1]
