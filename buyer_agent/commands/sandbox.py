"""``sandbox``: serve the local Machine Markets with its chains; print one JSON line when ready."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from buyer_agent.commands._common import EXIT_OK, EXIT_USAGE
from buyer_agent.commands._output import OutputError, write_atomically

__all__ = ["register", "run"]

_log = logging.getLogger("buyer_agent.sandbox")


def register(subparsers: Any) -> None:
    """Add ``sandbox`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="serve a local Machine Markets with real local chains (anvil + LiteSVM)",
        description=(
            "Start anvil (test USDC and escrow deployed), a LiteSVM Solana RPC and the sandbox market on "
            "127.0.0.1, fund the demo buyer wallets, then print ONE JSON line on stdout: {url, api_key, "
            "machine_id, wallets: {evm: {address, private_key}, solana: {address, secret_key}}, evm: "
            "{rpc_url, chain, token_address, escrow_address}, solana: {rpc_url, chain, mint}}. The keys are "
            "worthless test keys. Logs go to stderr. Serves until SIGINT/SIGTERM, then stops the market and "
            "its chains and exits 0."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port of the market on 127.0.0.1 (default 0: a free port)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep market state, the API key and the anvil chain here across restarts (default: in memory)",
    )
    parser.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help=(
            "inject faults into API requests (never /sandbox/*): comma-separated name=value with "
            "5xx, 429, timeout, drop (rates 0..1; drop = process, then close without answering), "
            "latency (ms), retry-after (s), timeout-s (s). Example: 5xx=0.1,429=0.05,latency=20"
        ),
    )
    parser.add_argument(
        "--fault-seed", type=int, default=None, metavar="N", help="seed of the fault draws (reproducible)"
    )
    parser.add_argument(
        "--idempotency",
        choices=("off", "on"),
        default="off",
        help=(
            "honour the Idempotency-Key header on POSTs (on: a repeat with the same key gets the first "
            "answer back). Default off, as peaq's docs promise no such header: a repeated write then meets "
            "each endpoint's own rules, as on a market that deduplicates nothing"
        ),
    )
    parser.add_argument(
        "--networks-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=(
            "also write the sandbox's chains as network profiles (sandbox-evm, sandbox-solana) to FILE, "
            "for BUYER_AGENT_NETWORKS: an agent run against this sandbox then pins its token"
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    # Imported here, not at the top: the sandbox brings web3 and its chains (~0.3 s), which every other
    # command would pay for too, as the command line builds every command's parser.
    from buyer_agent.sandbox import Sandbox
    from buyer_agent.sandbox.market import parse_fault_spec

    if not any(isinstance(h, logging.StreamHandler) for h in logging.getLogger().handlers):
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    logging.getLogger("buyer_agent.sandbox").setLevel(logging.INFO)
    try:
        faults = parse_fault_spec(args.faults, args.fault_seed) if args.faults else None
    except ValueError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.port < 0 or args.port > 65535:
        print("error: --port must be 0..65535", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    target = args.networks_file
    if target is not None and (target.is_dir() or not target.absolute().parent.is_dir()):
        # Known before anything starts: a sandbox is not started only to fail writing this.
        why = "it is a directory" if target.is_dir() else "its folder does not exist"
        print(f"error: --networks-file: cannot write {target}: {why}", file=sys.stderr)
        return EXIT_USAGE
    sandbox = Sandbox(
        state_dir=args.state_dir, port=args.port, faults=faults, idempotency=args.idempotency == "on"
    )
    try:
        try:
            info = sandbox.start()
        except OSError as exc:
            print(
                f"error: --port {args.port}: cannot listen on 127.0.0.1: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if args.networks_file is not None:
            try:
                _write_networks(args.networks_file, info)
            except OutputError as exc:
                print(f"error: --networks-file: {exc}", file=sys.stderr)
                return EXIT_USAGE
        sys.stdout.write(json.dumps(info.to_json()) + "\n")
        sys.stdout.flush()
        _log.info("sandbox ready on %s; SIGINT or SIGTERM stops it", info.url)
        while not stop.wait(0.5):
            pass
        _log.info("stopping the sandbox")
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _write_networks(path: Path, info: Any) -> None:
    """The sandbox's chains as a ``networks:`` file (written before the JSON line is printed)."""
    import yaml

    from buyer_agent.networks import dump_profiles, sandbox_profiles

    text = yaml.safe_dump(dump_profiles(sandbox_profiles(info)), sort_keys=False)
    write_atomically(path, lambda fh: fh.write(text))
