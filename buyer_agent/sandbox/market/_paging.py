"""List pages as documented: ``limit`` 1..500 (default 100), an opaque ``cursor``, ``nextCursor``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from buyer_agent.sandbox.market._errors import invalid

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "list_page", "parse_cursor", "parse_limit"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_PREFIX = "cur_"


def parse_limit(text: str | None) -> int:
    """A ``limit`` query parameter (default 100, 1..500).

    Raises:
        ApiError: ``VALIDATION_ERROR`` (400) naming ``limit``.
    """
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer 1..{MAX_LIMIT}")
    return int(text)


def parse_cursor(text: str | None) -> int:
    """The position a ``cursor`` this market issued points at (0 without one).

    Raises:
        ApiError: ``VALIDATION_ERROR`` (400) naming ``cursor`` for anything else.
    """
    if text is None:
        return 0
    digits = text[len(_PREFIX) :]
    if not text.startswith(_PREFIX) or not digits.isdigit() or len(digits) > 12:
        raise invalid("cursor", "not a cursor from this market; pass the nextCursor of the previous page")
    return int(digits)


def list_page(entries: Iterable[tuple[int, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """``{items, nextCursor}`` for ``entries`` (position, item), in ascending positions.

    Positions are stable (an append-only list's indexes), so a cursor stays valid while new entries
    arrive; ``nextCursor`` is null on the last page.
    """
    limit = parse_limit(query.get("limit"))
    start = parse_cursor(query.get("cursor"))
    items: list[Any] = []
    next_cursor: str | None = None
    for position, item in entries:
        if position < start:
            continue
        if len(items) == limit:
            next_cursor = f"{_PREFIX}{position}"
            break
        items.append(item)
    return {"items": items, "nextCursor": next_cursor}
