"""BuyerAgent: the one object a user needs — connect, buy, step, list and resume orders.

A facade: its parts (the sandbox, the market client, the rails, the pairing and the runner) are
composed in :mod:`buyer_agent._compose`; the LLM tool surface (:meth:`BuyerAgent.tools`,
:meth:`BuyerAgent.call_tool`) is attached by :mod:`buyer_agent.tools`, which depends on the agent,
never the reverse. :class:`SyncBuyerAgent` is its blocking twin for scripts.

Over ~400 lines on purpose: it is the public API, one short documented method per step and reader
that delegates to the runner or the journal; nothing is built or decided here.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, TypeVar

from buyer_agent._compose import (
    EMBEDDED,
    ENV,
    Connection,
    Settings,
    connect,
    disconnect,
    env,
    market_label,
    reader,
    secret,
)
from buyer_agent._errors import StateError
from buyer_agent._redact import Secret
from buyer_agent._urls import same_market
from buyer_agent.journal import Journal, resolve_state_dir
from buyer_agent.networks import Networks, agent_networks
from buyer_agent.signers import EvmSigner, JsonRpcEvmSigner
from buyer_agent.task import SANDBOX, Task, load_task
from buyer_agent.workflow import (
    TERMINAL,
    DriveObserver,
    OrderSpec,
    OrderState,
    OrderSummary,
    PairingSession,
    ProgressEvent,
    Runner,
)

__all__ = ["ENV", "BuyerAgent", "SyncBuyerAgent", "ToolSurface", "attach_tools"]

T = TypeVar("T")

# Journal meta key recording which market an order was placed on, so resume only drives orders
# the current market knows (orders from an embedded sandbox died with it).
_MARKET_META = "order_market:"


class ToolSurface(Protocol):
    """The LLM tools bound to one agent (``buyer_agent.tools.AgentTools``)."""

    def definitions(self, format: str = "openai") -> list[dict[str, Any]]:
        """The tool definitions in a model API's format."""
        ...

    async def call(self, name: Any, arguments: Any = None) -> dict[str, Any]:
        """Run one tool call; always a JSON-safe dict."""
        ...


