"""When the client repeats a request, and how long it waits between tries (tenacity)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity

from buyer_agent._errors import OrchestrationApiError, OrchestrationError, OrchestrationOutcomeUnknown
from buyer_agent._waits import ATTEMPT, report_wait

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry settings. ``attempts=1`` turns retries off.

    Waits grow exponentially from ``initial`` to ``max_wait`` seconds, plus up to ``jitter`` seconds
    of random jitter drawn from ``uniform`` (added after the cap, so clients waiting at the cap still
    spread out); a ``Retry-After`` from the server is honoured instead (up to ``max_retry_after``).
    No try starts after ``max_elapsed`` seconds. ``sleep`` and ``uniform`` are injectable for tests
    (e.g. ``random.Random(seed).uniform``).
    """

    attempts: int = 4
    initial: float = 0.25
    max_wait: float = 4.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    max_elapsed: float = 90.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False, compare=False)
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False, compare=False)

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries at all."""
        return cls(attempts=1)


def _may_repeat(exc: BaseException, safe: bool) -> bool:
    """Whether ``exc`` after one try allows another.

    A request that provably did nothing may always be repeated: it never reached the server (no
    connection), or the server refused it unprocessed (429). One that may have reached it (no answer,
    or a 5xx answer) only when repeating it is safe: a read, or a write the docs call idempotent by
    its meaning. An ``Idempotency-Key`` does not make a write safe: no market is documented to
    honour it, so such a write is reconciled by reading, never repeated here.
    """
    if not isinstance(exc, OrchestrationError) or not exc.retryable:
        return False
    if isinstance(exc, OrchestrationApiError):
        return exc.status_code == 429 or safe
    if isinstance(exc, OrchestrationOutcomeUnknown):
        return safe
    return True


class _Wait(tenacity.wait.wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        # Exponential without jitter here: the jitter comes from the policy's own source below.
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=policy.initial, max=policy.max_wait, jitter=0
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return float(min(max(after, 0.0), self._policy.max_retry_after))
        jitter = self._policy.uniform(0.0, self._policy.jitter) if self._policy.jitter > 0 else 0.0
        return float(self._backoff(retry_state)) + min(max(jitter, 0.0), self._policy.jitter)


def _reporter(policy: RetryPolicy, what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else None
        report_wait(
            what,
            attempt=state.attempt_number + 1,
            of=max(policy.attempts, 1),
            next_in_s=float(wait) if wait is not None else None,
            because=str(exc) if exc is not None else None,
        )

    return before_sleep


async def call_with_retries(
    policy: RetryPolicy,
    safe: bool,
    fn: Callable[[], Coroutine[Any, Any, T]],
    what: str = "the market",
) -> T:
    """Run ``fn`` under ``policy``; the last error is raised as it was (never wrapped).

    Every pause before another try is reported (:func:`buyer_agent._waits.report_wait`) as a wait
    for ``what``: which attempt comes next, of how many, why, and in how many seconds.
    """
    reset = ATTEMPT.set(1)
    started = time.monotonic()
    try:
        # The first try is made here, outside tenacity: building its machinery for each call cost
        # ~30 µs, and nearly every call succeeds at once. A failure that may be repeated goes on
        # under the policy, the first try counted as tenacity's first attempt.
        try:
            return await fn()
        except BaseException as exc:
            if policy.attempts <= 1 or not _may_repeat(exc, safe):
                raise
            first = exc
        return await _after_first(policy, safe, fn, what, first, time.monotonic() - started)
    finally:
        ATTEMPT.reset(reset)


async def _after_first(
    policy: RetryPolicy,
    safe: bool,
    fn: Callable[[], Coroutine[Any, Any, T]],
    what: str,
    first: BaseException,
    spent: float,
) -> T:
    """Tries 2.. under ``policy``, after a first try that failed with ``first`` and took ``spent`` s."""
    retrying: Any = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(max(policy.attempts, 1))
        # Timed from the first try's start, as tenacity starts its clock only now.
        | tenacity.stop_after_delay(policy.max_elapsed - spent),
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(lambda exc: _may_repeat(exc, safe)),
        sleep=policy.sleep,
        before_sleep=_reporter(policy, what),
        reraise=True,
    )
    tries = 0

    async def one_try() -> T:
        nonlocal tries
        tries += 1
        ATTEMPT.set(tries)
        if tries == 1:
            raise first  # the first try's outcome, as tenacity's first attempt
        return await fn()

    result: T = await retrying(one_try)
    return result
