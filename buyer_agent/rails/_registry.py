"""Choosing a rail for a payment intent, and third-party rails registered as entry points."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import entry_points

from buyer_agent._errors import RailError, UnsupportedRailError
from buyer_agent.rails._base import Rail

__all__ = ["ENTRY_POINT_GROUP", "load_entry_point_rails", "rail_for"]

ENTRY_POINT_GROUP = "buyer_agent.rails"


def _describe(rail: Rail) -> str:
    chain = getattr(rail, "chain", None)
    return f"{rail.name} on {chain}" if chain else str(rail.name)


def rail_for(rail_type: str, chain: str, rails: Iterable[Rail]) -> Rail:
    """The first rail in ``rails`` that can pay ``rail_type`` on ``chain``.

    Raises:
        UnsupportedRailError: none can; ``available`` lists the rails there are. Nothing was signed.
    """
    candidates = list(rails)
    for rail in candidates:
        if rail.supports(rail_type, chain):
            return rail
    raise UnsupportedRailError(rail_type, chain, [_describe(r) for r in candidates] or ["none configured"])


def load_entry_point_rails() -> dict[str, Callable[..., Rail]]:
    """The rail factories installed packages register under the ``buyer_agent.rails`` entry points.

    A package registers one with, in its ``pyproject.toml``::

        [project.entry-points."buyer_agent.rails"]
        mychain = "my_package.rails:MyChainRail"

    Returns:
        Factory (a class or a function returning a :class:`Rail`) by entry-point name.

    Raises:
        RailError: an entry point cannot be imported or is not callable.
    """
    found: dict[str, Callable[..., Rail]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
        except Exception as exc:  # a third party's import error must not look like ours
            raise RailError(f"cannot load rail entry point {ep.name!r} ({ep.value}): {exc}") from exc
        if not callable(factory):
            raise RailError(f"rail entry point {ep.name!r} ({ep.value}) is not a callable factory")
        found[ep.name] = factory
    return found
