"""The one place a rail's foreign exceptions (web3, aiohttp, httpx, solana, solders) become RailErrors."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from buyer_agent._errors import BuyerAgentError, RailError

__all__ = ["is_panic", "rail_errors", "translated"]

P = ParamSpec("P")
R = TypeVar("R")

_MAX_DETAIL = 300

# Failures of the transport itself: the node may simply be busy or restarting, so a later call may work.
_TRANSIENT_NAMES = frozenset(
    {
        "ClientConnectionError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "ReadError",
        "RemoteProtocolError",
        "TimeoutException",
        "TimeoutError",
        "ConnectionRefusedError",
        "ConnectionResetError",
    }
)


def is_panic(exc: BaseException) -> bool:
    """True for pyo3's ``PanicException`` (a ``BaseException`` a Rust panic in solders raises)."""
    return type(exc).__name__ == "PanicException"


def _transient(exc: BaseException) -> bool:
    """True when the failure (or what it wraps, as solana-py wraps httpx) is the transport's."""
    seen: BaseException | None = exc
    for _ in range(8):  # wrappers nest a few levels at most
        if seen is None:
            return False
        if isinstance(seen, ConnectionError | asyncio.TimeoutError) or any(
            cls.__name__ in _TRANSIENT_NAMES for cls in type(seen).__mro__
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def rail_errors(what: str) -> Iterator[None]:
    """Translate any foreign failure inside the block into :class:`RailError` (``raise … from exc``).

    Our own errors pass through. ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit`` and task
    cancellation are never swallowed; a Rust panic from solders (a ``BaseException``) is translated.
    """
    try:
        yield
    except BuyerAgentError:
        raise
    except Exception as exc:
        raise RailError(f"{what} failed: {_detail(exc)}", retryable=_transient(exc)) from exc
    except BaseException as exc:
        if is_panic(exc):
            raise RailError(f"{what} failed: the Solana library panicked ({_detail(exc)})") from exc
        raise


def translated(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a rail method (sync or async) so foreign errors leave it only as :class:`RailError`."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with rail_errors(what):
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with rail_errors(what):
                return fn(*args, **kwargs)

        return run

    return decorate
