"""Composing a running agent: the sandbox, the market client, the rails, the pairing and the runner.

:class:`~buyer_agent.agent.BuyerAgent` is the facade users hold; this module is where its parts are
built from its settings (and from the environment variables in :data:`ENV`), in one place:

- :func:`connect` starts the embedded sandbox when no market is given, opens the market client,
  builds the payment rails (built-in EVM and Solana, then third-party entry points), the pairing
  session and the :class:`~buyer_agent.workflow.Runner`, and undoes what it did when a part fails;
  over a shared :class:`~buyer_agent.journal.OrderStore` (a fleet) the nonces are reserved in that
  store and the pairing session is shared with the other workers through it
  (:class:`~buyer_agent.fleet.StorePairingShare`);
- :func:`disconnect` closes them again;
- :func:`reader` is a runner that only reads the journal (summaries, allowed steps, approvals).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from buyer_agent._errors import OrchestrationConfigError, RailError
from buyer_agent._redact import Secret
from buyer_agent.journal import Journal, OrderStore
from buyer_agent.networks import Networks, agent_networks, sandbox_profiles
from buyer_agent.signers import EvmSigner, JsonRpcEvmSigner, LocalEvmSigner
from buyer_agent.workflow import DriveObserver, OrderSummary, PairingSession, ProgressEvent, Runner

__all__ = [
    "EMBEDDED",
    "ENV",
    "Connection",
    "Settings",
    "connect",
    "disconnect",
    "env",
    "market_label",
    "plugin_rails",
    "reader",
    "secret",
]

#: The environment variables the agent reads (documented in the README).
ENV = {
    "market": "PEAQOS_ORCHESTRATION_URL",
    "api_key": "PEAQOS_API_KEY",
    "machine_id": "PEAQOS_MACHINE_ID",
    "evm_key": "BUYER_AGENT_EVM_KEY",
    "evm_signer": "BUYER_AGENT_EVM_SIGNER",
    "solana_key": "BUYER_AGENT_SOLANA_KEY",
    "evm_rpc": "BUYER_AGENT_EVM_RPC",
    "solana_rpc": "BUYER_AGENT_SOLANA_RPC",
    "state_dir": "BUYER_AGENT_STATE_DIR",
    "pairing_id": "PEAQOS_AGENT_PAIRING_ID",
    "pairing_token": "PEAQOS_AGENT_PAIRING_TOKEN",
}

#: The market label of the in-process sandbox.
EMBEDDED = "embedded-sandbox"


def env(name: str) -> str | None:
    """The value of the environment variable :data:`ENV` names ``name``, or None when unset or blank."""
    value = os.environ.get(ENV[name], "").strip()
    return value or None


def secret(value: Secret | str | None) -> Secret | None:
    """``value`` held as a :class:`Secret` (an empty string is none)."""
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value) if value else None


def market_label(market: Any) -> str:
    """``embedded-sandbox`` for None, a URL without its trailing slash, or a client's ``base_url``."""
    if market is None:
        return EMBEDDED
    if isinstance(market, str):
        return market.rstrip("/")
    return str(getattr(market, "base_url", type(market).__name__)).rstrip("/")


@dataclass(frozen=True, slots=True)
class Settings:
    """What an agent is configured with (secrets held as :class:`Secret`, never shown)."""

    market: Any = None  # None (the embedded sandbox), a URL, or an AsyncMarketClient the caller owns
    machine_id: str | None = None
    api_key: Secret | None = field(default=None, repr=False)
    evm_key: Secret | None = field(default=None, repr=False)
    solana_key: Secret | None = field(default=None, repr=False)
    evm_rpc: str | None = None
    solana_rpc: str | None = None
    pairing_id: str | None = None
    pairing_token: Secret | None = field(default=None, repr=False)
    policy: Mapping[str, Any] | None = None
    #: The network profiles a payment's token is checked against before signing (None: built-ins).
    networks: Networks | None = None
    #: Who signs instead of ``evm_key`` (an EvmSigner, or the URL of a JSON-RPC signer process).
    evm_signer: EvmSigner | str | None = None


@dataclass(slots=True)
class Connection:
    """What a started agent holds: the runner, the market client, rails (and maybe a sandbox)."""

    runner: Runner
    market: Any
    owns_market: bool
    rails: list[Any]
    sandbox: Any
    market_label: str
    machine_id: str
    pairing: PairingSession
    #: Told ``watch_store`` / ``forget_store`` when this connects and disconnects, if it has them.
    observer: DriveObserver | None = None


