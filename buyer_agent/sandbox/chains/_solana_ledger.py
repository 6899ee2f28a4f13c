"""A thread-safe Solana ledger on LiteSVM: blocks, blockhash lifetimes, transaction history, balances."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.token.state import Mint, TokenAccount
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from buyer_agent._errors import RailError
from buyer_agent.sandbox.chains._base58 import b58encode

__all__ = [
    "BLOCKHASH_LIFETIME",
    "LAMPORTS_PER_SIGNATURE",
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_PROGRAM_ID",
    "LedgerRejection",
    "SolanaLedger",
    "TxRecord",
]

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
_TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
_TOKEN_ACCOUNT_LEN = 165
_MINT_LEN = 82
# As on a real cluster: a blockhash can be used for 150 blocks after the block that made it.
BLOCKHASH_LIFETIME = 150
LAMPORTS_PER_SIGNATURE = 5000
_FAUCET_LAMPORTS = 10**18
_GENESIS_SEED = b"buyer_agent sandbox solana genesis v1"
T = TypeVar("T")


class LedgerRejection(RailError):
    """A transaction the ledger refuses without executing it (it never lands).

    ``kind`` is ``"preflight"`` (``err`` holds the transaction error as RPC JSON, ``logs`` the program
    logs), ``"signature"`` (a signature does not verify) or ``"invalid"`` (undecodable bytes).
    """

    def __init__(self, kind: str, message: str, *, err: Any = None, logs: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.err = err
        self.logs = logs or []
        self.units_consumed = 0


@dataclass(slots=True)
class TxRecord:
    """A transaction that landed (successfully or with ``err``), as the RPC reports it."""

    signature: str
    raw: bytes
    slot: int
    block_time: int
    err: Any
    fee: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[dict[str, Any]]
    post_token_balances: list[dict[str, Any]]
    logs: list[str]
    compute_units: int
    inner_instructions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def transaction(self) -> VersionedTransaction:
        """The transaction itself, decoded from the bytes that were sent."""
        return VersionedTransaction.from_bytes(self.raw)


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """The RPC ``UiTokenAmount`` of ``amount`` base units.

    ``amount`` (a decimal string) is the exact value. ``uiAmount`` is a JSON number because Solana's
    wire format says so; it is for display, never for money.
    """
    exact = Decimal(amount).scaleb(-decimals) if decimals else Decimal(amount)
    text = format(exact.normalize(), "f") if amount else "0"
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": float(exact),
        "uiAmountString": text,
    }


def _err_json(failed: FailedTransactionMetadata) -> Any:
    """The transaction error in RPC JSON form (``"AlreadyProcessed"``, ``{"InstructionError": [0, …]}``)."""
    return json.loads(failed.to_json(), parse_float=Decimal)["err"]


class SolanaLedger:
    """LiteSVM behind a lock, with the block and blockhash bookkeeping a JSON-RPC node needs.

    Every landed transaction makes one block (slot == block height). A blockhash is valid until
    ``BLOCKHASH_LIFETIME`` blocks after its own; :meth:`expire_blockhashes` moves past every one issued
    so far. A signature that landed once is refused forever after (``AlreadyProcessed``): the ledger
    keeps its own unbounded history, and LiteSVM's is raised from its default of ~32 entries.

    With ``auto_process`` off, accepted transactions are held (not executed, status unknown) until
    :meth:`process_held` or :meth:`drop_held`, to test "sent but not landed".
    """

    def __init__(self, *, history: int = 1_000_000, block_interval: float | None = None) -> None:
        # LiteSVM is not thread-safe; every touch of ``_svm`` holds ``_lock``.
        self._lock = threading.RLock()
        # Blockhash validity is checked here (per block, with lifetimes), so LiteSVM's own check — which
        # knows only one latest blockhash — is off. Its duplicate check stays on as a second line.
        self._svm = LiteSVM().with_blockhash_check(False).with_transaction_history(history)
        self._genesis = Hash(hashlib.sha256(_GENESIS_SEED).digest())
        self._height = 0
        self._blockhash = self._genesis
        self._valid_until: dict[str, int] = {str(self._genesis): BLOCKHASH_LIFETIME}
        self._records: dict[str, TxRecord] = {}
        self._held: list[tuple[str, bytes]] = []
        self._auto_process = True
        self._tx_count = 0
        # With an interval, empty blocks also pass with wall time (as on a cluster, ~0.4 s), so an
        # unsent or held transaction's blockhash expires by itself; without, only activity moves time.
        self._block_interval = block_interval
        self._clock_mark = time.monotonic()
        self._touched: set[Pubkey] = set()
        self._dirty = False
        self.faucet = Keypair()
        # Written directly: LiteSVM's own airdrop account holds less than a faucet should.
        self._svm.set_account(
            self.faucet.pubkey(),
            Account(lamports=_FAUCET_LAMPORTS, data=b"", owner=SYSTEM_PROGRAM_ID, executable=False),
        )
        self._new_block()

    # --- locking and translation --------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[LiteSVM]:
        with self._lock:
            yield self._svm

    def call(self, fn: Callable[[LiteSVM], T]) -> T:
        """Run ``fn(svm)`` under the ledger's lock (LiteSVM is not thread-safe).

        Raises:
            RailError: LiteSVM failed (including a Rust panic, which is a ``BaseException``).
        """
        with self._locked() as svm:
            try:
                return fn(svm)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                raise RailError(f"LiteSVM failed: {type(exc).__name__}: {exc}") from exc

    # --- blocks and blockhashes ----------------------------------------------------------------

    @property
    def genesis_hash(self) -> str:
        """A fixed genesis hash (LiteSVM has none): sha256 of a sandbox seed, base58."""
        return str(self._genesis)

    @property
    def block_height(self) -> int:
        """Current block height; equal to the slot (no slot is ever skipped)."""
        with self._lock:
            self._catch_up()
            return self._height

    def _catch_up(self) -> None:
        """Produce the empty blocks wall time owes, when a ``block_interval`` is set."""
        if self._block_interval is None:
            return
        blocks = int((time.monotonic() - self._clock_mark) / self._block_interval)
        if blocks > 0:
            self._clock_mark += blocks * self._block_interval
            self._height += blocks - 1  # the skipped blocks were empty and nobody saw their hashes
            self._new_block()

    @property
    def transaction_count(self) -> int:
        """How many transactions landed."""
        return self._tx_count

    def latest_blockhash(self) -> tuple[str, int]:
        """The newest blockhash and the last block height at which it is still valid."""
        with self._lock:
            self._catch_up()
            key = str(self._blockhash)
            return key, self._valid_until[key]

    def is_blockhash_valid(self, blockhash: str) -> bool:
        """Whether a transaction made with ``blockhash`` can still land."""
        with self._lock:
            self._catch_up()
            last = self._valid_until.get(blockhash)
            return last is not None and self._height <= last

    def _new_block(self) -> None:
        self._height += 1
        digest = hashlib.sha256(bytes(self._blockhash) + self._height.to_bytes(8, "little")).digest()
        self._blockhash = Hash(digest)
        self._valid_until[str(self._blockhash)] = self._height + BLOCKHASH_LIFETIME
        for key in [k for k, last in self._valid_until.items() if last < self._height]:
            del self._valid_until[key]
        self._svm.warp_to_slot(self._height)

    def advance_blocks(self, count: int) -> int:
        """Produce ``count`` empty blocks; returns the new block height."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            for _ in range(count):
                self._new_block()
            return self._height

    def expire_blockhashes(self) -> int:
        """Advance past the validity of every blockhash issued so far; returns the new block height.

        A transaction signed with an earlier blockhash can then never land: if it has no status now,
        it is provably dropped.
        """
        with self._lock:
            last = max(self._valid_until.values())
            self._height = last  # the blocks in between are empty; skip building them one by one
            self._new_block()
            return self._height

    # --- transactions --------------------------------------------------------------------------

    @property
    def auto_process(self) -> bool:
        """False while accepted transactions are being held instead of executed."""
        return self._auto_process

    def set_auto_process(self, enabled: bool) -> None:
        """Execute accepted transactions at once (default) or hold them until released."""
        with self._lock:
            self._auto_process = enabled

    def held_signatures(self) -> list[str]:
        """Signatures accepted but held (not executed yet)."""
        with self._lock:
            return [sig for sig, _ in self._held]

    def process_held(self) -> list[str]:
        """Execute every held transaction in arrival order; returns the signatures that landed."""
        with self._lock:
            held, self._held = self._held, []
            landed = []
            for _sig, raw in held:
                try:
                    landed.append(self._execute(VersionedTransaction.from_bytes(raw), raw, preflight=False))
                except LedgerRejection:
                    continue  # expired or invalid by now: dropped, as a cluster would
            return landed

    def drop_held(self) -> list[str]:
        """Forget every held transaction: none of them will ever land. Returns their signatures."""
        with self._lock:
            dropped = [sig for sig, _ in self._held]
            self._held = []
            return dropped

    def send(self, raw: bytes, *, preflight: bool = True) -> str:
        """Submit a signed, serialized transaction (legacy or v0); returns its signature.

        With ``preflight`` the transaction is simulated first and refused if it would fail; without, a
        failing transaction lands with its error (and pays its fee), as on a cluster.

        Raises:
            LedgerRejection: undecodable, a bad signature, an unknown or expired blockhash, already
                processed, or (with ``preflight``) a failing simulation. Nothing was executed.
        """
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise LedgerRejection("invalid", f"failed to deserialize transaction: {exc}") from exc
        with self._lock:
            signature = self._check(tx)
            if not self._auto_process:
                self._held.append((signature, raw))
                return signature
            return self._execute(tx, raw, preflight=preflight)

    def _check(self, tx: VersionedTransaction) -> str:
        if not tx.signatures:
            raise LedgerRejection("invalid", "transaction has no signatures")
        signature = str(tx.signatures[0])
        if signature in self._records or any(sig == signature for sig, _ in self._held):
            raise LedgerRejection(
                "preflight",
                "Transaction simulation failed: This transaction has already been processed",
                err="AlreadyProcessed",
            )
        try:
            verified = tx.verify_with_results()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            verified = [False]
        if not all(verified):
            raise LedgerRejection("signature", "Transaction signature verification failure")
        if not self.is_blockhash_valid(str(tx.message.recent_blockhash)):
            raise LedgerRejection(
                "preflight", "Transaction simulation failed: Blockhash not found", err="BlockhashNotFound"
            )
        return signature

    def _execute(self, tx: VersionedTransaction, raw: bytes, *, preflight: bool) -> str:
        signature = str(tx.signatures[0])
        svm = self._svm
        try:
            if preflight:
                simulated = svm.simulate_transaction(tx)
                if isinstance(simulated, FailedTransactionMetadata):
                    rejection = LedgerRejection(
                        "preflight",
                        "Transaction simulation failed: " + _describe(_err_json(simulated)),
                        err=_err_json(simulated),
                        logs=list(simulated.meta().logs()),
                    )
                    rejection.units_consumed = simulated.meta().compute_units_consumed()
                    raise rejection
            keys = list(tx.message.account_keys)
            pre = self._balances(keys)
            result = svm.send_transaction(tx)
            if (
                isinstance(result, FailedTransactionMetadata)
                and svm.get_transaction(tx.signatures[0]) is None
            ):
                # Refused before execution (fee payer missing or too poor, …): it never lands.
                raise LedgerRejection(
                    "preflight",
                    "Transaction simulation failed: " + _describe(_err_json(result)),
                    err=_err_json(result),
                    logs=list(result.meta().logs()),
                )
            post = self._balances(keys)
        except LedgerRejection:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise RailError(f"LiteSVM failed: {type(exc).__name__}: {exc}") from exc
        meta: TransactionMetadata = result.meta() if isinstance(result, FailedTransactionMetadata) else result
        record = TxRecord(
            signature=signature,
            raw=raw,
            slot=self._height,
            block_time=int(time.time()),
            err=_err_json(result) if isinstance(result, FailedTransactionMetadata) else None,
            fee=meta.fee(),
            pre_balances=pre[0],
            post_balances=post[0],
            pre_token_balances=pre[1],
            post_token_balances=post[1],
            logs=list(meta.logs()),
            compute_units=meta.compute_units_consumed(),
            inner_instructions=_inner(meta),
        )
        self._records[signature] = record
        self._touched.update(keys)
        self._dirty = True
        self._tx_count += 1
        self._new_block()
        return signature

    def _balances(self, keys: list[Pubkey]) -> tuple[list[int], list[dict[str, Any]]]:
        lamports: list[int] = []
        tokens: list[dict[str, Any]] = []
        for index, key in enumerate(keys):
            account = self._svm.get_account(key)
            lamports.append(account.lamports if account is not None else 0)
            parsed = self._token_account(account)
            if parsed is not None:
                token, decimals, program = parsed
                tokens.append(
                    {
                        "accountIndex": index,
                        "mint": str(token.mint),
                        "owner": str(token.owner),
                        "programId": str(program),
                        "uiTokenAmount": ui_token_amount(token.amount, decimals),
                    }
                )
        return lamports, tokens

    def _token_account(self, account: Any) -> tuple[TokenAccount, int, Pubkey] | None:
        """Decode an SPL token account (and its mint's decimals), or None if it is not one."""
        if account is None or account.owner not in _TOKEN_PROGRAMS or len(account.data) < _TOKEN_ACCOUNT_LEN:
            return None
        data = bytes(account.data)
        # Token-2022 accounts with extensions carry an account-type byte (2) right after the base layout.
        if len(data) > _TOKEN_ACCOUNT_LEN and data[_TOKEN_ACCOUNT_LEN] != 2:
            return None
        try:
            token = TokenAccount.from_bytes(data[:_TOKEN_ACCOUNT_LEN])
            mint = self._svm.get_account(token.mint)
            decimals = Mint.from_bytes(bytes(mint.data)[:_MINT_LEN]).decimals if mint is not None else 0
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            return None
        return token, decimals, account.owner

    def simulate(
        self, raw: bytes, *, sig_verify: bool, replace_blockhash: bool
    ) -> tuple[Any, list[str], int]:
        """Run a transaction without landing it; returns ``(err, logs, units consumed)``.

        Raises:
            LedgerRejection: undecodable bytes, or (with ``sig_verify``) a bad signature.
        """
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise LedgerRejection("invalid", f"failed to deserialize transaction: {exc}") from exc
        with self._lock:
            if sig_verify and not all(tx.verify_with_results()):
                raise LedgerRejection("signature", "Transaction signature verification failure")
            if tx.signatures and str(tx.signatures[0]) in self._records:
                return "AlreadyProcessed", [], 0
            if not replace_blockhash and not self.is_blockhash_valid(str(tx.message.recent_blockhash)):
                return "BlockhashNotFound", [], 0
            self._svm.with_sigverify(sig_verify)
            try:
                result = self._svm.simulate_transaction(tx)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                raise RailError(f"LiteSVM failed: {type(exc).__name__}: {exc}") from exc
            finally:
                self._svm.with_sigverify(True)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            return _err_json(result), list(meta.logs()), meta.compute_units_consumed()
        simulated = result.meta()
        return None, list(simulated.logs()), simulated.compute_units_consumed()

    def records_for(
        self, address: Pubkey, limit: int, before: str | None = None, until: str | None = None
    ) -> list[TxRecord]:
        """Landed transactions that name ``address``, newest first (``before``/``until`` exclusive)."""
        with self._lock:
            records = list(self._records.values())
        out: list[TxRecord] = []
        started = before is None
        for record in reversed(records):
            if not started:
                started = record.signature == before
                continue
            if record.signature == until:
                break
            if address in record.transaction.message.account_keys:
                out.append(record)
                if len(out) >= limit:
                    break
        return out

    # --- persistence ---------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """True when something landed since the last :meth:`snapshot`."""
        return self._dirty

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to rebuild this ledger: block state, history, and every account touched.

        Programs are not included (LiteSVM brings its own). The faucet's key is included: it is a
        sandbox test key that holds only test lamports.
        """
        with self._lock:
            accounts = {}
            for key in self._touched | {self.faucet.pubkey()}:
                account = self._svm.get_account(key)
                if account is None or account.executable:
                    continue
                accounts[str(key)] = {
                    "lamports": account.lamports,
                    "data": base64.b64encode(bytes(account.data)).decode(),
                    "owner": str(account.owner),
                    "rentEpoch": account.rent_epoch,
                }
            records = [
                {
                    "signature": r.signature,
                    "raw": base64.b64encode(r.raw).decode(),
                    "slot": r.slot,
                    "blockTime": r.block_time,
                    "err": r.err,
                    "fee": r.fee,
                    "preBalances": r.pre_balances,
                    "postBalances": r.post_balances,
                    "preTokenBalances": r.pre_token_balances,
                    "postTokenBalances": r.post_token_balances,
                    "logs": r.logs,
                    "computeUnits": r.compute_units,
                    "innerInstructions": r.inner_instructions,
                }
                for r in self._records.values()
            ]
            self._dirty = False
            return {
                "version": 1,
                "height": self._height,
                "blockhash": str(self._blockhash),
                "validUntil": dict(self._valid_until),
                "transactionCount": self._tx_count,
                "faucet": str(self.faucet),
                "accounts": accounts,
                "records": records,
            }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` into this (fresh) ledger.

        Raises:
            RailError: the snapshot is not one this version can read.
        """
        if state.get("version") != 1:
            raise RailError("unknown Solana ledger snapshot version")
        with self._lock:
            try:
                for key, entry in state["accounts"].items():
                    account = Account(
                        lamports=int(entry["lamports"]),
                        data=base64.b64decode(entry["data"]),
                        owner=Pubkey.from_string(entry["owner"]),
                        executable=False,
                        rent_epoch=int(entry["rentEpoch"]),
                    )
                    self._svm.set_account(Pubkey.from_string(key), account)
                    self._touched.add(Pubkey.from_string(key))
                self.faucet = Keypair.from_base58_string(state["faucet"])
                self._records = {
                    r["signature"]: TxRecord(
                        signature=r["signature"],
                        raw=base64.b64decode(r["raw"]),
                        slot=int(r["slot"]),
                        block_time=int(r["blockTime"]),
                        err=r["err"],
                        fee=int(r["fee"]),
                        pre_balances=r["preBalances"],
                        post_balances=r["postBalances"],
                        pre_token_balances=_token_balances(r["preTokenBalances"]),
                        post_token_balances=_token_balances(r["postTokenBalances"]),
                        logs=r["logs"],
                        compute_units=int(r["computeUnits"]),
                        inner_instructions=r["innerInstructions"],
                    )
                    for r in state["records"]
                }
                self._height = int(state["height"])
                self._blockhash = Hash.from_string(state["blockhash"])
                self._valid_until = {k: int(v) for k, v in state["validUntil"].items()}
                self._tx_count = int(state["transactionCount"])
                self._svm.warp_to_slot(self._height)
            except (KeyError, TypeError, ValueError) as exc:
                raise RailError(f"unreadable Solana ledger snapshot: {exc}") from exc
            self._dirty = False

    # --- reads ---------------------------------------------------------------------------------

    def record(self, signature: str) -> TxRecord | None:
        """The landed transaction with this signature, if any."""
        with self._lock:
            return self._records.get(signature)

    def is_held(self, signature: str) -> bool:
        """Whether this signature is accepted but held."""
        with self._lock:
            return any(sig == signature for sig, _ in self._held)

    def token_account(self, address: Pubkey) -> tuple[TokenAccount, int, Pubkey] | None:
        """The decoded token account at ``address`` with its mint's decimals and its program."""
        with self._lock:
            return self._token_account(self._svm.get_account(address))

    def mint_info(self, address: Pubkey) -> Mint | None:
        """The decoded SPL mint at ``address``, or None."""
        with self._lock:
            account = self._svm.get_account(address)
        if account is None or account.owner not in _TOKEN_PROGRAMS or len(account.data) < _MINT_LEN:
            return None
        if len(account.data) == _TOKEN_ACCOUNT_LEN:
            return None
        try:
            return Mint.from_bytes(bytes(account.data)[:_MINT_LEN])
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            return None

    # --- faucet ----------------------------------------------------------------------------------

    def airdrop(self, to: Pubkey, lamports: int) -> str:
        """Transfer ``lamports`` from the sandbox faucet to ``to`` as a real, recorded transaction.

        Like every in-process submission it runs at once, even while user transactions are held.
        """
        with self._lock:
            message = Message.new_with_blockhash(
                [transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports))],
                self.faucet.pubkey(),
                self._blockhash,
            )
            return self.submit(VersionedTransaction(message, [self.faucet]))

    def submit(self, tx: VersionedTransaction) -> str:
        """Execute a transaction built in-process (setup, funding) at once, even while holding.

        Raises:
            LedgerRejection: as for :meth:`send` with preflight.
        """
        with self._lock:
            self._check(tx)
            return self._execute(tx, bytes(tx), preflight=True)

    @property
    def current_blockhash(self) -> Hash:
        """The newest blockhash, as a ``Hash`` for building transactions in-process."""
        with self._lock:
            return self._blockhash


