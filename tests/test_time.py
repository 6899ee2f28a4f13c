"""The one ISO-8601 parser: journal times, market times and datetimes all read back the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from buyer_agent._time import parse_time
from buyer_agent.journal._canonical import format_at
from buyer_agent.sandbox.market._wire import iso, parse_iso
from buyer_agent.workflow import _pairing, _quotes


def test_it_reads_journal_and_market_times_as_aware_utc() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert parse_time(format_at(moment)) == moment
    assert parse_time("2026-01-02T03:04:05.123Z") == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert parse_time("2026-01-02T04:04:05+01:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05").tzinfo is UTC  # naive means UTC
    assert parse_iso(iso(moment)) == moment.replace(microsecond=0)


def test_it_passes_datetimes_through_and_makes_naive_ones_utc() -> None:
    aware = datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert parse_time(aware) is aware
    assert parse_time(datetime(2026, 1, 2)) == datetime(2026, 1, 2, tzinfo=UTC)


def test_it_refuses_what_is_not_a_time() -> None:
    with pytest.raises(ValueError):
        parse_time("tomorrow")


def test_the_workflow_and_the_pairing_use_it() -> None:
    assert _quotes.parse_time is parse_time
    assert _pairing._parse_time(None) is None and _pairing._parse_time("") is None
    assert _pairing._parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
