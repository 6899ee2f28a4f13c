"""The chain checks: keys (addresses only), each RPC and its chain, gas for a payment, the token balance."""

from __future__ import annotations

from decimal import Decimal

import httpx

from buyer_agent.doctor._report import Check, Status
from buyer_agent.doctor._rpc import RpcFailure, call, erc20_balance, spl_balance
from buyer_agent.doctor._setup import ENV, Setup
from buyer_agent.networks import NETWORKS_ENV, NetworkProfile, Networks

__all__ = ["gas_checks", "key_checks", "rpc_checks", "token_checks"]

# Gas a payment may use: an ERC-20 transfer (~50-65k), or approve + escrow deposit; with headroom.
_GAS_TRANSFER = 120_000
_GAS_ESCROW = 300_000
# Lamports: two signatures' fees, and the rent of the payee's token account the payment may create.
_SOL_FEES = 10_000
_SOL_TOKEN_ACCOUNT_RENT = 2_039_280


# --- keys --------------------------------------------------------------------------------------------


def key_checks(s: Setup) -> list[Check]:
    out: list[Check] = []
    if s.evm_key is not None:
        try:
            from eth_account import Account

            s.evm_address = str(Account.from_key(s.evm_key.reveal()).address)
            out.append(Check("key evm", Status.PASS, f"EVM key present: address {s.evm_address}"))
        except Exception:
            out.append(
                Check(
                    "key evm",
                    Status.FAIL,
                    "the EVM key is not a valid private key",
                    "set BUYER_AGENT_EVM_KEY (or keys.evm) to the agent's 0x-hex private key",
                )
            )
    if s.solana_key is not None:
        try:
            from solders.keypair import Keypair

            s.solana_address = str(Keypair.from_base58_string(s.solana_key.reveal()).pubkey())
            out.append(Check("key solana", Status.PASS, f"Solana key present: address {s.solana_address}"))
        except Exception:
            out.append(
                Check(
                    "key solana",
                    Status.FAIL,
                    "the Solana key is not a valid base58 keypair",
                    "set BUYER_AGENT_SOLANA_KEY (or keys.solana) to the 64-byte keypair in base58",
                )
            )
    if s.evm_key is None and s.solana_key is None:
        out.append(
            Check(
                "keys",
                Status.FAIL,
                "no payment key: neither an EVM nor a Solana key is set",
                "set BUYER_AGENT_EVM_KEY (or BUYER_AGENT_SOLANA_KEY), referenced from keys: in the task",
            )
        )
    return out


# --- RPCs --------------------------------------------------------------------------------------------


def _label(networks: Networks, chain: str) -> str:
    profile = networks.get(chain)
    return f"{chain} ({profile.name})" if profile is not None else chain


def rpc_checks(s: Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    for family, url, address in (
        ("evm", s.evm_rpc, s.evm_address),
        ("solana", s.solana_rpc, s.solana_address),
    ):
        name = f"rpc {family}"
        env_name = ENV[f"{family}_rpc"]
        if address is None or not s.wants(family):
            continue
        if url is None:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"a {family} key is set but no {family} RPC",
                    f"set rpc.{family} or {env_name}",
                )
            )
            continue
        try:
            if family == "evm":
                chain = f"eip155:{int(str(call(client, url, 'eth_chainId')), 16)}"
            else:
                chain = f"solana:{str(call(client, url, 'getGenesisHash'))[:32]}"
        except (RpcFailure, ValueError) as exc:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"cannot reach the RPC at {url}: {exc}",
                    f"check rpc.{family} / {env_name}, or the node",
                )
            )
            continue
        want = s.want_chain
        if want is not None and want not in ("evm", "solana") and want != chain:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"the RPC at {url} is on {_label(s.networks, chain)}, "
                    f"the task pays on {_label(s.networks, want)}",
                    f"point rpc.{family} / {env_name} at a node of {want}, or change payment.chain",
                )
            )
            continue
        s.chains[family] = chain
        profile = s.networks.get(chain)
        if profile is None:
            out.append(
                Check(
                    name,
                    Status.WARN,
                    f"{chain} at {url}: no network profile (token contracts pinned only by payment.tokens)",
                    f"add a profile for {chain} to the file ${NETWORKS_ENV} names, or networks: in the task",
                )
            )
        else:
            out.append(Check(name, Status.PASS, f"{_label(s.networks, chain)} at {url}"))
    return out


# --- gas ---------------------------------------------------------------------------------------------


def _human(raw: int, decimals: int) -> str:
    return format(Decimal(raw).scaleb(-decimals).normalize(), "f")