async def connect(
    settings: Settings,
    journal: Journal | OrderStore,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    approver: Callable[[OrderSummary], Awaitable[bool]] | None = None,
    observer: DriveObserver | None = None,
    lease_ttl: float | None = None,
) -> Connection:
    """Build every part and the runner over ``journal``; on the embedded sandbox, start it first.

    ``journal`` is the SQLite journal of one process, or an :class:`OrderStore` several processes
    share (then the pairing session is shared through it too). ``lease_ttl`` is the runner's (see
    :class:`~buyer_agent.workflow.Runner`).

    Raises:
        OrchestrationConfigError: no payment rail, no machine id or no key to pair with.
        RailError: a third-party rail entry point fails.
    """
    from buyer_agent.market import AsyncMarketClient

    s = settings
    sandbox: Any = None
    machine_id, api_key, evm_key, solana_key = s.machine_id, s.api_key, s.evm_key, s.solana_key
    evm_rpc, solana_rpc = s.evm_rpc, s.solana_rpc
    evm_chain: str | None = None
    solana_chain: str | None = None
    networks = s.networks if s.networks is not None else agent_networks()
    if s.market is None:
        from buyer_agent.sandbox import Sandbox

        sandbox = Sandbox()
        info = await asyncio.to_thread(sandbox.start)  # stops itself if it cannot start
        # The sandbox's demo wallets are the funded ones: its keys, machine and chains win.
        market: Any = AsyncMarketClient(info.url, api_key=info.api_key.reveal())
        owns, label = True, EMBEDDED
        machine_id, api_key, evm_key = info.machine_id, info.api_key, info.evm_private_key
        evm_rpc, evm_chain = info.evm_rpc_url, info.evm_chain
        solana_key, solana_rpc, solana_chain = info.solana_secret_key, info.solana_rpc_url, info.solana_chain
        # The sandbox's chains are a profile made now: its anvil chain id and token, its mint.
        networks = networks.extend(sandbox_profiles(info))
    elif isinstance(s.market, str):
        market = AsyncMarketClient(s.market, api_key=api_key.reveal() if api_key else None)
        owns, label = True, market_label(s.market)
    else:
        market, owns, label = s.market, False, market_label(s.market)
    # The embedded sandbox pays with its own funded key; elsewhere a configured signer wins.
    chosen = s.evm_signer if sandbox is None else None
    signer: EvmSigner | None = None
    try:
        if isinstance(chosen, str):
            signer = await JsonRpcEvmSigner.connect(chosen)
        elif chosen is not None:
            signer = chosen
        elif evm_key is not None:
            signer = LocalEvmSigner(evm_key)
        rails = await _rails(
            journal, evm_rpc, signer, evm_chain, solana_rpc, solana_key, solana_chain, networks
        )
        pairing = _pairing(s, journal, market, machine_id, signer, label)
    except BaseException:
        if owns:
            await market.aclose()
        if sandbox is not None:
            await asyncio.to_thread(sandbox.stop)
        raise
    runner = Runner(
        market=market,
        journal=journal,
        rails=rails,
        pairing=pairing,
        on_progress=on_progress,
        approver=approver,
        networks=networks,
        observer=observer,
        lease_ttl=lease_ttl,
    )
    # An observer that reads the store (the metrics' ledger gauges) reads this runner's.
    _tell(observer, "watch_store", runner.store)
    return Connection(runner, market, owns, rails, sandbox, label, pairing.machine_id, pairing, observer)


async def disconnect(conn: Connection) -> None:
    """Close the rails, the market client (if :func:`connect` made it) and the sandbox."""
    _tell(conn.observer, "forget_store", conn.runner.store)
    for rail in conn.rails:
        close = getattr(rail, "aclose", None)
        if close is not None:
            await close()
    if conn.owns_market:
        await conn.market.aclose()
    if conn.sandbox is not None:
        await asyncio.to_thread(conn.sandbox.stop)


def _tell(observer: DriveObserver | None, hook: str, store: Any) -> None:
    """Call an observer's optional store hook (``watch_store`` / ``forget_store``), if it has one."""
    call = getattr(observer, hook, None)
    if call is None:
        return
    try:
        call(store)
    except Exception:  # an observer must never stop the agent
        logging.getLogger(__name__).warning("the observer failed in %s; ignored", hook, exc_info=True)


def reader(journal: Journal, machine_id: str | None) -> Runner:
    """A runner that only reads ``journal`` (summaries, allowed steps, approvals): no market needed."""
    return Runner(
        market=cast(Any, None),
        journal=journal,
        rails=[],
        pairing=PairingSession(machine_id=machine_id or ""),
    )


