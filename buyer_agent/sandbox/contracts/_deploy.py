"""Deploying the test token and the escrow, and minting test USDC, on an EVM node."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import TxParams, TxReceipt

from buyer_agent._errors import RailError, TransactionRevertedError
from buyer_agent._redact import Secret
from buyer_agent.sandbox.contracts._artifacts import load_artifact

__all__ = ["Deployed", "connect", "deploy_contract", "deploy_contracts", "mint", "send_transaction"]

_RECEIPT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Deployed:
    """Checksummed addresses of the sandbox's contracts on one chain.

    ``x402_token_address`` is the EIP-3009 USDC x402 payments are authorized in (None on a chain
    recorded before it existed, until it is deployed there).
    """

    token_address: str
    escrow_address: str
    x402_token_address: str | None = None


def connect(w3_or_rpc_url: Web3 | str) -> Web3:
    """A :class:`Web3` for an RPC URL (or the one given)."""
    if isinstance(w3_or_rpc_url, Web3):
        return w3_or_rpc_url
    # No transport retries: on loopback a refused connection means the node is gone, not busy.
    provider = Web3.HTTPProvider(
        w3_or_rpc_url, request_kwargs={"timeout": 30}, exception_retry_configuration=None
    )
    return Web3(provider)


_sender_locks: dict[str, threading.Lock] = {}
_sender_locks_guard = threading.Lock()


def _sender_lock(address: str) -> threading.Lock:
    """One lock per sending address: concurrent senders (the market's threads) must not share a nonce."""
    with _sender_locks_guard:
        return _sender_locks.setdefault(address.lower(), threading.Lock())


@contextmanager
def _chain_errors(what: str) -> Iterator[None]:
    """Translate web3 / transport failures into :class:`RailError` at this boundary."""
    try:
        yield
    except RailError:
        raise
    except Exception as exc:
        raise RailError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def _account(key: str | Secret) -> LocalAccount:
    raw = key.reveal() if isinstance(key, Secret) else key
    account: LocalAccount = Account.from_key(raw)
    return account


def send_transaction(w3: Web3, key: str | Secret, tx: TxParams) -> TxReceipt:
    """Fill nonce, chain id, gas and fees; sign with ``key``; send; wait for the receipt.

    Raises:
        TransactionRevertedError: the transaction was mined with status 0.
        RailError: the node refused it or did not answer.
    """
    account = _account(key)
    with _chain_errors("sending a transaction"), _sender_lock(account.address):
        filled: dict[str, Any] = dict(tx)
        filled.setdefault("from", account.address)
        filled.setdefault("chainId", w3.eth.chain_id)
        filled.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
        if "gasPrice" not in filled and "maxFeePerGas" not in filled:
            base = w3.eth.get_block("latest").get("baseFeePerGas", 0)
            filled["maxPriorityFeePerGas"] = 1
            filled["maxFeePerGas"] = 2 * int(base) + 1
        try:
            filled.setdefault("gas", w3.eth.estimate_gas(cast(TxParams, filled)))
        except ContractLogicError as exc:
            raise RailError(f"transaction would revert: {exc.message or exc}") from exc
        signed = account.sign_transaction(filled)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    with _chain_errors("waiting for a receipt"):
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=_RECEIPT_TIMEOUT, poll_latency=0.01)
    if receipt["status"] != 1:
        raise TransactionRevertedError(tx_hash.to_0x_hex(), None)
    return receipt


def deploy_contracts(
    w3_or_rpc_url: Web3 | str, deployer_key: str | Secret, *, arbiter: str | None = None
) -> Deployed:
    """Deploy ``TestToken`` and ``AuthorizedUsdc`` (owned by the deployer) and ``Escrow``.

    The escrow's arbiter is ``arbiter`` or the deployer. The order of deployment is fixed (the
    token and the escrow first), so on a fresh anvil their addresses are always the same.

    Raises:
        RailError: a deployment failed.
    """
    w3 = connect(w3_or_rpc_url)
    deployer = _account(deployer_key)
    token = deploy_contract(w3, deployer_key, "TestToken")
    escrow = deploy_contract(
        w3, deployer_key, "Escrow", Web3.to_checksum_address(arbiter or deployer.address)
    )
    x402_token = deploy_contract(w3, deployer_key, "AuthorizedUsdc")
    return Deployed(token_address=token, escrow_address=escrow, x402_token_address=x402_token)


def deploy_contract(w3_or_rpc_url: Web3 | str, deployer_key: str | Secret, name: str, *args: Any) -> str:
    """Deploy one compiled contract with constructor ``args``; returns its checksummed address.

    Raises:
        RailError: the deployment failed.
    """
    w3 = connect(w3_or_rpc_url)
    abi, bytecode = load_artifact(name)
    with _chain_errors(f"building the {name} deployment"):
        data = w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args).data_in_transaction
    receipt = send_transaction(w3, deployer_key, {"data": data})
    address = receipt.get("contractAddress")
    if not address:
        raise RailError(f"deploying {name} gave no contract address")
    return Web3.to_checksum_address(address)


def mint(w3_or_rpc_url: Web3 | str, token_address: str, owner_key: str | Secret, to: str, amount: int) -> str:
    """Mint ``amount`` base units of the test token to ``to``; returns the ``0x`` transaction hash.

    Raises:
        TransactionRevertedError: ``owner_key`` is not the token's owner.
        RailError: the node refused the transaction.
    """
    w3 = connect(w3_or_rpc_url)
    abi, _ = load_artifact("TestToken")
    with _chain_errors("building a mint"):
        token = w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=abi)
        data = token.encode_abi("mint", args=[Web3.to_checksum_address(to), int(amount)])
    receipt = send_transaction(w3, owner_key, {"to": token.address, "data": data})
    return receipt["transactionHash"].to_0x_hex()
