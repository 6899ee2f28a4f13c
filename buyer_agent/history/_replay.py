"""Replay: rebuild an order from its events offline, checking the hash chain and the state machine."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transitions import MachineError

from buyer_agent._errors import JournalError
from buyer_agent.journal._canonical import GENESIS_HASH, encode_clean, event_hash, jsonable
from buyer_agent.journal._export import JournalFile, open_journal_file
from buyer_agent.journal._journal import Journal
from buyer_agent.workflow._machine import SUBMIT, build_machine, is_legal
from buyer_agent.workflow._states import OrderState

__all__ = [
    "Breakage",
    "Rebuilder",
    "Replay",
    "replay_benchmark",
    "replay_events",
    "replay_file",
    "replay_order",
    "synthetic_journal",
    "synthetic_orders",
]

_FIELDS = ("order_id", "seq", "at", "trigger", "src", "dst", "payload")
_CANON = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False}
# One encoder for every event: json.dumps with options builds a new encoder per call.
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Breakage:
    """The first event that breaks the chain or the machine: its sequence number and why."""

    seq: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """``{"seq", "reason"}``."""
        return {"seq": self.seq, "reason": self.reason}


@dataclass(slots=True)
class Replay:
    """The outcome of replaying one order: the rebuilt state, the events, and what (if anything) broke.

    ``events`` keeps the parsed events (for the timeline and the what-if) unless the replay was asked
    not to keep them (bulk verification).
    """

    order_id: str
    source: str
    state: str
    count: int
    breakage: Breakage | None
    header: Mapping[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    source_version: int = 1

    @property
    def verified(self) -> bool:
        """True when the chain and every transition hold and the final state matches."""
        return self.breakage is None


class _Model:
    """The bare model the replay machine moves (no guards: replay checks recorded facts)."""

    state: str


class Rebuilder:
    """Feeds state-changing events through the real ``transitions`` machine, built once and reused.

    Legality is first checked against the table (a set lookup, :func:`is_legal`); the machine then
    confirms that the trigger from the current state lands where the journal says. Built without
    guards, the machine is a pure function of (state, trigger), so its answer for each pair is asked
    once and remembered: a million events cost a few dozen machine runs, and every answer is still
    the machine's own.
    """

    def __init__(self) -> None:
        self.model = _Model()
        self.machine = build_machine(self.model, OrderState.CREATED, guards=False)
        # (state, trigger) -> (True, the state the machine lands in) or (False, why it refuses).
        self._answers: dict[tuple[str, str], tuple[bool, str]] = {}

    def fire(self, src: str, trigger: str, dst: str) -> str | None:
        """Fire ``trigger`` from ``src``; None when the machine lands in ``dst``, else why not."""
        answer = self._answers.get((src, trigger))
        if answer is None:
            answer = self._answers[(src, trigger)] = self._ask(src, trigger)
        landed, where = answer
        if not landed:
            return where
        if where != dst:
            return f"the machine moves {trigger} to {where}, the journal says {dst}"
        return None

    def _ask(self, src: str, trigger: str) -> tuple[bool, str]:
        self.machine.set_state(src)
        try:
            self.model.trigger(trigger)  # type: ignore[attr-defined]
        except MachineError as exc:
            return False, f"the machine refuses {trigger}: {exc.value}"
        except (AttributeError, ValueError) as exc:
            return False, f"unknown trigger {trigger!r}: {exc}"
        return True, self.model.state


def _hashed_text(raw: str, h: str, p: str) -> str | None:
    # The stored line is the canonical JSON of all nine fields; without its ``hash`` and
    # ``prev_hash`` members it is exactly the text that was hashed. Keys sort so ``hash`` follows
    # ``dst`` and ``prev_hash`` follows ``payload``; a JSON string cannot hold an unescaped quote,
    # so the first ``,"hash":"…"`` and the last ``,"prev_hash":"…"`` are the top-level members.
    hs, ps = f',"hash":"{h}"', f',"prev_hash":"{p}"'
    i, j = raw.find(hs), raw.rfind(ps)
    if i < 0 or j < i:
        return None
    return raw[:i] + raw[i + len(hs) : j] + raw[j + len(ps) :]


def _check_hash(raw: str | None, ev: Mapping[str, Any], prev: str, sha: Any) -> str | None:
    """None when the event hashes to its ``hash``; else why not."""
    h = ev["hash"]
    if not isinstance(h, str):
        return "the event has no hash"
    if raw is not None:
        # Fast and strict: the line's own bytes must be what was hashed, so any edited byte shows
        # (no re-encoding needed).
        text = _hashed_text(raw, h, prev)
        if text is not None and sha((prev + text).encode("utf-8")).hexdigest() == h:
            return None
    if sha((prev + _canonical(ev)).encode("utf-8")).hexdigest() != h:
        return "hash mismatch: the event was changed after it was written"
    if raw is not None:
        return "the line is not the canonical bytes that were hashed (reformatted or edited)"
    return None


def _canonical(ev: Mapping[str, Any]) -> str:
    body = {k: ev[k] for k in _FIELDS}
    try:
        return _ENCODE(body)
    except TypeError:
        # A number with a fraction (read as Decimal) or a payload not yet plain: the journal's way.
        body["payload"] = jsonable(body["payload"])
        return encode_clean(body)


def replay_events(
    events: Iterable[tuple[str | None, Mapping[str, Any] | None]],
    *,
    order_id: str | None = None,
    expected_state: str | None = None,
    expected_count: int | None = None,
    expected_head: str | None = None,
    source: str = "<events>",
    keep: bool = True,
    rebuilder: Rebuilder | None = None,
) -> Replay:
    """Verify and rebuild one order from its events, streaming; stop checking at the first breakage.

    Each event must: parse; belong to the order; carry the next sequence number; link to the previous
    hash; hash to its ``hash`` (``sha256(prev_hash + canonical)``); when ``raw`` text is given, be
    byte-for-byte the canonical line (so any edited byte is caught); start in the state the order is
    in; and be a legal move of the machine.

    Args:
        events: ``(raw_line | None, event | None)`` pairs in file order; ``event`` None = unparsable.
        order_id: The order (default: the first event's).
        expected_state: The final state the header or order row claims.
        expected_count: The event count the header claims.
        expected_head: The last event's hash the header claims.
        source: Where the events came from (reports).
        keep: Keep the parsed events on the result (timeline, what-if).
        rebuilder: A machine to reuse across orders (one is built if None).

    Returns:
        The replay: rebuilt state, count and the first breakage, if any.
    """
    machine = rebuilder if rebuilder is not None else Rebuilder()
    state = OrderState.CREATED.value
    prev = GENESIS_HASH
    expect = 1
    count = 0
    broken: Breakage | None = None
    kept: list[dict[str, Any]] = []
    sha = hashlib.sha256
    for raw, ev in events:
        count += 1
        if broken is not None:
            continue
        if ev is None:
            broken = Breakage(expect, "the event is not valid JSON (edited or truncated)")
            continue
        try:
            seq = ev["seq"]
            if order_id is None:
                order_id = str(ev["order_id"])
            if not isinstance(seq, int) or isinstance(seq, bool):
                broken = Breakage(expect, f"sequence number {seq!r} is not an integer")
                continue
            if ev["order_id"] != order_id:
                broken = Breakage(seq, f"the event belongs to order {ev['order_id']}, not {order_id}")
                continue
            if seq != expect:
                what = "missing (deleted?)" if seq > expect else "repeated or out of order"
                broken = Breakage(seq, f"expected event {expect} here, found {seq}: event {expect} is {what}")
                continue
            if ev["prev_hash"] != prev:
                broken = Breakage(
                    seq, "prev_hash does not link to the previous event (reordered or deleted?)"
                )
                continue
            why = _check_hash(raw, ev, prev, sha)
            if why is not None:
                broken = Breakage(seq, why)
                continue
            trigger, src, dst = ev["trigger"], ev["src"], ev["dst"]
            if src != state:
                broken = Breakage(seq, f"the event starts in {src} but the order is in {state}")
                continue
            if not is_legal(src, trigger, dst):
                broken = Breakage(seq, f"illegal transition {src} --{trigger}--> {dst}")
                continue
            if src != dst or not (trigger == SUBMIT or ":" in trigger):
                why = machine.fire(src, trigger, dst)
                if why is not None:
                    broken = Breakage(seq, why)
                    continue
        except (KeyError, TypeError, AttributeError) as exc:
            broken = Breakage(expect, f"malformed event: {exc!r}")
            continue
        state = dst
        prev = ev["hash"]
        expect += 1
        if keep:
            kept.append(dict(ev))
    if broken is None:
        if count == 0:
            broken = Breakage(1, "the journal has no events")
        elif expected_count is not None and count != expected_count:
            broken = Breakage(count + 1, f"the header says {expected_count} events, the file has {count}")
        elif expected_head is not None and prev != expected_head:
            broken = Breakage(count, "the last event's hash differs from the header's head_hash")
        elif expected_state is not None and state != expected_state:
            broken = Breakage(
                count, f"the events rebuild {state}, but the journal says the order is {expected_state}"
            )
    return Replay(order_id or "", source, state, count, broken, events=kept)


def replay_file(
    path: str | Path,
    *,
    lines: Iterable[str] | None = None,
    keep: bool = True,
    rebuilder: Rebuilder | None = None,
) -> Replay:
    """Replay an exported journal file (any supported format version).

    Raises:
        JournalFileError: The file is unreadable or not a journal file.
    """
    jf: JournalFile = open_journal_file(path, lines)
    header = jf.header
    result = replay_events(
        ((raw, ev) for _, raw, ev in jf.events),
        order_id=str(header["order_id"]),
        expected_state=_opt_str(header.get("final_state")),
        expected_count=_opt_int(header.get("events")),
        expected_head=_opt_str(header.get("head_hash")),
        source=jf.path,
        keep=keep,
        rebuilder=rebuilder,
    )
    result.header = header
    result.source_version = jf.source_version
    return result


def replay_order(journal: Journal, order_id: str, *, rebuilder: Rebuilder | None = None) -> Replay:
    """Replay an order straight from a journal database (its events and order row).

    Raises:
        JournalError: No such order.
    """
    rec = journal.order(order_id)
    events = [(None, e.to_json()) for e in journal.events(order_id)]
    result = replay_events(
        events, order_id=order_id, expected_state=rec.state, source=str(journal.path), rebuilder=rebuilder
    )
    result.header = {"order_id": order_id, "spec": dict(rec.spec), "final_state": rec.state}
    return result


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


# --- synthetic journals and the benchmark -----------------------------------------------------------

_HAPPY: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("pair", "created", "paired", {"pairing_id": "pair_bench"}),
    ("intent:search_market", "paired", "paired", {"idempotency_key": "idem_bench"}),
    ("search", "paired", "searched", {"search_id": "srch_bench", "quotes": []}),
    ("choose", "searched", "quoted", {"decision": {"quote_id": "q_bench", "reason": "cheapest"}}),
    ("intent:create_market_order", "quoted", "quoted", {"idempotency_key": "idem_bench2"}),
    ("order", "quoted", "ordered", {"market_order_id": "mord_bench"}),
    ("pay", "ordered", "paying", {"txs": [{"tx_id": "0xbench", "purpose": "transfer"}]}),
    ("paid", "paying", "paid", {"tx": "0xbench"}),
    ("execute", "paid", "executed", {"outcome": {"status": "completed"}}),
    ("confirm", "executed", "confirmed", {"payment": "released"}),
)


def synthetic_orders(n_orders: int, events_per_order: int = 11) -> Iterator[list[str]]:
    """Valid, hash-chained orders as journal-file lines (a header, then the events), one list per order.

    Each order runs ``submit``, then the happy path, padded with ``note:`` events in ``paid`` so it
    has ``events_per_order`` events (at least 11). For the replay benchmark (issue 9).
    """
    if events_per_order < 11:
        raise ValueError("an order needs at least 11 events (submit + the happy path)")
    pad = events_per_order - 11
    steps = [*_HAPPY[:8], *((f"note:bench_{k}", "paid", "paid", {"k": k}) for k in range(pad)), *_HAPPY[8:]]
    rows = [("submit", "created", "created", {"spec": {"service_type": "bench"}}), *steps]
    for n in range(n_orders):
        order_id = f"ord_bench_{n:08d}"
        lines: list[str] = []
        prev = GENESIS_HASH
        for seq, (trigger, src, dst, payload) in enumerate(rows, start=1):
            at = f"2026-01-01T{seq // 3600 % 24:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}.000000Z"
            h = event_hash(
                prev, order_id=order_id, seq=seq, at=at, trigger=trigger, src=src, dst=dst, payload=payload
            )
            ev = {"order_id": order_id, "seq": seq, "at": at, "trigger": trigger, "src": src, "dst": dst,
                  "payload": payload, "prev_hash": prev, "hash": h}  # fmt: skip
            lines.append(json.dumps(ev, **_CANON))  # type: ignore[arg-type]
            prev = h
        header = {"format": "buyer-agent-journal", "version": 1, "order_id": order_id,
                  "final_state": "confirmed", "events": len(rows), "head_hash": prev}  # fmt: skip
        yield [json.dumps(header, **_CANON), *lines]  # type: ignore[arg-type]


def synthetic_journal(n_orders: int, events_per_order: int = 11) -> Iterator[str]:
    """:func:`synthetic_orders` as one stream of lines (every order's header, then its events)."""
    for order in synthetic_orders(n_orders, events_per_order):
        yield from order


def replay_benchmark(n_events: int = 1_000_000, events_per_order: int = 20) -> float:
    """Replay ``n_events`` synthetic events (generated first, not timed); return events per second."""
    n_orders = max(1, n_events // events_per_order)
    per = list(synthetic_orders(n_orders, events_per_order))
    rebuilder = Rebuilder()
    total = 0
    started = time.perf_counter()
    for i, order_lines in enumerate(per):
        result = replay_file(f"<bench {i}>", lines=order_lines, keep=False, rebuilder=rebuilder)
        if not result.verified:
            raise JournalError(f"synthetic order {i} failed to verify: {result.breakage}")
        total += result.count
    elapsed = time.perf_counter() - started
    return total / elapsed if elapsed > 0 else float("inf")
