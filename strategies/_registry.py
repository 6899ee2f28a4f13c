"""Finding strategies: built-in names, `module:Class` paths and `buyer_agent.strategies` entry points."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from strategies._base import BaseStrategy, FunctionStrategy, as_strategy
from strategies._builtin import BestScore, Cheapest, NativeFirst
from strategies._errors import StrategyError
from strategies._fallback import Fallback
from strategies._weighted import Weighted

__all__ = ["ENTRY_POINT_GROUP", "available_strategies", "load_strategy"]

#: Other packages register strategies here: ``[project.entry-points."buyer_agent.strategies"]``.
ENTRY_POINT_GROUP = "buyer_agent.strategies"


# ``--strategy fallback`` with no chain: the cheapest eligible quote, and if that one cannot be
# ordered, the market's best-scored one.
DEFAULT_FALLBACK_CHAIN = ("cheapest", "best_score")


def _fallback(chain: Sequence[Any] = DEFAULT_FALLBACK_CHAIN) -> Fallback:
    """``{name: fallback, params: {chain: [cheapest, {name: weighted, params: {...}}]}}``.

    Without ``chain``: cheapest, then best_score.
    """
    if isinstance(chain, str | bytes | Mapping) or not isinstance(chain, Sequence):
        raise StrategyError("fallback.chain must be a list of strategies (names or {name, params})")
    return Fallback(*(load_strategy(spec) for spec in chain))


_BUILTIN: dict[str, Callable[..., Any]] = {
    "best_score": BestScore,
    "cheapest": Cheapest,
    "fallback": _fallback,
    "native_first": NativeFirst,
    "weighted": Weighted,
}


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_strategies() -> list[str]:
    """Every strategy name ``load_strategy`` accepts: the built-ins and the registered plug-ins, sorted."""
    return sorted(set(_BUILTIN) | set(_plugins()))


def _key(name: str) -> str:
    # The task file and the CLI may spell names with dashes (``best-score``).
    return name.strip().lower().replace("-", "_")


def _unknown(name: str) -> StrategyError:
    return StrategyError(
        f"unknown strategy {name!r}; available: {', '.join(available_strategies())} "
        "(or a 'module:Class' path, or {name, params})"
    )


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    """``factory``'s signature, or None when it has none to read (a builtin callable).

    Remembered per factory: every order's choice loads its strategy from the task's spec, and
    reading a class's signature (its ``__init__`` through the metaclass) cost about as much as the
    choice itself.
    """
    try:
        return _remembered_signature(factory)
    except TypeError:  # an unhashable callable object: read it each time
        return _read_signature(factory)


def _read_signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):
        return None


_remembered_signature = functools.lru_cache(maxsize=256)(_read_signature)


def _accepted(factory: Callable[..., Any]) -> list[str]:
    sig = _signature(factory)
    if sig is None:
        return []
    return [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _build(label: str, factory: Callable[..., Any], params: Mapping[str, Any]) -> BaseStrategy:
    """Call ``factory(**params)`` after checking the params against its signature."""
    sig = _signature(factory)
    try:
        if sig is not None:  # without one, let the call say
            sig.bind(**params)
        built = factory(**params)
    except StrategyError:
        raise
    except (TypeError, ValueError) as exc:
        shown = ", ".join(sorted(_accepted(factory))) or "none"
        raise StrategyError(f"bad params for strategy {label}: {exc}; accepted params: {shown}") from exc
    return as_strategy(built)


def _import_path(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name.strip())
        for part in attr.strip().split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise StrategyError(f"cannot import strategy {path!r}: {exc}") from exc
    return obj  # type: ignore[no-any-return]


def _factory(name: str) -> tuple[str, Callable[..., Any]]:
    if ":" in name:
        return name, _import_path(name)
    key = _key(name)
    if key in _BUILTIN:
        return key, _BUILTIN[key]
    plugins = _plugins()
    ep = plugins.get(name) or plugins.get(key)
    if ep is None:
        raise _unknown(name)
    try:
        loaded = ep.load()
    except Exception as exc:  # a broken plug-in package is a bad strategy, not a crash
        raise StrategyError(f"cannot load strategy {name!r} from {ep.value!r}: {exc}") from exc
    return ep.name, loaded


def load_strategy(spec: Any) -> BaseStrategy:
    """A strategy from a task file's ``strategy`` (or ``--strategy``) value.

    Args:
        spec: A name (``"cheapest"``, ``"best-score"``), a ``"module:Class"`` path, a plug-in name
            registered under the ``buyer_agent.strategies`` entry-point group, a mapping
            ``{name: ..., params: {...}}``, or a strategy object / plain ``(quotes, ctx)`` function.

    Returns:
        The strategy, with ``rank``, ``alternatives`` and ``|`` (fallback).

    Raises:
        StrategyError: An unknown name (the message lists the available ones), an unimportable path,
            or params the strategy does not accept (the message lists the accepted ones).
    """
    if isinstance(spec, Mapping):
        extra = set(spec) - {"name", "params"}
        if extra or "name" not in spec:
            raise StrategyError(
                f"a strategy mapping has keys name and params, not {sorted(map(str, spec))}; "
                f"available strategies: {', '.join(available_strategies())}"
            )
        name, params = spec["name"], spec.get("params") or {}
        if not isinstance(name, str):
            raise StrategyError(f"strategy name must be text, not {name!r}")
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise StrategyError(f"params of strategy {name!r} must be a mapping of names to values")
    elif isinstance(spec, str):
        name, params = spec, {}
    else:
        return as_strategy(spec)
    if not name.strip():
        raise _unknown(name)
    label, factory = _factory(name)
    if isinstance(factory, type):
        return _build(label, factory, dict(params))
    if hasattr(factory, "rank"):
        if params:
            raise StrategyError(f"strategy {label} is an instance and takes no params")
        return as_strategy(factory)
    if not callable(factory):
        raise StrategyError(f"{name!r} is not a strategy class, factory or function")
    if not params and _is_rank_function(factory):
        return FunctionStrategy(factory, name=label)
    return _build(label, factory, dict(params))


def _is_rank_function(fn: Callable[..., Any]) -> bool:
    """True for a plain ``(quotes, ctx) -> Decision`` function (two arguments, no factory params)."""
    sig = _signature(fn)
    if sig is None:
        return False
    try:
        sig.bind()
    except TypeError:
        pass
    else:
        return False
    try:
        sig.bind(None, None)
    except TypeError:
        return False
    return True
