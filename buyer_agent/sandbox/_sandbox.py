"""The sandbox facade: local chains, funded demo wallets and the market server, started and stopped as one."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from buyer_agent._redact import Secret
from buyer_agent.sandbox.market import (
    CATALOGUE,
    ChainFacts,
    EvmView,
    FaultConfig,
    MarketContext,
    MarketServer,
    MarketSettings,
    SolanaView,
    Store,
)

__all__ = ["DEMO_EVM_KEY", "Sandbox", "SandboxInfo"]

_log = logging.getLogger("buyer_agent.sandbox")

# Fixed demo keys: worthless test keys, printed on purpose so scripts can use the funded wallets.
DEMO_EVM_KEY = "0x" + hashlib.sha256(b"buyer-agent sandbox demo buyer (evm)").hexdigest()
_DEMO_SOLANA_SEED = hashlib.sha256(b"buyer-agent sandbox demo buyer (solana)").digest()
_DEMO_USDC = 1_000 * 10**6
_DEMO_ETH = 100 * 10**18
_DEMO_SOL = 10 * 10**9
_SECRETS_FILE = "sandbox-secrets.json"


#: The market's own account that submits x402 settlements (a fixed, worthless demo key).
_FACILITATOR_SEED = hashlib.sha256(b"buyer-agent sandbox x402 facilitator").digest()


def _provider_seed(provider_key: str) -> bytes:
    return hashlib.sha256(f"buyer-agent sandbox provider {provider_key}".encode()).digest()


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """What a started sandbox offers; :meth:`to_json` is the documented JSON line.

    ``x402_token_address`` is the EIP-3009 USDC that x402 payments authorize (``evm.x402_token_address``
    in the JSON line); the demo buyer holds 1,000 of it too.
    """

    url: str
    api_key: Secret
    machine_id: str
    evm_address: str
    evm_private_key: Secret
    solana_address: str | None
    solana_secret_key: Secret | None
    evm_rpc_url: str
    evm_chain: str
    token_address: str
    escrow_address: str
    solana_rpc_url: str | None
    solana_chain: str | None
    mint: str | None
    x402_token_address: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON-line contract (secrets revealed: they are worthless test keys and the API key)."""
        return {
            "url": self.url,
            "api_key": self.api_key.reveal(),
            "machine_id": self.machine_id,
            "wallets": {
                "evm": {"address": self.evm_address, "private_key": self.evm_private_key.reveal()},
                "solana": {
                    "address": self.solana_address,
                    "secret_key": None if self.solana_secret_key is None else self.solana_secret_key.reveal(),
                },
            },
            "evm": {
                "rpc_url": self.evm_rpc_url,
                "chain": self.evm_chain,
                "token_address": self.token_address,
                "escrow_address": self.escrow_address,
                "x402_token_address": self.x402_token_address,
            },
            "solana": {"rpc_url": self.solana_rpc_url, "chain": self.solana_chain, "mint": self.mint},
        }