async def _rails(
    journal: Journal | OrderStore,
    evm_rpc: str | None,
    evm_signer: EvmSigner | None,
    evm_chain: str | None,
    solana_rpc: str | None,
    solana_key: Secret | None,
    solana_chain: str | None,
    networks: Networks | None = None,
) -> list[Any]:
    from buyer_agent.rails import EvmRail, SolanaRail, X402Rail

    rails: list[Any] = []
    if evm_rpc and evm_signer is not None:
        # The networks give each chain's confirmation depth (and Solana commitment) to its rail.
        rails.append(EvmRail(evm_rpc, evm_signer, chain=evm_chain, nonce_store=journal, networks=networks))
        # x402 signs EIP-3009 authorizations with the same key and reads their settlement on that node.
        rails.append(X402Rail(evm_rpc, evm_signer, chain=evm_chain, networks=networks))
    if solana_rpc and solana_key:
        if solana_chain is None:
            solana_chain = await _solana_caip2(solana_rpc)
        rails.append(SolanaRail(solana_rpc, solana_key.reveal(), chain=solana_chain, networks=networks))
    # Third-party rails (entry-point group ``buyer_agent.rails``) come after the built-in ones:
    # the runner picks the first rail that supports a quote's rail type and chain.
    rails.extend(plugin_rails())
    if not rails:
        raise OrchestrationConfigError(
            "no payment rail: set BUYER_AGENT_EVM_KEY and BUYER_AGENT_EVM_RPC "
            "(or BUYER_AGENT_SOLANA_KEY and BUYER_AGENT_SOLANA_RPC)"
        )
    return rails


def _pairing(
    s: Settings,
    journal: Journal | OrderStore,
    market: Any,
    machine_id: str | None,
    evm_signer: EvmSigner | None,
    label: str,
) -> PairingSession:
    if not machine_id:
        raise OrchestrationConfigError(
            "no machine id: set PEAQOS_MACHINE_ID (or machine_id in the task file)"
        )
    if s.pairing_id and s.pairing_token and s.market is not None:
        return PairingSession.with_token(
            machine_id=machine_id, pairing_id=s.pairing_id, token=s.pairing_token
        )
    if evm_signer is None:
        raise OrchestrationConfigError(
            "no agent key to pair with: set BUYER_AGENT_EVM_KEY or BUYER_AGENT_EVM_SIGNER (and "
            "PEAQOS_API_KEY), or PEAQOS_AGENT_PAIRING_ID and PEAQOS_AGENT_PAIRING_TOKEN"
        )
    if isinstance(journal, Journal):
        return PairingSession.with_platform_key(
            market,
            machine_id=machine_id,
            agent_key=evm_signer,
            delegation_policy=dict(s.policy) if s.policy is not None else None,
            store=journal,
            market_url=label,
        )
    # A shared store: the workers of this agent share one pairing session (one daily budget, any
    # worker resuming any order), which one rotation would otherwise end for all but the rotator.
    from buyer_agent.fleet import StorePairingShare

    share = StorePairingShare(journal, evm_signer, market_url=label, machine_id=machine_id)
    return PairingSession.with_platform_key(
        market,
        machine_id=machine_id,
        agent_key=evm_signer,
        delegation_policy=dict(s.policy) if s.policy is not None else None,
        market_url=label,
        share=share,
    )


def plugin_rails() -> list[Any]:
    """One rail from each factory registered under the ``buyer_agent.rails`` entry points.

    A factory is called with no arguments (it reads its own configuration) and may return None to
    stay out (e.g. when it is not configured).

    Raises:
        RailError: an entry point cannot be loaded, or its factory fails or returns no rail.
    """
    from buyer_agent.rails import Rail, load_entry_point_rails

    rails: list[Any] = []
    for name, factory in load_entry_point_rails().items():
        try:
            rail = factory()
        except Exception as exc:  # a third party's failure must not look like ours
            raise RailError(f"the rail entry point {name!r} failed to build its rail: {exc}") from exc
        if rail is None:
            continue
        if not isinstance(rail, Rail):
            raise RailError(f"the rail entry point {name!r} returned {type(rail).__name__}, not a Rail")
        rails.append(rail)
    return rails


async def _solana_caip2(rpc_url: str) -> str:
    """``solana:<first 32 chars of the genesis hash>`` (CAIP-2), asked of the RPC node."""
    import httpx

    from buyer_agent._tls import tls_context

    try:
        async with httpx.AsyncClient(verify=tls_context(), timeout=10.0) as client:
            resp = await client.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getGenesisHash"})
            resp.raise_for_status()
            genesis = str(resp.json()["result"])
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise OrchestrationConfigError(f"cannot read the Solana chain id from {rpc_url}: {exc}") from exc
    return f"solana:{genesis[:32]}"
