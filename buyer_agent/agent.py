"""BuyerAgent: the one object a user needs — connect, buy, step, list and resume orders."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from buyer_agent._errors import OrchestrationConfigError, StateError
from buyer_agent._redact import Secret
from buyer_agent.journal import Journal, resolve_state_dir
from buyer_agent.signers import EvmSigner, JsonRpcEvmSigner, LocalEvmSigner
from buyer_agent.task import SANDBOX, Task, load_task
from buyer_agent.workflow import (
    TERMINAL,
    OrderSpec,
    OrderState,
    OrderSummary,
    PairingSession,
    ProgressEvent,
    Runner,
)

__all__ = ["ENV", "BuyerAgent", "SyncBuyerAgent"]

T = TypeVar("T")

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
# Journal meta key recording which market an order was placed on, so resume only drives orders
# the current market knows (orders from an embedded sandbox died with it).
_MARKET_META = "order_market:"
_EMBEDDED = "embedded-sandbox"


def _env(name: str) -> str | None:
    value = os.environ.get(ENV[name], "").strip()
    return value or None


def _secret(value: Secret | str | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value) if value else None


@dataclass(slots=True)
class _Connection:
    """What a started agent holds: the market client, rails, pairing, runner (and maybe a sandbox)."""

    runner: Runner
    market: Any
    owns_market: bool
    rails: list[Any]
    sandbox: Any
    market_label: str


class BuyerAgent:
    """An autonomous buyer for peaqOS Machine Markets, on one journal.

    With no market (and no ``PEAQOS_ORCHESTRATION_URL``) it starts the embedded sandbox — a local
    market with real local chains — in-process, and uses its demo keys and RPC URLs. Given a URL
    (or an ``AsyncMarketClient``) it uses the keys passed in, falling back to the environment
    (``PEAQOS_API_KEY``, ``BUYER_AGENT_EVM_KEY``, …). Nothing connects until first needed.

    Use it as ``async with BuyerAgent() as agent: summary = await agent.buy(task)``; the step-wise
    methods (:meth:`search`, :meth:`choose`, :meth:`place_order`, :meth:`pay`, …) drive one order by
    hand. Keys are held as :class:`Secret` and never shown in its repr.

    Args:
        market: None (embedded sandbox unless ``PEAQOS_ORCHESTRATION_URL`` is set), a URL, or an
            ``AsyncMarketClient`` (not closed by the agent).
        machine_id: The machine the agent buys for (the sandbox's own when on the sandbox).
        api_key: The operator's platform key (``x-api-key``), used to pair.
        evm_key: The agent's EVM private key: signs the pairing challenge and EVM payments.
        evm_signer: Who signs instead of ``evm_key``, keeping the key out of this process: an
            ``EvmSigner`` (``buyer_agent.signers``), or the URL of a JSON-RPC signer (Clef, Web3Signer;
            ``$BUYER_AGENT_EVM_SIGNER``), asked for its account on start. The embedded sandbox
            ignores it (it pays with its own funded demo key).
        solana_key: The agent's Solana keypair (base58, 64 bytes) for SPL payments.
        evm_rpc: EVM JSON-RPC URL.
        solana_rpc: Solana JSON-RPC URL.
        state_dir: Where the journal lives (``--state-dir`` > ``$BUYER_AGENT_STATE_DIR`` > ``./state``).
        pairing_id: An operator-issued pairing (token mode, instead of pairing with ``api_key``).
        pairing_token: Its token.
        delegation_policy: The delegation policy to request when pairing (snake_case keys).
        on_progress: Called on every state change of every order.
        spec: The order :meth:`buy` places by default and the LLM tools start from (budget,
            strategy, rail, acceptance, approval threshold); :meth:`from_task` sets the task's.
        approver: Asked (with the order's summary) when a price is above the order's approval
            threshold; without one the order waits in ``awaiting_approval`` for :meth:`approve`.
    """

    def __init__(
        self,
        market: Any = None,
        *,
        machine_id: str | None = None,
        api_key: Secret | str | None = None,
        evm_key: Secret | str | None = None,
        evm_signer: EvmSigner | str | None = None,
        solana_key: Secret | str | None = None,
        evm_rpc: str | None = None,
        solana_rpc: str | None = None,
        state_dir: str | Path | None = None,
        pairing_id: str | None = None,
        pairing_token: Secret | str | None = None,
        delegation_policy: Mapping[str, Any] | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        spec: OrderSpec | None = None,
        approver: Callable[[OrderSummary], Awaitable[bool]] | None = None,
    ) -> None:
        if market is None or market == "":
            market = _env("market")
        if market == SANDBOX:
            market = None
        self._market_arg: Any = market
        self.machine_id = machine_id
        self._api_key = _secret(api_key)
        self._evm_key = _secret(evm_key)
        self._evm_signer: EvmSigner | str | None = evm_signer or None
        self._solana_key = _secret(solana_key)
        self._evm_rpc = evm_rpc
        self._solana_rpc = solana_rpc
        self.state_dir = resolve_state_dir(state_dir)
        self._pairing_id = pairing_id
        self._pairing_token = _secret(pairing_token)
        self._policy = dict(delegation_policy) if delegation_policy is not None else None
        self._on_progress = on_progress
        self._default_spec = spec
        self._approver = approver
        self._tools: Any = None
        self._journal: Journal | None = None
        self._reader: Runner | None = None
        self._conn: _Connection | None = None
        self._start_lock: asyncio.Lock | None = None
        self.task: Task | None = None

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_task(
        cls,
        task: Task | str | Path,
        *,
        market: Any = None,
        state_dir: str | Path | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> BuyerAgent:
        """An agent for a task file: its market and keys, the environment filling what it leaves out.

        The market is ``market`` if given, else ``$PEAQOS_ORCHESTRATION_URL``, else the file's.
        :meth:`buy` with no argument then buys the task.
        """
        if not isinstance(task, Task):
            task = load_task(task)
        chosen = market if market not in (None, "") else (_env("market") or task.market)
        agent = cls(
            chosen or SANDBOX,
            machine_id=task.machine_id or _env("machine_id"),
            api_key=task.api_key or _env("api_key"),
            evm_key=task.evm_key or _env("evm_key"),
            evm_signer=_task_signer(task) or _env("evm_signer"),
            solana_key=task.solana_key or _env("solana_key"),
            evm_rpc=task.evm_rpc or _env("evm_rpc"),
            solana_rpc=task.solana_rpc or _env("solana_rpc"),
            state_dir=state_dir,
            pairing_id=_env("pairing_id"),
            pairing_token=_env("pairing_token"),
            delegation_policy=task.policy,
            on_progress=on_progress,
        )
        agent.task = task
        return agent

    @classmethod
    def from_env(
        cls,
        *,
        market: Any = None,
        state_dir: str | Path | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> BuyerAgent:
        """An agent configured by the environment (the names in :data:`ENV`)."""
        return cls(
            market if market not in (None, "") else _env("market"),
            machine_id=_env("machine_id"),
            api_key=_env("api_key"),
            evm_key=_env("evm_key"),
            evm_signer=_env("evm_signer"),
            solana_key=_env("solana_key"),
            evm_rpc=_env("evm_rpc"),
            solana_rpc=_env("solana_rpc"),
            state_dir=state_dir,
            pairing_id=_env("pairing_id"),
            pairing_token=_env("pairing_token"),
            on_progress=on_progress,
        )

    @classmethod
    def sync(cls, *args: Any, **kwargs: Any) -> SyncBuyerAgent:
        """A :class:`SyncBuyerAgent` built with the same arguments."""
        return SyncBuyerAgent(cls(*args, **kwargs))

    def __repr__(self) -> str:
        return (
            f"BuyerAgent(market={self.market_label!r}, machine_id={self.machine_id!r}, "
            f"state_dir={str(self.state_dir)!r}, started={self._conn is not None})"
        )

    @property
    def uses_sandbox(self) -> bool:
        """True when the agent runs on the embedded sandbox."""
        return self._market_arg is None

    @property
    def market_label(self) -> str:
        """The market's URL, or ``embedded-sandbox``."""
        if self._conn is not None:
            return self._conn.market_label
        if self._market_arg is None:
            return _EMBEDDED
        if isinstance(self._market_arg, str):
            return self._market_arg.rstrip("/")
        return str(getattr(self._market_arg, "base_url", type(self._market_arg).__name__)).rstrip("/")

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        """The journal (opened on first use; needs no market)."""
        if self._journal is None:
            self._journal = Journal.open_dir(self.state_dir)
        return self._journal

    async def __aenter__(self) -> BuyerAgent:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect now (the market client, the rails, the pairing; the sandbox if needed)."""
        await self._connection()

    async def aclose(self) -> None:
        """Close the rails, the market client (if the agent made it), the sandbox and the journal."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                for rail in conn.rails:
                    close = getattr(rail, "aclose", None)
                    if close is not None:
                        await close()
                if conn.owns_market:
                    await conn.market.aclose()
                if conn.sandbox is not None:
                    await asyncio.to_thread(conn.sandbox.stop)
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
                self._reader = None

    async def _connection(self) -> _Connection:
        if self._conn is not None:
            return self._conn
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._conn is None:
                self._conn = await self._connect()
        return self._conn

    async def _connect(self) -> _Connection:
        from buyer_agent.market import AsyncMarketClient

        sandbox: Any = None
        machine_id, api_key, evm_key, solana_key = (
            self.machine_id,
            self._api_key,
            self._evm_key,
            self._solana_key,
        )
        evm_rpc, solana_rpc = self._evm_rpc, self._solana_rpc
        evm_chain: str | None = None
        solana_chain: str | None = None
        if self._market_arg is None:
            from buyer_agent.sandbox import Sandbox

            sandbox = Sandbox()
            info = await asyncio.to_thread(sandbox.start)  # stops itself if it cannot start
            # The sandbox's demo wallets are the funded ones: its keys, machine and chains win.
            market: Any = AsyncMarketClient(info.url, api_key=info.api_key.reveal())
            owns, label = True, _EMBEDDED
            machine_id, api_key, evm_key = info.machine_id, info.api_key, info.evm_private_key
            evm_rpc, evm_chain = info.evm_rpc_url, info.evm_chain
            solana_key, solana_rpc, solana_chain = (
                info.solana_secret_key,
                info.solana_rpc_url,
                info.solana_chain,
            )
        elif isinstance(self._market_arg, str):
            market = AsyncMarketClient(self._market_arg, api_key=api_key.reveal() if api_key else None)
            owns, label = True, self._market_arg.rstrip("/")
        else:
            market, owns, label = self._market_arg, False, self.market_label
        # The embedded sandbox pays with its own funded key; elsewhere a configured signer wins.
        chosen = self._evm_signer if sandbox is None else None
        signer: EvmSigner | None = None
        try:
            if isinstance(chosen, str):
                signer = await JsonRpcEvmSigner.connect(chosen)
            elif chosen is not None:
                signer = chosen
            elif evm_key is not None:
                signer = LocalEvmSigner(evm_key)
            rails = await self._rails(evm_rpc, signer, evm_chain, solana_rpc, solana_key, solana_chain)
            pairing = self._pairing(market, machine_id, signer)
        except BaseException:
            if owns:
                await market.aclose()
            if sandbox is not None:
                await asyncio.to_thread(sandbox.stop)
            raise
        runner = Runner(
            market=market,
            journal=self.journal,
            rails=rails,
            pairing=pairing,
            on_progress=self._on_progress,
            approver=self._approver,
        )
        self.machine_id = machine_id
        return _Connection(runner, market, owns, rails, sandbox, label)

    async def _rails(
        self,
        evm_rpc: str | None,
        evm_signer: EvmSigner | None,
        evm_chain: str | None,
        solana_rpc: str | None,
        solana_key: Secret | None,
        solana_chain: str | None,
    ) -> list[Any]:
        from buyer_agent.rails import EvmRail, SolanaRail

        rails: list[Any] = []
        if evm_rpc and evm_signer is not None:
            rails.append(EvmRail(evm_rpc, evm_signer, chain=evm_chain, nonce_store=self.journal))
        if solana_rpc and solana_key:
            if solana_chain is None:
                solana_chain = await _solana_caip2(solana_rpc)
            rails.append(SolanaRail(solana_rpc, solana_key.reveal(), chain=solana_chain))
        # Third-party rails (entry-point group ``buyer_agent.rails``) come after the built-in ones:
        # the runner picks the first rail that supports a quote's rail type and chain.
        rails.extend(_plugin_rails())
        if not rails:
            raise OrchestrationConfigError(
                "no payment rail: set BUYER_AGENT_EVM_KEY and BUYER_AGENT_EVM_RPC "
                "(or BUYER_AGENT_SOLANA_KEY and BUYER_AGENT_SOLANA_RPC)"
            )
        return rails

    def _pairing(self, market: Any, machine_id: str | None, evm_signer: EvmSigner | None) -> PairingSession:
        if not machine_id:
            raise OrchestrationConfigError(
                "no machine id: set PEAQOS_MACHINE_ID (or machine_id in the task file)"
            )
        if self._pairing_id and self._pairing_token and self._market_arg is not None:
            return PairingSession.with_token(
                machine_id=machine_id, pairing_id=self._pairing_id, token=self._pairing_token
            )
        if evm_signer is None:
            raise OrchestrationConfigError(
                "no agent key to pair with: set BUYER_AGENT_EVM_KEY or BUYER_AGENT_EVM_SIGNER (and "
                "PEAQOS_API_KEY), or PEAQOS_AGENT_PAIRING_ID and PEAQOS_AGENT_PAIRING_TOKEN"
            )
        return PairingSession.with_platform_key(
            market,
            machine_id=machine_id,
            agent_key=evm_signer,
            delegation_policy=self._policy,
            store=self.journal,
        )

    async def _runner(self) -> Runner:
        return (await self._connection()).runner

    def _read_runner(self) -> Runner:
        """A runner for reading summaries from the journal (no market needed)."""
        if self._conn is not None:
            return self._conn.runner
        if self._reader is None:
            self._reader = Runner(
                market=cast(Any, None),
                journal=self.journal,
                rails=[],
                pairing=PairingSession(machine_id=self.machine_id or ""),
            )
        return self._reader

    # --- buying ---------------------------------------------------------------------------------

    @property
    def spec(self) -> OrderSpec | None:
        """The order :meth:`buy` places by default: the task's, else the ``spec`` given (or None)."""
        return self.task.spec if self.task is not None else self._default_spec

    def _spec(self, spec: OrderSpec | Task | None) -> OrderSpec:
        if spec is None:
            if self.spec is None:
                raise StateError("buy() needs an OrderSpec or a Task", state="", allowed=[])
            return self.spec
        return spec.spec if isinstance(spec, Task) else spec

    async def submit(self, spec: OrderSpec | Task | None = None) -> str:
        """Journal a new order (state ``created``) without driving it; return its id."""
        conn = await self._connection()
        order_id = await conn.runner.submit(self._spec(spec))
        self.journal.set_meta(_MARKET_META + order_id, conn.market_label)
        return order_id

    async def buy(self, spec: OrderSpec | Task | None = None) -> OrderSummary:
        """Run one order to a terminal state (or ``awaiting_approval``) and return its summary.

        Args:
            spec: What to buy; defaults to the task the agent was built from.
        """
        order_id = await self.submit(spec)
        return await (await self._runner()).drive(order_id)

    async def drive(self, order_id: str) -> OrderSummary:
        """Drive an existing order on as far as it goes."""
        return await (await self._runner()).drive(order_id)

    async def _step(self, order_id: str, action: str, **kwargs: Any) -> OrderSummary:
        return await (await self._runner()).step(order_id, action, **kwargs)

    async def pair(self, order_id: str) -> OrderSummary:
        """Step: make sure the agent holds a valid pairing (``created`` → ``paired``)."""
        return await self._step(order_id, "pair")

    async def search(self, order_id: str) -> OrderSummary:
        """Step: search the market for quotes (pairs first when needed)."""
        runner = await self._runner()
        if OrderState(self.journal.order(order_id).state) is OrderState.CREATED:
            await runner.step(order_id, "pair")
        return await runner.step(order_id, "search")

    async def choose(self, order_id: str, quote_id: str | None = None) -> OrderSummary:
        """Step: pick the strategy's quote, or ``quote_id`` if it is eligible."""
        kwargs = {"quote_id": quote_id} if quote_id is not None else {}
        return await self._step(order_id, "choose", **kwargs)

    async def approve(self, order_id: str) -> OrderSummary:
        """Step: approve a price above the approval threshold (a journal entry: needs no market)."""
        return await self._read_runner().step(order_id, "approve")

    async def candidates(self, order_id: str, quote_id: str | None = None) -> dict[str, Any]:
        """The order's quotes with their eligibility and the strategy's pick, without choosing.

        Returns ``{"candidates", "ranking", "recommended", "reason"}`` (see ``Runner.preview``).
        """
        return (await self._runner()).preview(order_id, quote_id)

    async def place_order(self, order_id: str) -> OrderSummary:
        """Step: create the market order for the chosen quote."""
        return await self._step(order_id, "order")

    async def pay(self, order_id: str) -> OrderSummary:
        """Step: pay (sign, journal, broadcast, confirm, prove / lock escrow)."""
        return await self._step(order_id, "pay")

    async def execute(self, order_id: str) -> OrderSummary:
        """Step: have the market execute the paid order."""
        return await self._step(order_id, "execute")

    async def confirm(self, order_id: str) -> OrderSummary:
        """Step: check acceptance and confirm (releasing escrow where there is one)."""
        return await self._step(order_id, "confirm")

    async def dispute(self, order_id: str, reason: str) -> OrderSummary:
        """Step: dispute the delivery with ``reason``."""
        return await self._step(order_id, "dispute", reason=reason)

    async def cancel(self, order_id: str, reason: str = "cancelled by caller") -> OrderSummary:
        """Step: cancel an order before any money moved."""
        return await self._step(order_id, "cancel", reason=reason)

    def allowed_actions(self, order_id: str) -> list[str]:
        """The steps the order's state allows now."""
        return self._read_runner().allowed_actions(order_id)

    # --- LLM tools ------------------------------------------------------------------------------

    def tools(self, format: str = "openai") -> list[dict[str, Any]]:
        """The buyer's tool definitions for an LLM tool loop (``openai``, ``anthropic``, ``json_schema``)."""
        from buyer_agent.tools import tool_definitions

        return tool_definitions(format)

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
        """Run one tool call from a model; always returns a JSON-safe dict, never raises.

        The result is the tool's answer, or ``{"error": {"code", "message", "hint", ...}}`` the model
        can read and recover from (see ``buyer_agent.tools.ERROR_CODES``).
        """
        if self._tools is None:
            from buyer_agent.tools import AgentTools

            self._tools = AgentTools(self)
        result: dict[str, Any] = await self._tools.call(name, arguments)
        return result

    # --- reading and resuming -------------------------------------------------------------------

    def orders(
        self, state: OrderState | str | Sequence[OrderState | str] | None = None
    ) -> list[OrderSummary]:
        """Every journaled order (oldest first), optionally only those in ``state``."""
        states: list[str] | None = None
        if state is not None:
            wanted = [state] if isinstance(state, str) else list(state)
            states = [OrderState(s).value for s in wanted]
        reader = self._read_runner()
        return [reader.summary(rec.order_id) for rec in self.journal.orders(states)]

    def order(self, order_id: str) -> OrderSummary:
        """One order's summary (raises ``JournalError`` when unknown)."""
        return self._read_runner().summary(order_id)

    def order_market(self, order_id: str) -> str | None:
        """The market the order was placed on (``embedded-sandbox`` or a URL), when recorded."""
        return self.journal.get_meta(_MARKET_META + order_id)

    def resumable(self, order_id: str | None = None) -> tuple[list[str], list[str]]:
        """Open orders this agent's market can drive, and those placed on another market.

        Orders placed on an embedded sandbox are never resumable: its state died with its process.
        """
        if order_id is not None:
            records = [self.journal.order(order_id)]
        else:
            records = self.journal.orders([s.value for s in OrderState if s not in TERMINAL])
        mine: list[str] = []
        others: list[str] = []
        for rec in records:
            if OrderState(rec.state) in TERMINAL:
                continue
            placed = self.order_market(rec.order_id)
            if placed == _EMBEDDED or (placed is not None and placed != self.market_label):
                others.append(rec.order_id)
            else:
                mine.append(rec.order_id)
        return mine, others

    async def resume(self, id: str | None = None) -> list[OrderSummary]:
        """Drive on every open order placed on this agent's market (or just ``id``).

        After a crash at any point, a resumed order asks the market or the chain what already
        happened and never repeats a side effect or signs a second payment.
        """
        mine, _ = self.resumable(id)
        if not mine:
            return []
        runner = await self._runner()
        if id is not None:
            return [await runner.drive(id)]
        return list(await asyncio.gather(*(runner.drive(order_id) for order_id in mine)))


def _task_signer(task: Task) -> EvmSigner | str | None:
    """The task's external EVM signer: its URL, or a signer for the named account (None: none)."""
    if task.evm_signer is None or task.evm_signer_address is None:
        return task.evm_signer
    return JsonRpcEvmSigner(task.evm_signer, task.evm_signer_address)


def _plugin_rails() -> list[Any]:
    """One rail from each factory registered under the ``buyer_agent.rails`` entry points.

    A factory is called with no arguments (it reads its own configuration) and may return None to
    stay out (e.g. when it is not configured).

    Raises:
        RailError: an entry point cannot be loaded, or its factory fails or returns no rail.
    """
    from buyer_agent._errors import RailError
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

    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            resp = await client.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getGenesisHash"})
            resp.raise_for_status()
            genesis = str(resp.json()["result"])
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise OrchestrationConfigError(f"cannot read the Solana chain id from {rpc_url}: {exc}") from exc
    return f"solana:{genesis[:32]}"


class SyncBuyerAgent:
    """A blocking wrapper of :class:`BuyerAgent` for scripts (one private event loop).

    ``with BuyerAgent.sync() as agent: agent.buy(task)``. Not for use inside a running event loop.
    """

    def __init__(self, agent: BuyerAgent) -> None:
        self.agent = agent
        self._loop = asyncio.Runner()

    @classmethod
    def from_task(cls, task: Task | str | Path, **kwargs: Any) -> SyncBuyerAgent:
        """See :meth:`BuyerAgent.from_task`."""
        return cls(BuyerAgent.from_task(task, **kwargs))

    @classmethod
    def from_env(cls, **kwargs: Any) -> SyncBuyerAgent:
        """See :meth:`BuyerAgent.from_env`."""
        return cls(BuyerAgent.from_env(**kwargs))

    def __repr__(self) -> str:
        return f"Sync{self.agent!r}"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    def __enter__(self) -> SyncBuyerAgent:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the agent and its event loop."""
        try:
            self._run(self.agent.aclose())
        finally:
            self._loop.close()

    def buy(self, spec: OrderSpec | Task | None = None) -> OrderSummary:
        """See :meth:`BuyerAgent.buy`."""
        return self._run(self.agent.buy(spec))

    def submit(self, spec: OrderSpec | Task | None = None) -> str:
        """See :meth:`BuyerAgent.submit`."""
        return self._run(self.agent.submit(spec))

    def search(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.search`."""
        return self._run(self.agent.search(order_id))

    def choose(self, order_id: str, quote_id: str | None = None) -> OrderSummary:
        """See :meth:`BuyerAgent.choose`."""
        return self._run(self.agent.choose(order_id, quote_id))

    def approve(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.approve`."""
        return self._run(self.agent.approve(order_id))

    def place_order(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.place_order`."""
        return self._run(self.agent.place_order(order_id))

    def pay(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.pay`."""
        return self._run(self.agent.pay(order_id))

    def execute(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.execute`."""
        return self._run(self.agent.execute(order_id))

    def confirm(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.confirm`."""
        return self._run(self.agent.confirm(order_id))

    def dispute(self, order_id: str, reason: str) -> OrderSummary:
        """See :meth:`BuyerAgent.dispute`."""
        return self._run(self.agent.dispute(order_id, reason))

    def tools(self, format: str = "openai") -> list[dict[str, Any]]:
        """See :meth:`BuyerAgent.tools`."""
        return self.agent.tools(format)

    def call_tool(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
        """See :meth:`BuyerAgent.call_tool`."""
        return self._run(self.agent.call_tool(name, arguments))

    def orders(
        self, state: OrderState | str | Sequence[OrderState | str] | None = None
    ) -> list[OrderSummary]:
        """See :meth:`BuyerAgent.orders`."""
        return self.agent.orders(state)

    def order(self, order_id: str) -> OrderSummary:
        """See :meth:`BuyerAgent.order`."""
        return self.agent.order(order_id)

    def resume(self, id: str | None = None) -> list[OrderSummary]:
        """See :meth:`BuyerAgent.resume`."""
        return self._run(self.agent.resume(id))
