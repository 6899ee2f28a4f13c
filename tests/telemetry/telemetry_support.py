"""Shared by the telemetry tests: real journals (golden files) and the hooks the drive loop will call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from buyer_agent.journal import Event, open_journal_file
from buyer_agent.workflow import DriveObserver

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def golden_events(name: str) -> list[Event]:
    """The events of a committed golden journal (``order_confirmed_v1``, ``order_refunded_v1``)."""
    out: list[Event] = []
    for _, _, doc in open_journal_file(GOLDEN / f"{name}.jsonl").events:
        assert doc is not None
        out.append(
            Event(
                str(doc["order_id"]),
                int(doc["seq"]),
                str(doc["at"]),
                str(doc["trigger"]),
                str(doc["src"]),
                str(doc["dst"]),
                dict(doc.get("payload") or {}),
                str(doc["prev_hash"]),
                str(doc["hash"]),
            )
        )
    return out


def drive(
    observer: DriveObserver,
    events: Sequence[Event],
    *,
    resumed: bool = False,
    fail: dict[str, BaseException] | None = None,
) -> None:
    """Call the hooks as the drive loop does: each state change ends a step named by its trigger.

    The events up to and including a move (``src != dst``) belong to that move's step; the first
    event (``submit``) happens before the loop takes the order up. ``fail`` makes the named step end
    with that error once, then run again (a retry) and succeed.
    """
    fail = dict(fail or {})
    order_id = events[0].order_id
    first = 1 if events[0].trigger == "submit" and not resumed else 0
    if first:
        observer.event(events[0])
    state = events[first].src
    observer.order_started(order_id, state, resumed=resumed)
    pending: list[Event] = []
    for ev in events[first:]:
        pending.append(ev)
        if ev.src == ev.dst:
            continue
        step = ev.trigger
        if step in fail:
            observer.step_started(order_id, step, state)
            observer.step_finished(order_id, step, state, error=fail.pop(step))
        observer.step_started(order_id, step, state)
        for p in pending:
            observer.event(p)
        pending.clear()
        state = ev.dst
        observer.step_finished(order_id, step, state, error=None)
    observer.order_finished(order_id, state)
