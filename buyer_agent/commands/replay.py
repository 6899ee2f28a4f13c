"""``replay FILE|ORDER_ID|DIR|GLOB``: rebuild orders offline, verify their journals, show timelines."""

from __future__ import annotations

import argparse
import asyncio
import glob
import sys
from pathlib import Path
from typing import Any

from buyer_agent._errors import BuyerAgentError, JournalError, TaskFileError
from buyer_agent.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_state_dir,
    dump_json,
    guarded,
    open_state_journal,
    strategy_arg,
)
from buyer_agent.commands._store_read import add_store, no_journal, reading, replay_store_order, store_target
from buyer_agent.commands._trust import (
    add_chain_args,
    add_signer_arg,
    chain_doc,
    check_trust_args,
    signature_of,
)
from buyer_agent.history import (
    Rebuilder,
    Replay,
    build_timeline,
    render_timeline,
    replay_file,
    replay_order,
    summarise,
    what_if,
)
from buyer_agent.journal._export import JournalFileError
from buyer_agent.task import check_strategy

__all__ = ["register", "run"]

#: A journal that does not verify fails (1); input that cannot be read is bad usage (2).
EXIT_BROKEN, EXIT_UNREADABLE = EXIT_FAILED, EXIT_USAGE


def register(subparsers: Any) -> None:
    """Add ``replay`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="rebuild and verify orders from their journals, offline",
        description=(
            "Rebuild an order by feeding its journaled events through the order state machine, offline: "
            "check the hash chain, that every transition is legal and that the final state matches; "
            "print the timeline (states, durations, the quote chosen and why, amounts, transaction ids). "
            "TARGET is an exported journal file, an order id in the state directory, a directory of "
            "*.jsonl journals or a glob. An exported file's signature is checked against the agent "
            "address the journal records; --check-chain reads the payments back from the chain. "
            "Exit 0 when everything verifies, 1 naming the first event that breaks the chain or the "
            "machine (or a bad signature, or a payment the chain contradicts), 2 for unreadable input."
        ),
    )
    parser.add_argument("target", metavar="FILE|ORDER_ID|DIR|GLOB", help="what to replay")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--strategy",
        metavar="NAME",
        default=None,
        help="what-if: re-run the recorded quote decision with this strategy (a name or a JSON "
        '{"name": ..., "params": ...}); no network, no money',
    )
    parser.add_argument(
        "--require-signature",
        action="store_true",
        help="an unsigned export is broken (exit 1); by default it is reported on a line",
    )
    add_signer_arg(parser)
    add_chain_args(parser)
    add_state_dir(parser)
    add_store(parser)


def _targets(target: str) -> list[Path] | None:
    """The files to replay, or None when ``target`` names no file (then it is an order id)."""
    path = Path(target)
    if path.is_dir():
        return sorted(path.glob("*.jsonl"))
    if path.exists():
        return [path]
    if glob.has_magic(target):
        return sorted(Path(p) for p in glob.glob(target, recursive=True) if Path(p).is_file())
    return None


def _timeline(result: Replay) -> dict[str, Any]:
    try:
        return build_timeline(result.events)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A verified chain can still hold payloads of an unexpected shape (a hand-made journal):
        # the verdict stands, only the story is missing.
        empty = build_timeline([])
        empty["error"] = {"code": "TIMELINE_UNAVAILABLE", "message": f"unexpected event payload: {exc!r}"}
        return empty


def _report(
    result: Replay, strategy: str | dict[str, Any] | None, args: argparse.Namespace
) -> dict[str, Any]:
    doc = _base_report(result, strategy)
    trusted = True
    if result.header.get("format") is not None:  # an exported file (not the state dir's own journal)
        sig = signature_of(result, args.signer)
        doc["signature"] = sig.to_json()
        trusted = sig.ok and not (args.require_signature and sig.status == "unsigned")
    if args.check_chain and result.verified:
        doc["chain"] = chain_doc(result, args)
        trusted = trusted and doc["chain"]["ok"]
    doc["trusted"] = result.verified and trusted
    return doc


def _base_report(result: Replay, strategy: str | dict[str, Any] | None) -> dict[str, Any]:
    timeline = _timeline(result)
    doc: dict[str, Any] = {
        "order_id": result.order_id,
        "source": result.source,
        "state": result.state,
        "events": result.count,
        "verified": result.verified,
        "breakage": result.breakage.to_json() if result.breakage else None,
        "format_version": result.source_version,
        "timeline": timeline,
    }
    if strategy is not None:
        try:
            doc["what_if"] = what_if(result.events, strategy)
        except BuyerAgentError as exc:
            doc["what_if"] = {"strategy": strategy, "error": str(exc)}
    return doc


def _render(doc: dict[str, Any]) -> str:
    lines = [render_timeline(doc["order_id"], doc["state"], doc["timeline"])]
    if doc["verified"]:
        lines.append(f"  verified: {doc['events']} events, hash chain and every transition hold")
    else:
        b = doc["breakage"]
        lines.append(f"  BROKEN at event {b['seq']}: {b['reason']}")
    sig = doc.get("signature")
    if sig is not None:
        mark = "signature" if sig["status"] in ("valid", "unpinned") else f"signature {sig['status'].upper()}"
        lines.append(f"  {mark}: {sig['reason']}")
    chain = doc.get("chain")
    if chain is not None:
        if chain["ok"]:
            lines.append(f"  chain: {len(chain['checked'])} payment transactions match the journal")
        for m in chain["mismatches"]:
            lines.append(f"  CHAIN MISMATCH: {m}")
    w = doc.get("what_if")
    if w is not None:
        if "error" in w:
            lines.append(f"  what-if {w['strategy']}: {w['error']}")
        else:
            rec, alt, diff = w["recorded"], w["alternative"], w["difference"]
            price = (alt.get("price") or {}).get("amount")
            lines.append(
                f"  what-if {w['strategy']}: {alt['quote_id']} ({alt['service_id']}) {price} instead of "
                f"{rec['quote_id']} ({rec['service_id']})"
                + (f", difference {diff['amount']} {diff['currency']}" if diff else "")
                + f" — {alt['reason']}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    check_trust_args(args)
    try:
        strategy = strategy_arg(args.strategy)
        if strategy is not None:
            check_strategy(strategy, "--strategy")
    except TaskFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    files = _targets(args.target)
    store = store_target(args) if files is None else None
    if files is None:
        try:
            if store is not None:
                result = asyncio.run(_from_store(store, args.target))
            else:
                with open_state_journal(args.state_dir) as journal:
                    result = replay_order(journal, args.target)
        except JournalError as exc:
            print(
                f"error: {args.target} is neither a journal file nor an order in the journal: {exc}",
                file=sys.stderr,
            )
            return EXIT_UNREADABLE
        return _single(_report(result, strategy, args), args.json)
    if not files:
        print(f"error: no journal files match {args.target}", file=sys.stderr)
        return EXIT_UNREADABLE
    single = len(files) == 1 and not Path(args.target).is_dir() and not glob.has_magic(args.target)
    rebuilder = Rebuilder()
    docs: list[dict[str, Any]] = []
    unreadable = False
    for path in files:
        try:
            docs.append(_report(replay_file(path, rebuilder=rebuilder), strategy, args))
        except JournalFileError as exc:
            unreadable = True
            docs.append({"source": str(path), "error": str(exc), "verified": False})
            print(f"error: {exc}", file=sys.stderr)
    if single:
        return EXIT_UNREADABLE if unreadable else _single(docs[0], args.json)
    good = [d for d in docs if "error" not in d]
    summary = summarise((d["state"], d["verified"], d["timeline"]) for d in good)
    summary["unreadable"] = len(docs) - len(good)
    # Name every journal that does not verify (or cannot be read), so a summary never hides one.
    summary["broken"] = [
        {
            "source": d["source"],
            "order_id": d.get("order_id"),
            "seq": (d.get("breakage") or {}).get("seq"),
            "reason": (d.get("breakage") or {}).get("reason") or d.get("error") or _distrust(d),
        }
        for d in docs
        if not d.get("trusted", d["verified"])
    ]
    if args.json:
        dump_json({"orders": docs, "summary": summary})
    else:
        for d in good:
            print(_render(d))
            print()
        print(
            f"{summary['orders']} orders, {summary['verified']} verified; outcomes {summary['outcomes']}; "
            f"spend {summary['spend']}; refunded {summary['refunded']}; "
            f"seconds in each state {summary['seconds_in_state']}"
        )
        for b in summary["broken"]:
            where = f"order {b['order_id']}" if b["order_id"] else "unreadable"
            where += f" at event {b['seq']}" if b["order_id"] and b["seq"] is not None else ""
            print(f"BROKEN {b['source']}: {where}: {b['reason']}")
    if any(not d["trusted"] for d in good):
        return EXIT_BROKEN
    return EXIT_UNREADABLE if unreadable else EXIT_OK


async def _from_store(target: str, order_id: str) -> Replay:
    async with reading(target) as store:
        if store is None:
            raise no_journal(target)
        return await replay_store_order(store, order_id)


def _single(doc: dict[str, Any], as_json: bool) -> int:
    if as_json:
        dump_json(doc)
    else:
        print(_render(doc))
    return EXIT_OK if doc["trusted"] else EXIT_BROKEN


def _distrust(doc: dict[str, Any]) -> str:
    """Why a journal whose chain holds is still not trusted (its signature, or the chain)."""
    reasons = []
    sig = doc.get("signature")
    if sig is not None and sig["status"] not in ("valid", "unpinned"):
        reasons.append(sig["reason"])
    reasons.extend((doc.get("chain") or {}).get("mismatches") or [])
    return "; ".join(reasons)
