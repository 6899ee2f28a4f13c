"""The sandbox's SPL setup on a Solana ledger: the test USDC mint, wallets, funding and transfers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
    transfer_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams, TransferCheckedParams

from buyer_agent._errors import RailError
from buyer_agent._redact import Secret
from buyer_agent.sandbox.chains._solana_ledger import TOKEN_PROGRAM_ID, LedgerRejection, SolanaLedger

__all__ = ["LAMPORTS_PER_SOL", "USDC_DECIMALS", "SolanaChain", "SolanaWallet"]

LAMPORTS_PER_SOL = 1_000_000_000
USDC_DECIMALS = 6
_MINT_SPACE = 82
_DEFAULT_SOL = 10 * LAMPORTS_PER_SOL


@dataclass(frozen=True, slots=True)
class SolanaWallet:
    """A Solana address and its secret key: the base58 64-byte keypair, held as a :class:`Secret`."""

    address: str
    secret_key: Secret

    @classmethod
    def create(cls) -> SolanaWallet:
        """A fresh random wallet."""
        return cls.from_keypair(Keypair())

    @classmethod
    def from_keypair(cls, keypair: Keypair) -> SolanaWallet:
        """The wallet of a solders ``Keypair``."""
        return cls(address=str(keypair.pubkey()), secret_key=Secret(str(keypair)))

    @classmethod
    def from_secret(cls, secret_key: str | Secret) -> SolanaWallet:
        """The wallet of a base58 64-byte keypair."""
        secret = secret_key if isinstance(secret_key, Secret) else Secret(secret_key)
        return cls.from_keypair(Keypair.from_base58_string(secret.reveal()))

    def keypair(self) -> Keypair:
        """The solders ``Keypair`` (the one place the secret is used)."""
        return Keypair.from_base58_string(self.secret_key.reveal())

    @property
    def pubkey(self) -> Pubkey:
        """The address as a ``Pubkey``."""
        return Pubkey.from_string(self.address)


def _pubkey(address: str | Pubkey) -> Pubkey:
    return address if isinstance(address, Pubkey) else Pubkey.from_string(address)


class SolanaChain:
    """The test USDC mint (``decimals`` 6, mint authority: the sandbox) on a :class:`SolanaLedger`.

    Every helper runs a real signed transaction through the ledger, so it shows up in the RPC's
    history like any other. Amounts are integer base units (lamports; USDC micro-units).
    """

    def __init__(
        self, ledger: SolanaLedger, *, decimals: int = USDC_DECIMALS, state: dict[str, Any] | None = None
    ) -> None:
        self.ledger = ledger
        if state is not None:
            # A restarted sandbox: the mint already exists in the restored ledger.
            self.decimals = int(state["decimals"])
            self._authority = Keypair.from_base58_string(state["authority"])
            self.mint = Pubkey.from_string(state["mint"])
            return
        self.decimals = decimals
        self._authority = Keypair()
        mint = Keypair()
        self.mint = mint.pubkey()
        ledger.airdrop(self._authority.pubkey(), 1000 * LAMPORTS_PER_SOL)
        rent = ledger.call(lambda svm: svm.minimum_balance_for_rent_exemption(_MINT_SPACE))
        self._run(
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=self._authority.pubkey(),
                        to_pubkey=self.mint,
                        lamports=rent,
                        space=_MINT_SPACE,
                        owner=TOKEN_PROGRAM_ID,
                    )
                ),
                initialize_mint2(
                    InitializeMint2Params(
                        decimals=decimals,
                        program_id=TOKEN_PROGRAM_ID,
                        mint=self.mint,
                        mint_authority=self._authority.pubkey(),
                    )
                ),
            ],
            [self._authority, mint],
        )

    def snapshot(self) -> dict[str, Any]:
        """What this needs to come back on a restored ledger.

        It includes the sandbox's test mint-authority key, which only ever mints test USDC.
        """
        return {"mint": str(self.mint), "decimals": self.decimals, "authority": str(self._authority)}

    @property
    def mint_authority(self) -> str:
        """The mint authority's address (its key never leaves the sandbox)."""
        return str(self._authority.pubkey())

    def token_account(self, owner: str | Pubkey) -> Pubkey:
        """The associated token account of ``owner`` for the USDC mint."""
        return get_associated_token_address(_pubkey(owner), self.mint)

    # --- reads -----------------------------------------------------------------------------------

    def usdc_balance(self, owner: str | Pubkey) -> int:
        """USDC base units in ``owner``'s associated token account (0 if it has none)."""
        parsed = self.ledger.token_account(self.token_account(owner))
        return parsed[0].amount if parsed is not None else 0

    def sol_balance(self, address: str | Pubkey) -> int:
        """Lamports held by ``address``."""
        key = _pubkey(address)
        return self.ledger.call(lambda svm: svm.get_balance(key)) or 0

    # --- funding ---------------------------------------------------------------------------------

    def fund(self, owner: str | Pubkey, *, sol: int = _DEFAULT_SOL, usdc: int = 0) -> None:
        """Airdrop ``sol`` lamports to ``owner``; create its USDC token account; mint ``usdc`` to it."""
        key = _pubkey(owner)
        if sol:
            self.ledger.airdrop(key, sol)
        if usdc:
            self.mint_to(key, usdc)
        else:
            self.create_token_account(key)

    def create_token_account(self, owner: str | Pubkey) -> Pubkey:
        """Create ``owner``'s USDC token account if it has none (paid by the sandbox); returns it."""
        key = _pubkey(owner)
        self._run(
            [create_idempotent_associated_token_account(self._authority.pubkey(), key, self.mint)],
            [self._authority],
        )
        return self.token_account(key)

    def mint_to(self, owner: str | Pubkey, amount: int) -> str:
        """Mint ``amount`` USDC base units to ``owner`` (creating its token account); returns the tx."""
        key = _pubkey(owner)
        authority = self._authority.pubkey()
        return self._run(
            [
                create_idempotent_associated_token_account(authority, key, self.mint),
                mint_to_checked(
                    MintToCheckedParams(
                        program_id=TOKEN_PROGRAM_ID,
                        mint=self.mint,
                        dest=self.token_account(key),
                        mint_authority=authority,
                        amount=amount,
                        decimals=self.decimals,
                    )
                ),
            ],
            [self._authority],
        )

    def new_wallet(self, *, sol: int = _DEFAULT_SOL, usdc: int = 0) -> SolanaWallet:
        """A fresh random wallet funded with ``sol`` lamports and ``usdc`` base units."""
        wallet = SolanaWallet.create()
        self.fund(wallet.address, sol=sol, usdc=usdc)
        return wallet

    def transfer_usdc(self, sender: SolanaWallet, to_owner: str | Pubkey, amount: int) -> str:
        """``TransferChecked`` ``amount`` USDC from ``sender`` to ``to_owner``; returns the signature.

        The recipient's token account is created if missing, paid by the sender.
        """
        payer = sender.pubkey
        recipient = _pubkey(to_owner)
        return self._run(
            [
                create_idempotent_associated_token_account(payer, recipient, self.mint),
                transfer_checked(
                    TransferCheckedParams(
                        program_id=TOKEN_PROGRAM_ID,
                        source=self.token_account(payer),
                        mint=self.mint,
                        dest=self.token_account(recipient),
                        owner=payer,
                        amount=amount,
                        decimals=self.decimals,
                    )
                ),
            ],
            [sender.keypair()],
        )

    def _run(self, instructions: list[Instruction], signers: list[Keypair]) -> str:
        """Sign with ``signers`` (the first pays) and execute now; returns the signature."""
        message = Message.new_with_blockhash(instructions, signers[0].pubkey(), self.ledger.current_blockhash)
        try:
            return self.ledger.submit(VersionedTransaction(message, signers))
        except LedgerRejection as exc:
            raise RailError(f"sandbox Solana transaction failed: {exc.message}") from exc
