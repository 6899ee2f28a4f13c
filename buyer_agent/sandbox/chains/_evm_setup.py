"""The sandbox's EVM chain: anvil with the test tokens and the escrow deployed, and wallet funding."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import HexStr
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from buyer_agent._errors import RailError
from buyer_agent._redact import Secret
from buyer_agent.sandbox.chains._anvil import AnvilNode
from buyer_agent.sandbox.contracts import (
    Deployed,
    connect,
    deploy_contract,
    deploy_contracts,
    load_artifact,
    mint,
    order_key,
    send_transaction,
)

__all__ = ["Authorization", "EscrowDeposit", "EvmChain", "EvmWallet"]

_RECORD = "evm-contracts.json"
_DEFAULT_ETH = 100 * 10**18


@dataclass(frozen=True, slots=True)
class EvmWallet:
    """An EVM address and its private key (held as a :class:`Secret`)."""

    address: str
    private_key: Secret

    @classmethod
    def create(cls) -> EvmWallet:
        """A fresh random wallet."""
        account = Account.create()
        return cls(address=account.address, private_key=Secret(account.key.to_0x_hex()))

    @classmethod
    def from_key(cls, private_key: str | Secret) -> EvmWallet:
        """The wallet of an existing private key."""
        secret = private_key if isinstance(private_key, Secret) else Secret(private_key)
        return cls(address=Account.from_key(secret.reveal()).address, private_key=secret)


@dataclass(frozen=True, slots=True)
class EscrowDeposit:
    """One escrow entry as the contract stores it. ``state``: 0 none, 1 held, 2 released, 3 refunded."""

    buyer: str
    payee: str
    token: str
    amount: int
    state: int

    NONE = 0
    HELD = 1
    RELEASED = 2
    REFUNDED = 3


@dataclass(frozen=True, slots=True)
class Authorization:
    """An EIP-3009 ``TransferWithAuthorization`` and its 65-byte signature (``r || s || v``)."""

    from_address: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes


def _key_of(order: str | bytes) -> bytes:
    return order if isinstance(order, bytes) else order_key(order)


class EvmChain:
    """An EVM RPC endpoint with the sandbox's contracts deployed; ``owner`` mints and arbitrates.

    ``TestToken`` is the USDC of direct transfers and escrow; ``AuthorizedUsdc`` (EIP-3009) the USDC
    that x402 payments authorize.

    Build one with :meth:`setup` on a started :class:`AnvilNode`. All amounts are integer base units
    (USDC has 6 decimals, ETH 18).
    """

    def __init__(self, rpc_url: str, *, chain_id: int, owner: EvmWallet, contracts: Deployed) -> None:
        self.rpc_url = rpc_url
        self.chain_id = chain_id
        self.owner = owner
        self.contracts = contracts

    @classmethod
    def setup(cls, node: AnvilNode, *, owner: EvmWallet | None = None) -> EvmChain:
        """Deploy the contracts on ``node`` with ``owner`` (default: the node's first account).

        When the node keeps its state in a directory and the contracts recorded there still have
        code on the chain, they are reused rather than deployed again.

        Raises:
            RailError: a deployment failed.
        """
        if owner is None:
            if not node.accounts:
                raise RailError("the anvil node reported no accounts")
            first = node.accounts[0]
            owner = EvmWallet(address=first.address, private_key=first.private_key)
        w3 = connect(node.rpc_url)
        record = node.state_file.parent / _RECORD if node.state_file is not None else None
        contracts = _recorded(w3, record, owner.address)
        fresh = contracts is None or contracts.x402_token_address is None
        if contracts is None:
            contracts = deploy_contracts(w3, owner.private_key)
        elif contracts.x402_token_address is None:
            # A state dir from before x402: its token and escrow stay; the new token joins them.
            x402_token = deploy_contract(w3, owner.private_key, "AuthorizedUsdc")
            contracts = replace(contracts, x402_token_address=x402_token)
        if fresh and record is not None:
            data = {
                "owner": owner.address,
                "token_address": contracts.token_address,
                "escrow_address": contracts.escrow_address,
                "x402_token_address": contracts.x402_token_address,
            }
            record.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        chain = cls(node.rpc_url, chain_id=node.chain_id, owner=owner, contracts=contracts)
        chain.__dict__["w3"] = w3
        return chain

    # --- facts ---------------------------------------------------------------------------------

    @cached_property
    def w3(self) -> Web3:
        """A synchronous :class:`Web3` on :attr:`rpc_url`."""
        return connect(self.rpc_url)

    @property
    def caip2(self) -> str:
        """``eip155:<chain id>``."""
        return f"eip155:{self.chain_id}"

    @property
    def token_address(self) -> str:
        """The test USDC (``TestToken``) address."""
        return self.contracts.token_address

    @property
    def escrow_address(self) -> str:
        """The ``Escrow`` contract address."""
        return self.contracts.escrow_address

    @property
    def x402_token_address(self) -> str:
        """The EIP-3009 test USDC (``AuthorizedUsdc``) address."""
        address = self.contracts.x402_token_address
        if address is None:
            raise RailError("the x402 token is not deployed on this chain")
        return address

    @cached_property
    def x402_token(self) -> Contract:
        """The EIP-3009 token as a web3 contract object."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(self.x402_token_address), abi=load_artifact("AuthorizedUsdc")[0]
        )

    @cached_property
    def token(self) -> Contract:
        """The token as a web3 contract object."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(self.token_address), abi=load_artifact("TestToken")[0]
        )

    @cached_property
    def escrow(self) -> Contract:
        """The escrow as a web3 contract object."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(self.escrow_address), abi=load_artifact("Escrow")[0]
        )

    def usdc_balance(self, address: str) -> int:
        """Test-USDC balance of ``address`` in base units."""
        return int(self._call(self.token.functions.balanceOf(Web3.to_checksum_address(address))))

    def x402_balance(self, address: str) -> int:
        """EIP-3009 test-USDC balance of ``address`` in base units."""
        return int(self._call(self.x402_token.functions.balanceOf(Web3.to_checksum_address(address))))

    def authorization_used(self, authorizer: str, nonce: bytes) -> bool:
        """``authorizationState(authorizer, nonce)``: whether the authorization's nonce is spent."""
        call = self.x402_token.functions.authorizationState(Web3.to_checksum_address(authorizer), nonce)
        return bool(self._call(call))

    def eth_balance(self, address: str) -> int:
        """ETH balance of ``address`` in wei."""
        return int(self._read(lambda: self.w3.eth.get_balance(Web3.to_checksum_address(address))))

    def escrow_deposit(self, order: str | bytes) -> EscrowDeposit:
        """The escrow's entry for an order id (or a 32-byte order key)."""
        buyer, payee, token, amount, state = self._call(self.escrow.functions.deposits(_key_of(order)))
        return EscrowDeposit(buyer=buyer, payee=payee, token=token, amount=int(amount), state=int(state))

    # --- funding -------------------------------------------------------------------------------

    def fund(self, address: str, *, eth_wei: int = _DEFAULT_ETH, usdc: int = 0, x402_usdc: int = 0) -> None:
        """Add ``eth_wei`` ETH; mint ``usdc`` test USDC and ``x402_usdc`` EIP-3009 USDC (base units)."""
        checksum = Web3.to_checksum_address(address)
        if eth_wei:
            balance = self.eth_balance(checksum)
            answer = self._read(
                lambda: self.w3.provider.make_request(
                    RPCEndpoint("anvil_setBalance"), [checksum, hex(balance + eth_wei)]
                )
            )
            if answer.get("error"):
                raise RailError(f"anvil_setBalance failed: {answer['error']}")
        if usdc:
            self.mint(checksum, usdc)
        if x402_usdc:
            mint(self.w3, self.x402_token_address, self.owner.private_key, checksum, x402_usdc)

    def new_wallet(self, *, eth_wei: int = _DEFAULT_ETH, usdc: int = 0) -> EvmWallet:
        """A fresh random wallet funded with ``eth_wei`` and ``usdc``."""
        wallet = EvmWallet.create()
        self.fund(wallet.address, eth_wei=eth_wei, usdc=usdc)
        return wallet

    def mint(self, to: str, amount: int) -> str:
        """Mint ``amount`` base units of test USDC to ``to``; returns the transaction hash."""
        return mint(self.w3, self.token_address, self.owner.private_key, to, amount)

    # --- transactions (for tests and the sandbox as arbiter) ----------------------------------

    def transfer_usdc(self, sender: EvmWallet, to: str, amount: int) -> str:
        """Send ``amount`` test USDC from ``sender`` to ``to``; returns the ``0x`` transaction hash."""
        data = self.token.encode_abi("transfer", args=[Web3.to_checksum_address(to), amount])
        return self._send(sender, self.token_address, data)

    def deposit(self, buyer: EvmWallet, order: str | bytes, payee: str, amount: int) -> str:
        """Approve the escrow and deposit ``amount`` for an order; returns the deposit's transaction hash."""
        approve = self.token.encode_abi(
            "approve", args=[Web3.to_checksum_address(self.escrow_address), amount]
        )
        self._send(buyer, self.token_address, approve)
        args = [
            _key_of(order),
            Web3.to_checksum_address(payee),
            Web3.to_checksum_address(self.token_address),
            amount,
        ]
        return self._send(buyer, self.escrow_address, self.escrow.encode_abi("deposit", args=args))

    def release(self, order: str | bytes, *, by: EvmWallet | None = None) -> str:
        """Release an order's deposit to its payee, as ``by`` (default: the arbiter); returns the tx hash."""
        data = self.escrow.encode_abi("release", args=[_key_of(order)])
        return self._send(by or self.owner, self.escrow_address, data)

    def refund(self, order: str | bytes, *, by: EvmWallet | None = None) -> str:
        """Refund an order's deposit to its buyer, as ``by`` (default: the arbiter); returns the tx hash."""
        data = self.escrow.encode_abi("refund", args=[_key_of(order)])
        return self._send(by or self.owner, self.escrow_address, data)

    def transfer_with_authorization(self, facilitator: EvmWallet, auth: Authorization) -> str:
        """Submit a signed EIP-3009 authorization from ``facilitator`` (who pays gas); returns the tx hash.

        Raises:
            RailError: the token refuses it (a bad signature, a spent nonce, outside its window).
        """
        sig = auth.signature
        args = [
            Web3.to_checksum_address(auth.from_address),
            Web3.to_checksum_address(auth.to),
            auth.value,
            auth.valid_after,
            auth.valid_before,
            auth.nonce,
            sig[64],
            sig[:32],
            sig[32:64],
        ]
        data = self.x402_token.encode_abi("transferWithAuthorization", args=args)
        return self._send(facilitator, self.x402_token_address, data)

    def _send(self, sender: EvmWallet, to: str, data: str) -> str:
        receipt = send_transaction(
            self.w3, sender.private_key, {"to": Web3.to_checksum_address(to), "data": HexStr(data)}
        )
        return receipt["transactionHash"].to_0x_hex()

    def _call(self, fn: Any) -> Any:
        return self._read(fn.call)

    def _read(self, thunk: Any) -> Any:
        try:
            return thunk()
        except Exception as exc:
            raise RailError(f"EVM read failed: {type(exc).__name__}: {exc}") from exc


def _recorded(w3: Web3, record: Path | None, owner: str) -> Deployed | None:
    """Contracts recorded in a state directory, if they are still on the chain and owned by ``owner``."""
    if record is None or not record.is_file():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"), parse_float=Decimal)
        deployed = Deployed(token_address=data["token_address"], escrow_address=data["escrow_address"])
        if data.get("owner") != owner:
            return None
        for address in (deployed.token_address, deployed.escrow_address):
            if not w3.eth.get_code(Web3.to_checksum_address(address)):
                return None
        x402_token = data.get("x402_token_address")
        if x402_token and w3.eth.get_code(Web3.to_checksum_address(x402_token)):
            deployed = replace(deployed, x402_token_address=x402_token)
    except Exception:
        # An unreadable record or an unreachable node both mean: deploy afresh.
        return None
    return deployed