def gas_checks(s: Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    rail = s.task.spec.rail if s.task is not None else None
    evm_chain = s.chains.get("evm")
    if evm_chain is not None and s.evm_rpc and s.evm_address:
        profile = s.networks.get(evm_chain)
        symbol, decimals = (
            (profile.native.symbol, profile.native.decimals) if profile and profile.native else ("ETH", 18)
        )
        try:
            balance = int(str(call(client, s.evm_rpc, "eth_getBalance", [s.evm_address, "latest"])), 16)
            price = int(str(call(client, s.evm_rpc, "eth_gasPrice")), 16)
        except (RpcFailure, ValueError) as exc:
            out.append(
                Check("gas evm", Status.FAIL, f"cannot read the gas balance: {exc}", "check the EVM RPC")
            )
        else:
            need = price * (_GAS_ESCROW if rail == "onchain-escrow" else _GAS_TRANSFER)
            have = f"{_human(balance, decimals)} {symbol} at {s.evm_address}"
            if balance < need:
                out.append(
                    Check(
                        "gas evm",
                        Status.FAIL,
                        f"{have}; a payment needs about {_human(need, decimals)} {symbol} of gas",
                        f"send {symbol} to {s.evm_address} on {evm_chain}",
                    )
                )
            else:
                out.append(
                    Check("gas evm", Status.PASS, f"{have} (a payment needs about {_human(need, decimals)})")
                )
    sol_chain = s.chains.get("solana")
    if sol_chain is not None and s.solana_rpc and s.solana_address:
        try:
            result = call(client, s.solana_rpc, "getBalance", [s.solana_address])
            lamports = int(result["value"] if isinstance(result, dict) else result)
        except (RpcFailure, ValueError, KeyError, TypeError) as exc:
            out.append(
                Check(
                    "gas solana", Status.FAIL, f"cannot read the SOL balance: {exc}", "check the Solana RPC"
                )
            )
        else:
            have = f"{_human(lamports, 9)} SOL at {s.solana_address}"
            fix = f"send SOL to {s.solana_address} on {sol_chain}"
            if lamports < _SOL_FEES:
                out.append(Check("gas solana", Status.FAIL, f"{have}: not enough for the fees", fix))
            elif lamports < _SOL_FEES + _SOL_TOKEN_ACCOUNT_RENT:
                out.append(
                    Check(
                        "gas solana",
                        Status.WARN,
                        f"{have}: enough for fees, not for a payee's new token account",
                        fix,
                    )
                )
            else:
                out.append(Check("gas solana", Status.PASS, have))
    return out


# --- token balance -------------------------------------------------------------------------------------


def _token_for(s: Setup, chain: str, symbol: str) -> tuple[str, int] | None:
    allow = s.task.spec.tokens if s.task is not None else {}
    profile: NetworkProfile | None = s.networks.get(chain)
    known = profile.token(symbol) if profile is not None else None
    for sym, address in allow.items():
        if sym.upper() == symbol.upper():
            return address, known.decimals if known is not None else (s.budget.decimals if s.budget else 6)
    return (known.address, known.decimals) if known is not None else None


def token_checks(s: Setup, client: httpx.Client) -> list[Check]:
    out: list[Check] = []
    symbol = s.budget.currency if s.budget is not None else "USDC"
    for family, url, address in (
        ("evm", s.evm_rpc, s.evm_address),
        ("solana", s.solana_rpc, s.solana_address),
    ):
        chain = s.chains.get(family)
        if chain is None or url is None or address is None:
            continue
        name = f"token {family}"
        token = _token_for(s, chain, symbol)
        if token is None:
            out.append(
                Check(
                    name,
                    Status.WARN,
                    f"no {symbol} contract known on {chain}: balance not checked; a payment there is refused",
                    f"name it in payment.tokens ({{{symbol}: '<address>'}}) or in a network profile",
                )
            )
            continue
        contract, decimals = token
        try:
            raw = (
                erc20_balance(client, url, contract, address)
                if family == "evm"
                else spl_balance(client, url, contract, address)
            )
        except (RpcFailure, ValueError) as exc:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"cannot read the {symbol} balance: {exc}",
                    f"check {contract} on {chain}",
                )
            )
            continue
        have = f"{_human(raw, decimals)} {symbol} ({contract}) at {address}"
        budget = s.budget
        if budget is None:
            out.append(Check(name, Status.PASS, have))
        elif raw * 10**budget.decimals < budget.amount * 10**decimals:
            out.append(
                Check(
                    name,
                    Status.FAIL,
                    f"{have}, below the budget {budget}",
                    f"send {symbol} to {address} on {chain}, or lower the budget",
                )
            )
        else:
            out.append(Check(name, Status.PASS, f"{have} covers the budget {budget}"))
    return out