class _LedgerGateway:
    """The market's view of the in-process Solana RPC: transaction lookups and refunds."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def get_transaction(self, signature: str) -> dict[str, Any] | None:
        record = self.server.ledger.record(signature)
        if record is None:
            return None
        return {
            "meta": {
                "err": record.err,
                "preTokenBalances": record.pre_token_balances,
                "postTokenBalances": record.post_token_balances,
            }
        }

    def transfer(self, sender: Any, to: str, raw: int) -> str:
        return str(self.server.chain.transfer_usdc(sender, to, raw))


class Sandbox:
    """A local Machine Markets with real local chains.

    ``start()`` launches anvil (contracts deployed, the deployer is the arbiter), the LiteSVM Solana
    RPC, funds the demo buyer wallets (ETH/SOL and 1,000 USDC on each chain, and 1,000 of the EIP-3009
    USDC that x402 payments authorize) and serves the market on
    ``127.0.0.1:port``. With ``state_dir`` the market state, the API key and the anvil chain persist
    across restarts. ``idempotency`` (default False, as peaq's docs promise no such header) makes the
    market honour ``Idempotency-Key``; off, a repeated write meets each endpoint's own rules. Usable
    as a (sync) context manager; start/stop are quick enough to call from async code via
    ``asyncio.to_thread``.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        port: int = 0,
        faults: FaultConfig | None = None,
        *,
        settings: MarketSettings | None = None,
        solana: bool = True,
        idempotency: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.port = port
        self.faults = faults
        self.idempotency = idempotency
        self.settings = settings or MarketSettings()
        self._want_solana = solana
        self._anvil: Any = None
        self._solana: Any = None
        self._server: MarketServer | None = None
        self._info: SandboxInfo | None = None
        self.evm: Any = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def info(self) -> SandboxInfo:
        """The started sandbox's facts."""
        if self._info is None:
            raise RuntimeError("sandbox not started")
        return self._info

    @property
    def market(self) -> MarketServer:
        """The running market server (fault controls, context)."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return self._server

    @property
    def solana_server(self) -> Any:
        """The running ``SolanaRpcServer`` (or None)."""
        return self._solana

    def start(self) -> SandboxInfo:
        """Start chains and market; returns the facts (idempotent).

        Raises:
            RailError: a chain could not be started or set up.
        """
        if self._info is not None:
            return self._info
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SandboxInfo:
        from buyer_agent.sandbox.chains import AnvilNode, EvmChain, EvmWallet

        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        api_key, jwt_secret = self._secrets()
        anvil_dir = self.state_dir / "anvil" if self.state_dir is not None else None
        self._anvil = AnvilNode(state_dir=anvil_dir).start()
        evm = EvmChain.setup(self._anvil)
        self.evm = evm
        buyer = EvmWallet.from_key(DEMO_EVM_KEY)
        self._top_up_evm(evm, buyer.address)
        facilitator = EvmWallet.from_key("0x" + _FACILITATOR_SEED.hex())
        if evm.eth_balance(facilitator.address) < _DEMO_ETH // 10:
            evm.fund(facilitator.address, eth_wei=_DEMO_ETH // 10)
        evm_wallets: dict[str, Any] = {}
        for spec in CATALOGUE:
            if spec.chain == "evm" and spec.provider_key not in evm_wallets:
                # Fixed provider keys keep payee addresses stable across restarts; ETH pays refund gas.
                wallet = EvmWallet.from_key("0x" + _provider_seed(spec.provider_key).hex())
                evm_wallets[spec.provider_key] = wallet
                if evm.eth_balance(wallet.address) < _DEMO_ETH // 10:
                    evm.fund(wallet.address, eth_wei=_DEMO_ETH // 10)
        solana_view: Any = None
        solana_facts: tuple[str | None, str | None, dict[str, str]] = (None, None, {})
        solana_keys: dict[str, Any] = {}
        sol_address: str | None = None
        sol_secret: Secret | None = None
        if self._want_solana:
            solana_view, solana_facts, solana_keys, sol_address, sol_secret = self._start_solana()
        facts = ChainFacts(
            evm_chain=evm.caip2,
            token_address=evm.token_address,
            escrow_address=evm.escrow_address,
            solana_chain=solana_facts[0],
            mint=solana_facts[1],
            evm_payees={k: w.address for k, w in evm_wallets.items()},
            solana_payees=dict(solana_facts[2]),
            x402_token_address=evm.x402_token_address,
        )
        ctx = MarketContext(
            store=Store(self.state_dir / "market" if self.state_dir is not None else None),
            facts=facts,
            api_key=api_key,
            jwt_secret=jwt_secret,
            settings=self.settings,
            evm=EvmView(evm),
            solana=solana_view,
            evm_provider_keys=dict(evm_wallets),
            solana_provider_keys=solana_keys,
            x402_facilitator=facilitator,
        )
        self._server = MarketServer(
            ctx, port=self.port, faults=self.faults, idempotency=self.idempotency
        ).start()
        self._info = SandboxInfo(
            url=self._server.url,
            api_key=api_key,
            machine_id=self.settings.machine_id,
            evm_address=buyer.address,
            evm_private_key=buyer.private_key,
            solana_address=sol_address,
            solana_secret_key=sol_secret,
            evm_rpc_url=evm.rpc_url,
            evm_chain=evm.caip2,
            token_address=evm.token_address,
            escrow_address=evm.escrow_address,
            solana_rpc_url=None if self._solana is None else self._solana.rpc_url,
            solana_chain=facts.solana_chain,
            mint=facts.mint,
            x402_token_address=evm.x402_token_address,
        )
        info = self._info.to_json()
        info.pop("api_key")
        info["wallets"] = {k: {"address": v["address"]} for k, v in info["wallets"].items()}
        ctx.public_info = info
        _log.info("sandbox market on %s", self._info.url)
        return self._info

    def _start_solana(self) -> tuple[Any, tuple[str, str, dict[str, str]], dict[str, Any], str, Secret]:
        from solders.keypair import Keypair

        from buyer_agent.sandbox.chains import SolanaRpcServer, SolanaWallet

        # With a state dir the Solana ledger persists too, so orders paid there still verify.
        solana_dir = self.state_dir / "solana" if self.state_dir is not None else None
        self._solana = SolanaRpcServer(state_dir=solana_dir).start()
        chain = self._solana.chain
        buyer = SolanaWallet.from_keypair(Keypair.from_seed(_DEMO_SOLANA_SEED))
        chain.fund(buyer.address, sol=_DEMO_SOL, usdc=_DEMO_USDC)
        keys: dict[str, Any] = {}
        payees: dict[str, str] = {}
        for spec in CATALOGUE:
            if spec.chain != "solana" or spec.provider_key in keys:
                continue
            wallet = SolanaWallet.from_keypair(Keypair.from_seed(_provider_seed(spec.provider_key)))
            # SOL for the fees of a dispute refund, and a token account so refunds can be paid from it.
            chain.fund(wallet.address, sol=_DEMO_SOL, usdc=0)
            keys[spec.provider_key] = wallet
            payees[spec.provider_key] = wallet.address
        view = SolanaView(_LedgerGateway(self._solana))
        return view, (self._solana.caip2, self._solana.mint, payees), keys, buyer.address, buyer.secret_key

    def _top_up_evm(self, evm: Any, address: str) -> None:
        eth = evm.eth_balance(address)
        usdc = evm.usdc_balance(address)
        x402_usdc = evm.x402_balance(address)
        evm.fund(
            address,
            eth_wei=max(0, _DEMO_ETH - eth),
            usdc=max(0, _DEMO_USDC - usdc),
            x402_usdc=max(0, _DEMO_USDC - x402_usdc),
        )

    def _secrets(self) -> tuple[Secret, Secret]:
        """The API key and JWT secret: fresh per start, or persisted in ``state_dir``."""
        fresh = {"api_key": "sbx_" + secrets.token_urlsafe(24), "jwt_secret": secrets.token_urlsafe(32)}
        if self.state_dir is None:
            return Secret(fresh["api_key"]), Secret(fresh["jwt_secret"])
        path = self.state_dir / _SECRETS_FILE
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
        else:
            stored = fresh
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(stored, handle)
        return Secret(str(stored["api_key"])), Secret(str(stored["jwt_secret"]))

    def stop(self) -> None:
        """Stop the market and the chains (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._solana is not None:
            self._solana.stop()
            self._solana = None
        if self._anvil is not None:
            self._anvil.stop()
            self._anvil = None
        self._info = None

    def __enter__(self) -> SandboxInfo:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(url={self._info.url!r})" if self._info is not None else "Sandbox(stopped)"
