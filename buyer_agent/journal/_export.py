"""Journal files: one order as JSON Lines (a header, then every event), their versions and import."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from buyer_agent._errors import JournalError
from buyer_agent._limits import MAX_JOURNAL_FILE_BYTES, MAX_JOURNAL_LINE_BYTES, TooLarge, bounded_lines
from buyer_agent._redact import Secret
from buyer_agent._version import __version__
from buyer_agent.journal._canonical import GENESIS_HASH, JOURNAL_DECODER, dumps, format_at, loads
from buyer_agent.journal._journal import Journal, utc_now
from buyer_agent.journal._records import Event, OrderRecord
from buyer_agent.journal._signature import sign_head

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MIGRATIONS",
    "JournalFile",
    "JournalFileError",
    "export_lines",
    "export_order",
    "header_for",
    "header_of",
    "import_order",
    "open_journal_file",
]

#: The ``format`` field of every header line.
FORMAT = "buyer-agent-journal"
#: The version this code writes. Older files are migrated on read (see :data:`MIGRATIONS`).
FORMAT_VERSION = 1

# The journal's one decoder (no floats), and the scanner its ``decode`` calls (set by
# JSONDecoder.__init__; typeshed leaves it out).
_DECODE = JOURNAL_DECODER.decode
_SCAN: Callable[[str, int], tuple[Any, int]] = JOURNAL_DECODER.scan_once  # type: ignore[attr-defined]
_JSON_SPACE = " \t\n\r"


def _decode_line(text: str) -> Any:
    """``_DECODE(text)``: the same values and the same refusals, for a line that starts with a value.

    ``decode`` runs two regular expressions and two Python calls around the scanner for every line,
    about a sixth of a replay's time; an event line starts with its ``{`` and ends with its ``}``.
    """
    if text[:1] in _JSON_SPACE:  # leading blanks (or an empty line): the decoder's own way
        return _DECODE(text)
    try:
        value, end = _SCAN(text, 0)
    except StopIteration as exc:
        raise json.JSONDecodeError("Expecting value", text, exc.value) from None
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


class JournalFileError(JournalError):
    """The input is not a readable journal file (missing, empty, not JSON Lines, unknown version)."""


@dataclass(frozen=True, slots=True)
class JournalFile:
    """A journal file being read: its header (migrated to the current version) and its event lines.

    ``events`` yields ``(line_no, raw_line, event_dict | None)``; ``event_dict`` is None when the line
    is not valid JSON (verification names it by the sequence number it should have had). Events are
    read lazily, so a large file streams.
    """

    path: str
    header: Mapping[str, Any]
    source_version: int
    events: Iterator[tuple[int, str | None, dict[str, Any] | None]]


def _migrate_v0_event(event: dict[str, Any], prev: str) -> dict[str, Any]:
    # v0 (pre-release exports) named the trigger ``event`` and the states ``from``/``to``, and left
    # ``prev_hash`` implicit (the previous line's hash). Renaming and filling it keeps the stored
    # hashes valid: the hash formula never changed.
    out = dict(event)
    if "event" in out and "trigger" not in out:
        out["trigger"] = out.pop("event")
    if "from" in out and "src" not in out:
        out["src"] = out.pop("from")
    if "to" in out and "dst" not in out:
        out["dst"] = out.pop("to")
    out.setdefault("prev_hash", prev)
    return out


def _migrate_v0_header(header: dict[str, Any]) -> dict[str, Any]:
    out = dict(header)
    if "state" in out and "final_state" not in out:
        out["final_state"] = out.pop("state")
    out["version"] = 1
    out.setdefault("framework_version", None)
    out.setdefault("spec", None)
    return out


@dataclass(frozen=True, slots=True)
class Migration:
    """How to bring a header and its events from ``version`` to ``version + 1``."""

    version: int
    header: Callable[[dict[str, Any]], dict[str, Any]]
    event: Callable[[dict[str, Any], str], dict[str, Any]]


#: One migration per old version, applied in order until the file is at :data:`FORMAT_VERSION`.
MIGRATIONS: Mapping[int, Migration] = {0: Migration(0, _migrate_v0_header, _migrate_v0_event)}


def header_for(
    journal: Journal, order_id: str, events: list[Event] | None = None, *, key: Secret | None = None
) -> dict[str, Any]:
    """The header line of an export of ``order_id``.

    ``events`` and ``head_hash`` let a reader notice a file whose tail was cut off; with the agent's
    ``key``, ``signature`` proves who wrote it (:mod:`buyer_agent.journal._signature`).
    """
    rec = journal.order(order_id)
    evs = events if events is not None else journal.events(order_id)
    return header_of(rec, evs, key=key)


def header_of(rec: OrderRecord, evs: Sequence[Event], *, key: Secret | None = None) -> dict[str, Any]:
    """The header line of an export of the order ``rec`` with its events ``evs`` (from any store)."""
    order_id = rec.order_id
    head = evs[-1].hash if evs else GENESIS_HASH
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "framework_version": __version__,
        "order_id": order_id,
        "exported_at": format_at(utc_now()),
        "spec": dict(rec.spec),
        "final_state": rec.state,
        "market_order_id": rec.market_order_id,
        "events": len(evs),
        "head_hash": head,
    }
    if key is not None:
        header["signature"] = sign_head(key, order_id, head)
    return header


def export_lines(journal: Journal, order_id: str, *, key: Secret | None = None) -> Iterator[str]:
    """The lines (without newlines) of ``order_id``'s export: the header, then every event as stored.

    With ``key`` (the agent's EVM key) the header carries its EIP-191 signature of the head hash.

    Raises:
        JournalError: No such order.
    """
    events = journal.events(order_id)
    yield dumps(header_for(journal, order_id, events, key=key))
    for ev in events:
        yield dumps(ev.to_json())


def export_order(journal: Journal, order_id: str, out: IO[str], *, key: Secret | None = None) -> int:
    """Write ``order_id``'s export to ``out`` (signed with ``key``); return the number of events written."""
    count = -1
    for line in export_lines(journal, order_id, key=key):
        out.write(line + "\n")
        count += 1
    return count


def _event_lines(
    lines: Iterable[str], start: int, migrate: Callable[[dict[str, Any], str], dict[str, Any]] | None
) -> Iterator[tuple[int, str | None, dict[str, Any] | None]]:
    prev = GENESIS_HASH
    for line_no, raw in enumerate(lines, start=start):
        text = raw.rstrip("\r\n")
        if not text or text.isspace():
            continue
        try:
            obj = _decode_line(text)
        except ValueError:
            yield line_no, text, None
            continue
        if type(obj) is not dict:
            yield line_no, text, None
        elif migrate is None:
            yield line_no, text, obj
        else:
            obj = migrate(obj, prev)
            prev = str(obj.get("hash") or "")
            # A migrated line is no longer the bytes that were hashed: verify it by its fields.
            yield line_no, None, obj


def open_journal_file(path: str | Path, lines: Iterable[str] | None = None) -> JournalFile:
    """Open a journal file (JSON Lines), read its header and migrate it to the current version.

    Args:
        path: The file (also used in messages).
        lines: The file's lines, when already in memory (tests); else the file is streamed.

    Raises:
        JournalFileError: The file is missing, empty, has no valid header or an unknown version.
    """
    name = str(path)
    if lines is None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except OSError as exc:
            raise JournalFileError(f"cannot read {name}: {exc.strerror or exc}") from exc
        it: Iterator[str] = _closing_lines(fh, name)
    else:
        it = iter(lines)
    try:
        first = next(it, None)
    except OSError as exc:  # a directory opens on some systems and fails on read
        raise JournalFileError(f"cannot read {name}: {exc.strerror or exc}") from exc
    if first is None:
        raise JournalFileError(f"{name} is empty")
    try:
        header = _DECODE(first)
    except ValueError as exc:
        raise JournalFileError(f"{name}: the first line is not a JSON header ({_why(exc)})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise JournalFileError(f"{name} is not a {FORMAT} file (no header with format={FORMAT!r})")
    version = header.get("version", 0)
    if not isinstance(version, int) or version < 0 or version > FORMAT_VERSION:
        raise JournalFileError(
            f"{name}: format version {version!r} is not supported (this is version {FORMAT_VERSION})"
        )
    source = version
    event_steps: list[Callable[[dict[str, Any], str], dict[str, Any]]] = []
    while version < FORMAT_VERSION:
        step = MIGRATIONS[version]
        header = step.header(header)
        event_steps.append(step.event)
        version += 1
    migrate = None
    if event_steps:

        def migrate(event: dict[str, Any], prev: str) -> dict[str, Any]:
            for fn in event_steps:
                event = fn(event, prev)
            return event

    if not isinstance(header.get("order_id"), str):
        raise JournalFileError(f"{name}: the header has no order_id")
    return JournalFile(name, header, source, _event_lines(it, 2, migrate))


def _why(exc: ValueError) -> str:
    # A binary file's "line" can be megabytes: name the failure, not the bytes.
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."


def _closing_lines(fh: IO[bytes], name: str) -> Iterator[str]:
    """The file's lines, bounded (:data:`MAX_JOURNAL_LINE_BYTES` each, :data:`MAX_JOURNAL_FILE_BYTES`)."""
    with fh:
        try:
            yield from bounded_lines(
                fh, name=name, file_limit=MAX_JOURNAL_FILE_BYTES, line_limit=MAX_JOURNAL_LINE_BYTES
            )
        except TooLarge as exc:
            raise JournalFileError(str(exc)) from exc
        except OSError as exc:
            raise JournalFileError(f"cannot read {name}: {exc.strerror or exc}") from exc


def import_order(
    journal: Journal,
    header: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    *,
    context: Mapping[str, Any],
) -> bool:
    """Copy a verified order into ``journal`` exactly (same events, same hashes).

    The caller verifies first (:func:`buyer_agent.history.replay_file`). The order row gets the
    header's spec and final state, and ``context`` as its working context: the order's last known
    facts are not exported (the events hold them; :func:`buyer_agent.history.imported_context`
    folds them).

    Returns:
        True when imported; False when the journal already holds the identical order.

    Raises:
        JournalError: The journal already holds a different order with this id.
    """
    order_id = str(header["order_id"])
    if journal.has_order(order_id):
        mine = [e.to_json() for e in journal.events(order_id)]
        theirs = [_event_json(e) for e in events]
        if mine == theirs:
            return False
        raise JournalError(
            f"order {order_id} already exists in {journal.path or ':memory:'} with a different journal; "
            "refusing to overwrite it"
        )
    if not events:
        raise JournalError(f"order {order_id} has no events to import")
    first = events[0]
    market_order_id = header.get("market_order_id")
    try:
        with journal.db.atomic() as db:
            db.execute(
                "INSERT INTO orders (order_id, state, context, spec, market_order_id, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                # The row starts where the first event does; each inserted event then moves it on
                # (the schema's events_move_* triggers), ending in the last event's state.
                [
                    order_id,
                    str(first["src"]),
                    dumps(context),
                    dumps(header.get("spec") or {}),
                    market_order_id,
                    str(first["at"]),
                    str(first["at"]),
                ],
            )
            db.conn.executemany(
                "INSERT INTO events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        order_id,
                        int(e["seq"]),
                        str(e["at"]),
                        str(e["trigger"]),
                        str(e["src"]),
                        str(e["dst"]),
                        dumps(e.get("payload") or {}),
                        str(e["prev_hash"]),
                        str(e["hash"]),
                    ]
                    for e in events
                ],
            )
    except Exception as exc:
        raise JournalError(f"cannot import order {order_id}: {exc}") from exc
    return True


def _event_json(e: Mapping[str, Any]) -> dict[str, Any]:
    # The stored form of an event, for comparing a file with what a journal holds.
    return {
        "order_id": e["order_id"],
        "seq": e["seq"],
        "at": e["at"],
        "trigger": e["trigger"],
        "src": e["src"],
        "dst": e["dst"],
        "payload": loads(dumps(e.get("payload") or {})) or {},
        "prev_hash": e["prev_hash"],
        "hash": e["hash"],
    }