def _token_balances(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Token balances read back from a snapshot, with ``uiTokenAmount`` rebuilt from the exact amount."""
    return [
        {
            **entry,
            "uiTokenAmount": ui_token_amount(
                int(entry["uiTokenAmount"]["amount"]), int(entry["uiTokenAmount"]["decimals"])
            ),
        }
        for entry in entries
    ]


def _describe(err: Any) -> str:
    """A short human text for a transaction error, in the spirit of the cluster's messages."""
    if isinstance(err, str):
        return err
    if isinstance(err, dict) and "InstructionError" in err:
        index, detail = err["InstructionError"]
        return f"Error processing Instruction {index}: {json.dumps(detail, default=str)}"
    return json.dumps(err, default=str)


def _inner(meta: TransactionMetadata) -> list[dict[str, Any]]:
    """Inner instructions in the RPC's ``json`` shape (base58 data, account indexes)."""
    out: list[dict[str, Any]] = []
    for index, group in enumerate(meta.inner_instructions()):
        if not group:
            continue
        instructions = []
        for inner in group:
            compiled = inner.instruction()
            instructions.append(
                {
                    "programIdIndex": compiled.program_id_index,
                    "accounts": list(compiled.accounts),
                    "data": b58encode(bytes(compiled.data)),
                    "stackHeight": inner.stack_height(),
                }
            )
        out.append({"index": index, "instructions": instructions})
    return out
