"""A blocking wrapper: the async client on a private event loop in a background thread."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from buyer_agent._errors import OrchestrationConfigError
from buyer_agent._redact import REDACTED, Secret
from buyer_agent.market._client import AsyncMarketClient, env_settings
from buyer_agent.market._retry import RetryPolicy

__all__ = ["MarketClient"]

T = TypeVar("T")


class MarketClient:
    """The same methods as :class:`AsyncMarketClient`, blocking; ``*_all`` return plain iterators.

    Safe to use from code that already runs an event loop (the calls run on the wrapper's own).
    Close it with :meth:`close` or a ``with`` block.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | Secret | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="market-client", daemon=True)
        self._thread.start()
        try:
            self._client = self._run(self._make(base_url, api_key, retry))
        except BaseException:
            self._stop()
            raise
        self.base_url = self._client.base_url

    @staticmethod
    async def _make(
        base_url: str, api_key: str | Secret | None, retry: RetryPolicy | None
    ) -> AsyncMarketClient:
        # The httpx client is created on the wrapper's loop, where it will be used.
        return AsyncMarketClient(base_url, api_key=api_key, http_client=None, retry=retry)

    @classmethod
    def from_env(cls, *, retry: RetryPolicy | None = None) -> MarketClient:
        """A client from ``PEAQOS_ORCHESTRATION_URL`` and ``PEAQOS_API_KEY``."""
        url, key = env_settings()
        return cls(url, api_key=key, retry=retry)

    def __repr__(self) -> str:
        return f"MarketClient(base_url={self.base_url!r}, api_key={REDACTED})"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()  # never started: no "never awaited" warning
            raise OrchestrationConfigError("the market client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(_next(agen))
            except StopAsyncIteration:
                return

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(AsyncMarketClient, name, None)
        if name.startswith("_") or method is None or not callable(method):
            raise AttributeError(name)
        bound = getattr(self._client, name)
        if inspect.iscoroutinefunction(method):
            return lambda *a, **kw: self._run(bound(*a, **kw))
        return lambda *a, **kw: self._iterate(bound(*a, **kw))

    def close(self) -> None:
        """Close the connections and stop the background loop."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.aclose())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> MarketClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


async def _next(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()
