"""Reading ISO-8601 times: the one parser the journal readers, the workflow and the sandbox share.

Times are written by the journal (``2026-01-02T03:04:05.000006Z``), the market (``…Z`` with
milliseconds) and task files; all of them are read back here into an aware UTC ``datetime``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time"]


def parse_time(value: str | datetime) -> datetime:
    """An aware datetime from an ISO-8601 string (``Z`` accepted) or a datetime; naive means UTC.

    Raises:
        ValueError: ``value`` is not an ISO-8601 time.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