def attach_tools(factory: Callable[[BuyerAgent], ToolSurface]) -> None:
    """Give every agent its tool surface (``buyer_agent.tools`` does this when it is imported)."""
    BuyerAgent._tool_factory = factory


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
        networks: The network profiles a payment's token is checked against before signing; default
            the built-in ones extended by ``$BUYER_AGENT_NETWORKS`` (the embedded sandbox adds its own).
        observer: Told when each order and step starts and finishes and of every journaled event
            (a ``DriveObserver``: ``buyer_agent.telemetry``'s traces, metrics and log context, or
            ``Observers`` of several); one that raises is logged and ignored. An observer with a
            ``watch_store(store)`` method is lent the agent's order store when it connects (the
            metrics' ledger gauges read it) and told ``forget_store(store)`` when it closes.
    """

    #: Builds an agent's tool surface; set by ``buyer_agent.tools`` (see :func:`attach_tools`).
    _tool_factory: ClassVar[Callable[[BuyerAgent], ToolSurface] | None] = None

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
        networks: Networks | None = None,
        observer: DriveObserver | None = None,
    ) -> None:
        if market is None or market == "":
            market = env("market")
        if market == SANDBOX:
            market = None
        self._market_arg: Any = market
        self.machine_id = machine_id
        self._api_key = secret(api_key)
        self._evm_key = secret(evm_key)
        self._evm_signer: EvmSigner | str | None = evm_signer or None
        self._solana_key = secret(solana_key)
        self._evm_rpc = evm_rpc
        self._solana_rpc = solana_rpc
        self.state_dir = resolve_state_dir(state_dir)
        self._pairing_id = pairing_id
        self._pairing_token = secret(pairing_token)
        self._policy = dict(delegation_policy) if delegation_policy is not None else None
        self._on_progress = on_progress
        self._default_spec = spec
        self._approver = approver
        self._observer = observer
        self.networks = networks if networks is not None else agent_networks()
        self._tools: ToolSurface | None = None
        self._journal: Journal | None = None
        self._reader: Runner | None = None
        self._conn: Connection | None = None
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
        observer: DriveObserver | None = None,
    ) -> BuyerAgent:
        """An agent for a task file: its market and keys, the environment filling what it leaves out.

        The market is ``market`` if given, else ``$PEAQOS_ORCHESTRATION_URL``, else the file's.
        :meth:`buy` with no argument then buys the task.
        """
        if not isinstance(task, Task):
            task = load_task(task)
        chosen = market if market not in (None, "") else (env("market") or task.market)
        agent = cls(
            chosen or SANDBOX,
            machine_id=task.machine_id or env("machine_id"),
            api_key=task.api_key or env("api_key"),
            evm_key=task.evm_key or env("evm_key"),
            evm_signer=_task_signer(task) or env("evm_signer"),
            solana_key=task.solana_key or env("solana_key"),
            evm_rpc=task.evm_rpc or env("evm_rpc"),
            solana_rpc=task.solana_rpc or env("solana_rpc"),
            state_dir=state_dir,
            pairing_id=env("pairing_id"),
            pairing_token=env("pairing_token"),
            delegation_policy=task.policy,
            on_progress=on_progress,
            networks=agent_networks(list(task.networks)),
            observer=observer,
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
        observer: DriveObserver | None = None,
    ) -> BuyerAgent:
        """An agent configured by the environment (the names in :data:`ENV`)."""
        return cls(
            market if market not in (None, "") else env("market"),
            machine_id=env("machine_id"),
            api_key=env("api_key"),
            evm_key=env("evm_key"),
            evm_signer=env("evm_signer"),
            solana_key=env("solana_key"),
            evm_rpc=env("evm_rpc"),
            solana_rpc=env("solana_rpc"),
            state_dir=state_dir,
            pairing_id=env("pairing_id"),
            pairing_token=env("pairing_token"),
            on_progress=on_progress,
            observer=observer,
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
        return market_label(self._market_arg)

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
                await disconnect(conn)
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
                self._reader = None

    async def _connection(self) -> Connection:
        if self._conn is not None:
            return self._conn
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._conn is None:
                self._conn = await self._connect()
        return self._conn

    async def _connect(self) -> Connection:
        conn = await connect(
            self._settings(),
            self.journal,
            on_progress=self._on_progress,
            approver=self._approver,
            observer=self._observer,
        )
        self.machine_id = conn.machine_id
        return conn

    def _settings(self) -> Settings:
        """What this agent connects with (a fleet process connects with them to a shared store)."""
        return Settings(
            market=self._market_arg,
            machine_id=self.machine_id,
            api_key=self._api_key,
            evm_key=self._evm_key,
            solana_key=self._solana_key,
            evm_rpc=self._evm_rpc,
            solana_rpc=self._solana_rpc,
            pairing_id=self._pairing_id,
            pairing_token=self._pairing_token,
            policy=self._policy,
            networks=self.networks,
            evm_signer=self._evm_signer,
        )

    async def pairing(self) -> PairingSession:
        """The agent's pairing session on its market (connecting first; it pairs on its first token).

        ``await (await agent.pairing()).token()`` pairs or rotates now; ``forget()`` drops the
        stored pairing of this (market, machine, agent address) so the next token pairs anew.
        """
        return (await self._connection()).pairing

    async def _runner(self) -> Runner:
        return (await self._connection()).runner

    def _read_runner(self) -> Runner:
        """A runner for reading summaries from the journal (no market needed)."""
        if self._conn is not None:
            return self._conn.runner
        if self._reader is None:
            self._reader = reader(self.journal, self.machine_id)
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

    async def adopt_payment(self, order_id: str, tx: str) -> OrderSummary:
        """The pre-paid flow: adopt ``tx``, a payment the operator already made, for an ``ordered`` order.

        The chain is read, nothing is signed: the transaction must be mined at the chain's depth, sent by
        the order's payer and move exactly the agreed amount of the pinned token to the payee (or into
        the order's escrow). Then the order goes on as paid: proof (or the escrow lock's), ready to
        execute.

        Raises:
            PaymentMismatchError: the transaction pays something else (``field`` names what); the
                order stays ``ordered``.
            StateError: the order is not ``ordered``, or its quote's flow takes no payment made elsewhere.
        """
        return await self._step(order_id, "adopt", tx=tx)

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
        """Step: cancel an order before any money moved (a journal entry: needs no market)."""
        return await self._read_runner().step(order_id, "cancel", reason=reason)

    async def withdraw(self, order_id: str, reason: str) -> OrderSummary:
        """Cancel an order placed on the market but not paid (a person's call; a journal entry)."""
        return await self._read_runner().step(order_id, "withdraw", reason=reason)

    async def abandon(self, order_id: str, reason: str) -> OrderSummary:
        """Close an order whose market is gone (failed, ``ORDER_ABANDONED``; a journal entry)."""
        return await self._read_runner().step(order_id, "abandon", reason=reason)

    def allowed_actions(self, order_id: str) -> list[str]:
        """The steps the order's state allows now."""
        return self._read_runner().allowed_actions(order_id)

    # --- LLM tools ------------------------------------------------------------------------------

    def tools(self, format: str = "openai") -> list[dict[str, Any]]:
        """The buyer's tool definitions for an LLM tool loop (``openai``, ``anthropic``, ``json_schema``)."""
        return self._tool_surface().definitions(format)

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
        """Run one tool call from a model; always returns a JSON-safe dict, never raises.

        The result is the tool's answer, or ``{"error": {"code", "message", "hint", ...}}`` the model
        can read and recover from (see ``buyer_agent.tools.ERROR_CODES``).
        """
        return await self._tool_surface().call(name, arguments)

    def _tool_surface(self) -> ToolSurface:
        if self._tools is None:
            factory = type(self)._tool_factory
            if factory is None:  # only when buyer_agent.tools failed to import
                raise RuntimeError("the LLM tools are not available: import buyer_agent.tools")
            self._tools = factory(self)
        return self._tools

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

    def move_order(self, order_id: str, market: str) -> None:
        """Record that an open order now lives on ``market`` (journaled as ``note:market_moved``)."""
        rec = self.journal.order(order_id)
        before = self.order_market(order_id)
        self.journal.record(
            order_id, "note:market_moved", rec.state, rec.state, {"from": before, "to": market}
        )
        self.journal.set_meta(_MARKET_META + order_id, market)

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
            if placed == EMBEDDED or (placed is not None and not same_market(placed, self.market_label)):
                others.append(rec.order_id)
            else:
                mine.append(rec.order_id)
        return mine, others

    async def resume(
        self, id: str | None = None, *, on_elsewhere: Callable[[str, str], None] | None = None
    ) -> list[OrderSummary]:
        """Drive on every open order placed on this agent's market (or just ``id``), concurrently.

        After a crash at any point, a resumed order asks the market or the chain what already
        happened and never repeats a side effect or signs a second payment. An order another live
        process is driving (it holds the order's lease) is left to it: its summary is returned as it
        stands and ``on_elsewhere(order_id, holder)`` is called; the other orders go on.

        Raises:
            StateError: ``id`` is given and another process is driving that order.
        """
        mine, _ = self.resumable(id)
        if not mine:
            return []
        runner = await self._runner()
        if id is not None:
            return [await runner.drive(id)]

        async def drive_or_leave(order_id: str) -> OrderSummary:
            try:
                return await runner.drive(order_id)
            except StateError:
                holder = self.journal.order(order_id).lease_owner
                if holder is None:  # not a lease held elsewhere: a real refusal
                    raise
                if on_elsewhere is not None:
                    on_elsewhere(order_id, holder)
                return self.order(order_id)

        return list(await asyncio.gather(*(drive_or_leave(order_id) for order_id in mine)))


def _task_signer(task: Task) -> EvmSigner | str | None:
    """The task's external EVM signer: its URL, or a signer for the named account (None: none)."""
    if task.evm_signer is None or task.evm_signer_address is None:
        return task.evm_signer
    return JsonRpcEvmSigner(task.evm_signer, task.evm_signer_address)


class SyncBuyerAgent:
    """A blocking wrapper of :class:`BuyerAgent` for scripts (one private event loop).

    ``with BuyerAgent.sync() as agent: agent.buy(task)``. Not for use inside a running event loop.

    Every public method of :class:`BuyerAgent` is here under the same name and arguments, generically:
    a coroutine method runs to its end on the wrapper's loop, a plain one is called as it is, and any
    other public attribute (``journal``, ``spec``, ``state_dir``, …) reads through to :attr:`agent`.
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

    @classmethod
    def sync(cls, *args: Any, **kwargs: Any) -> SyncBuyerAgent:
        """See :meth:`BuyerAgent.sync`."""
        return cls(BuyerAgent(*args, **kwargs))

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

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the class does not define: a subclass's extra methods and the
        # agent's plain attributes (``state_dir``, ``machine_id``, ``task``).
        if name.startswith("_") or name == "agent":
            raise AttributeError(name)
        value = getattr(self.agent, name)
        if inspect.iscoroutinefunction(value):
            method = value

            @functools.wraps(method)
            def blocking(*args: Any, **kwargs: Any) -> Any:
                return self._run(method(*args, **kwargs))

            return blocking
        return value


def _forward(name: str, member: Any) -> Any:
    """The blocking twin of ``BuyerAgent.<name>`` (a method, or a property read through)."""
    if isinstance(member, property):
        return property(lambda self: getattr(self.agent, name), doc=member.__doc__)
    if inspect.iscoroutinefunction(member):

        @functools.wraps(member)
        def blocking(self: SyncBuyerAgent, *args: Any, **kwargs: Any) -> Any:
            return self._run(getattr(self.agent, name)(*args, **kwargs))

        return blocking

    @functools.wraps(member)
    def direct(self: SyncBuyerAgent, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.agent, name)(*args, **kwargs)

    return direct


def _public_members(cls: type) -> dict[str, Any]:
    """The public methods and properties ``cls`` defines or inherits (class and static methods aside)."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, member in vars(klass).items():
            if name.startswith("_") or isinstance(member, classmethod | staticmethod):
                continue
            if isinstance(member, property) or inspect.isfunction(member):
                members[name] = member
    return members


for _name, _member in _public_members(BuyerAgent).items():
    if _name not in vars(SyncBuyerAgent):
        setattr(SyncBuyerAgent, _name, _forward(_name, _member))
del _name, _member
