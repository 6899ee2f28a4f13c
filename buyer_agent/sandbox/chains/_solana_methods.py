"""The Solana JSON-RPC methods the sandbox serves, answered from a :class:`SolanaLedger`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from solders.message import MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.token.state import TokenAccountState
from solders.transaction import VersionedTransaction

from buyer_agent.sandbox.chains._base58 import b58decode, b58encode
from buyer_agent.sandbox.chains._solana_ledger import (
    LAMPORTS_PER_SIGNATURE,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    LedgerRejection,
    SolanaLedger,
    TxRecord,
    ui_token_amount,
)

__all__ = ["API_VERSION", "RpcError", "SolanaRpcMethods"]

API_VERSION = "2.2.0"
_SLOTS_PER_EPOCH = 432_000
_MAX_STATUSES = 256
_SYSTEM_PROGRAM = "11111111111111111111111111111111"
_U64_MAX = 2**64 - 1

# JSON-RPC error codes, as Solana's RPC uses them.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PREFLIGHT_FAILURE = -32002
SIGNATURE_FAILURE = -32003
UNSUPPORTED_VERSION = -32015


class RpcError(Exception):
    """A JSON-RPC error to send back: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of a JSON-RPC response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


# --- parameter helpers -------------------------------------------------------------------------


def _param(params: list[Any], index: int, name: str, *, required: bool = True) -> Any:
    if index < len(params):
        return params[index]
    if required:
        raise RpcError(INVALID_PARAMS, f"missing parameter: {name}")
    return None


def _config(params: list[Any], index: int) -> dict[str, Any]:
    value = params[index] if index < len(params) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: configuration must be an object")
    return value


def _pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, "Invalid param: expected a base58 public key")
    try:
        return Pubkey.from_string(value)
    except (ValueError, TypeError) as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid param: {exc}") from exc


def _uint(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > _U64_MAX:
        raise RpcError(INVALID_PARAMS, f"Invalid param: {name} must be an unsigned integer")
    return value


def _decode(data: Any, encoding: str) -> bytes:
    if not isinstance(data, str):
        raise RpcError(INVALID_PARAMS, "Invalid params: expected an encoded string")
    try:
        if encoding == "base64":
            return base64.b64decode(data, validate=True)
        if encoding == "base58":
            return b58decode(data)
    except (ValueError, binascii.Error) as exc:
        raise RpcError(INVALID_PARAMS, f"invalid {encoding} encoding: {exc}") from exc
    raise RpcError(INVALID_PARAMS, f"unsupported encoding: {encoding}. Supported encodings: base58, base64")


def _status(record: TxRecord) -> dict[str, Any]:
    return {"Ok": None} if record.err is None else {"Err": record.err}


class SolanaRpcMethods:
    """Method name → handler for the JSON-RPC server. Handlers take the ``params`` list.

    Everything is final as soon as it lands: every commitment level sees the same state, and
    ``confirmationStatus`` is always ``"finalized"``. Extension methods (not Solana's) start with
    ``sandbox_``: ``sandbox_expireBlockhashes``, ``sandbox_advanceBlocks [n]``, ``sandbox_setAutoProcess
    [bool]``, ``sandbox_processHeld``, ``sandbox_dropHeld``, ``sandbox_info``.
    """

    def __init__(self, ledger: SolanaLedger, *, info: Callable[[], dict[str, Any]] | None = None) -> None:
        self.ledger = ledger
        self._info = info or dict
        self.handlers: dict[str, Callable[[list[Any]], Any]] = {
            "getAccountInfo": self.get_account_info,
            "getBalance": self.get_balance,
            "getBlockHeight": lambda _p: self.ledger.block_height,
            "getEpochInfo": self.get_epoch_info,
            "getFeeForMessage": self.get_fee_for_message,
            "getFirstAvailableBlock": lambda _p: 0,
            "getGenesisHash": lambda _p: self.ledger.genesis_hash,
            "getHealth": lambda _p: "ok",
            "getLatestBlockhash": self.get_latest_blockhash,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance_for_rent_exemption,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getRecentPrioritizationFees": lambda _p: [],
            "getSignatureStatuses": self.get_signature_statuses,
            "getSignaturesForAddress": self.get_signatures_for_address,
            "getSlot": lambda _p: self.ledger.block_height,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenSupply": self.get_token_supply,
            "getTransaction": self.get_transaction,
            "getTransactionCount": lambda _p: self.ledger.transaction_count,
            "getVersion": lambda _p: {"solana-core": API_VERSION, "feature-set": 0},
            "isBlockhashValid": self.is_blockhash_valid,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "sandbox_advanceBlocks": self.advance_blocks,
            "sandbox_dropHeld": lambda _p: self.ledger.drop_held(),
            "sandbox_expireBlockhashes": lambda _p: {"blockHeight": self.ledger.expire_blockhashes()},
            "sandbox_info": lambda _p: self._info(),
            "sandbox_processHeld": lambda _p: self.ledger.process_held(),
            "sandbox_setAutoProcess": self.set_auto_process,
        }

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"slot": self.ledger.block_height, "apiVersion": API_VERSION}, "value": value}

    # --- blocks ----------------------------------------------------------------------------------

    def get_latest_blockhash(self, params: list[Any]) -> Any:
        """``getLatestBlockhash``: the newest blockhash and its ``lastValidBlockHeight``."""
        blockhash, last_valid = self.ledger.latest_blockhash()
        return self._context({"blockhash": blockhash, "lastValidBlockHeight": last_valid})

    def is_blockhash_valid(self, params: list[Any]) -> Any:
        """``isBlockhashValid``."""
        blockhash = _param(params, 0, "blockhash")
        if not isinstance(blockhash, str):
            raise RpcError(INVALID_PARAMS, "Invalid param: blockhash must be a string")
        return self._context(self.ledger.is_blockhash_valid(blockhash))

    def get_epoch_info(self, params: list[Any]) -> Any:
        """``getEpochInfo`` (one long epoch)."""
        height = self.ledger.block_height
        return {
            "absoluteSlot": height,
            "blockHeight": height,
            "epoch": height // _SLOTS_PER_EPOCH,
            "slotIndex": height % _SLOTS_PER_EPOCH,
            "slotsInEpoch": _SLOTS_PER_EPOCH,
            "transactionCount": self.ledger.transaction_count,
        }

    def advance_blocks(self, params: list[Any]) -> Any:
        """``sandbox_advanceBlocks [n=1]``: produce ``n`` empty blocks."""
        count = _uint(_param(params, 0, "count", required=False) or 1, "count")
        return {"blockHeight": self.ledger.advance_blocks(count)}

    def set_auto_process(self, params: list[Any]) -> Any:
        """``sandbox_setAutoProcess [bool]``: hold sent transactions (false) or execute them (true)."""
        enabled = _param(params, 0, "enabled")
        if not isinstance(enabled, bool):
            raise RpcError(INVALID_PARAMS, "Invalid param: enabled must be a boolean")
        self.ledger.set_auto_process(enabled)
        return enabled

    # --- transactions --------------------------------------------------------------------------

    def send_transaction(self, params: list[Any]) -> Any:
        """``sendTransaction``: base58 (default) or base64; returns the signature.

        A signature that already landed is refused (``AlreadyProcessed``), so a re-sent transaction is
        never executed twice.
        """
        config = _config(params, 1)
        raw = _decode(_param(params, 0, "transaction"), config.get("encoding") or "base58")
        try:
            return self.ledger.send(raw, preflight=not config.get("skipPreflight", False))
        except LedgerRejection as exc:
            raise _rejection_error(exc) from exc

    def simulate_transaction(self, params: list[Any]) -> Any:
        """``simulateTransaction``: run without landing; returns ``err``, ``logs``, ``unitsConsumed``."""
        config = _config(params, 1)
        raw = _decode(_param(params, 0, "transaction"), config.get("encoding") or "base58")
        replace = bool(config.get("replaceRecentBlockhash", False))
        try:
            err, logs, units = self.ledger.simulate(
                raw, sig_verify=bool(config.get("sigVerify", False)), replace_blockhash=replace
            )
        except LedgerRejection as exc:
            raise _rejection_error(exc) from exc
        value: dict[str, Any] = {
            "err": err,
            "logs": logs,
            "accounts": None,
            "unitsConsumed": units,
            "returnData": None,
        }
        if replace:
            blockhash, last_valid = self.ledger.latest_blockhash()
            value["replacementBlockhash"] = {"blockhash": blockhash, "lastValidBlockHeight": last_valid}
        return self._context(value)

    def request_airdrop(self, params: list[Any]) -> Any:
        """``requestAirdrop``: a faucet transfer that lands at once; returns its signature."""
        to = _pubkey(_param(params, 0, "pubkey"))
        lamports = _uint(_param(params, 1, "lamports"), "lamports")
        try:
            return self.ledger.airdrop(to, lamports)
        except LedgerRejection as exc:
            raise _rejection_error(exc) from exc

    def get_signature_statuses(self, params: list[Any]) -> Any:
        """``getSignatureStatuses``: ``null`` for unknown or held signatures."""
        signatures = _param(params, 0, "signatures")
        if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures):
            raise RpcError(INVALID_PARAMS, "Invalid param: signatures must be a list of strings")
        if len(signatures) > _MAX_STATUSES:
            raise RpcError(INVALID_PARAMS, f"Too many inputs provided; max {_MAX_STATUSES}")
        statuses: list[Any] = []
        for signature in signatures:
            record = self.ledger.record(signature)
            if record is None:
                statuses.append(None)
                continue
            statuses.append(
                {
                    "slot": record.slot,
                    "confirmations": None,
                    "err": record.err,
                    "status": _status(record),
                    "confirmationStatus": "finalized",
                }
            )
        return self._context(statuses)

    def get_transaction(self, params: list[Any]) -> Any:
        """``getTransaction`` in ``json``, ``jsonParsed``, ``base64`` or ``base58`` encoding."""
        signature = _param(params, 0, "signature")
        if not isinstance(signature, str):
            raise RpcError(INVALID_PARAMS, "Invalid param: signature must be a string")
        raw_config = params[1] if len(params) > 1 else None
        config = {"encoding": raw_config} if isinstance(raw_config, str) else _config(params, 1)
        encoding = config.get("encoding") or "json"
        if encoding not in ("json", "jsonParsed", "base64", "base58"):
            raise RpcError(INVALID_PARAMS, f"Invalid param: unsupported encoding {encoding}")
        record = self.ledger.record(signature)
        if record is None:
            return None
        tx = record.transaction
        max_version = config.get("maxSupportedTransactionVersion")
        is_v0 = isinstance(tx.message, MessageV0)
        if is_v0 and max_version is None:
            raise RpcError(
                UNSUPPORTED_VERSION,
                "Transaction version (0) is not supported by the requesting client. Please try the request "
                'again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
            )
        answer: dict[str, Any] = {
            "slot": record.slot,
            "blockTime": record.block_time,
            "transaction": _encode_transaction(tx, record.raw, encoding),
            "meta": _meta(record, tx, parsed=encoding == "jsonParsed"),
        }
        if max_version is not None:
            answer["version"] = 0 if is_v0 else "legacy"
        return answer

    def get_signatures_for_address(self, params: list[Any]) -> Any:
        """``getSignaturesForAddress``: newest first; ``limit`` (max 1000), ``before``, ``until``."""
        address = _pubkey(_param(params, 0, "address"))
        config = _config(params, 1)
        limit = min(_uint(config.get("limit") or 1000, "limit"), 1000)
        return [
            {
                "signature": record.signature,
                "slot": record.slot,
                "err": record.err,
                "memo": None,
                "blockTime": record.block_time,
                "confirmationStatus": "finalized",
            }
            for record in self.ledger.records_for(address, limit, config.get("before"), config.get("until"))
        ]

    def get_fee_for_message(self, params: list[Any]) -> Any:
        """``getFeeForMessage``: 5000 lamports per required signature."""
        raw = _decode(_param(params, 0, "message"), "base64")
        try:
            message = from_bytes_versioned(raw)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise RpcError(INVALID_PARAMS, f"invalid message: {exc}") from exc
        return self._context(LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures)

    # --- accounts --------------------------------------------------------------------------------

    def get_balance(self, params: list[Any]) -> Any:
        """``getBalance`` in lamports (0 for an unknown account)."""
        key = _pubkey(_param(params, 0, "pubkey"))
        return self._context(self.ledger.call(lambda svm: svm.get_balance(key)) or 0)

    def get_minimum_balance_for_rent_exemption(self, params: list[Any]) -> Any:
        """``getMinimumBalanceForRentExemption``."""
        size = _uint(_param(params, 0, "size"), "size")
        return self.ledger.call(lambda svm: svm.minimum_balance_for_rent_exemption(size))

    def get_account_info(self, params: list[Any]) -> Any:
        """``getAccountInfo`` in ``base64``, ``base58`` or ``jsonParsed`` (SPL token accounts and mints)."""
        key = _pubkey(_param(params, 0, "pubkey"))
        encoding = _config(params, 1).get("encoding") or "base58"
        return self._context(self._account(key, encoding))

    def get_multiple_accounts(self, params: list[Any]) -> Any:
        """``getMultipleAccounts`` (max 100)."""
        keys = _param(params, 0, "pubkeys")
        if not isinstance(keys, list) or len(keys) > 100:
            raise RpcError(INVALID_PARAMS, "Invalid param: pubkeys must be a list of at most 100 keys")
        encoding = _config(params, 1).get("encoding") or "base58"
        return self._context([self._account(_pubkey(k), encoding) for k in keys])

    def _account(self, key: Pubkey, encoding: str) -> dict[str, Any] | None:
        if encoding not in ("base64", "base58", "jsonParsed"):
            raise RpcError(INVALID_PARAMS, f"Invalid param: unsupported encoding {encoding}")
        account = self.ledger.call(lambda svm: svm.get_account(key))
        if account is None:
            return None
        data = bytes(account.data)
        encoded: Any
        parsed = self._parsed_account(key) if encoding == "jsonParsed" else None
        if parsed is not None:
            encoded = parsed
        elif encoding == "base58":
            encoded = [b58encode(data), "base58"]
        else:
            encoded = [base64.b64encode(data).decode(), "base64"]
        return {
            "data": encoded,
            "executable": account.executable,
            "lamports": account.lamports,
            "owner": str(account.owner),
            "rentEpoch": account.rent_epoch,
            "space": len(data),
        }

    def _parsed_account(self, key: Pubkey) -> dict[str, Any] | None:
        token = self.ledger.token_account(key)
        if token is not None:
            account, decimals, program = token
            return {
                "program": _program_name(program),
                "parsed": {"type": "account", "info": _token_info(account, decimals)},
                "space": 165,
            }
        mint = self.ledger.mint_info(key)
        if mint is not None:
            owner = self.ledger.call(lambda svm: svm.get_account(key))
            info = {
                "decimals": mint.decimals,
                "freezeAuthority": str(mint.freeze_authority) if mint.freeze_authority else None,
                "isInitialized": mint.is_initialized,
                "mintAuthority": str(mint.mint_authority) if mint.mint_authority else None,
                "supply": str(mint.supply),
            }
            program = owner.owner if owner is not None else TOKEN_PROGRAM_ID
            return {"program": _program_name(program), "parsed": {"type": "mint", "info": info}, "space": 82}
        return None

    def get_token_account_balance(self, params: list[Any]) -> Any:
        """``getTokenAccountBalance``."""
        key = _pubkey(_param(params, 0, "pubkey"))
        token = self.ledger.token_account(key)
        if token is None:
            raise RpcError(INVALID_PARAMS, "Invalid param: could not find account")
        account, decimals, _ = token
        return self._context(ui_token_amount(account.amount, decimals))

    def get_token_supply(self, params: list[Any]) -> Any:
        """``getTokenSupply``."""
        key = _pubkey(_param(params, 0, "mint"))
        mint = self.ledger.mint_info(key)
        if mint is None:
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token mint")
        return self._context(ui_token_amount(mint.supply, mint.decimals))

    def get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        """``getTokenAccountsByOwner`` filtered by ``{"mint": …}`` or ``{"programId": …}``."""
        owner = _pubkey(_param(params, 0, "owner"))
        selector = _config(params, 1)
        encoding = _config(params, 2).get("encoding") or "base58"
        if "mint" in selector:
            mint: Pubkey | None = _pubkey(selector["mint"])
            programs = [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID]
        elif "programId" in selector:
            mint = None
            programs = [_pubkey(selector["programId"])]
            if programs[0] not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
                raise RpcError(INVALID_PARAMS, "Invalid param: unrecognized Token program id")
        else:
            raise RpcError(INVALID_PARAMS, "Invalid param: expected a mint or programId filter")
        found = []
        for program in programs:
            accounts = self.ledger.call(lambda svm, p=program: svm.get_program_accounts(p))  # type: ignore[misc]
            for key, _account in accounts:
                token = self.ledger.token_account(key)
                if token is None or token[0].owner != owner or (mint is not None and token[0].mint != mint):
                    continue
                found.append({"pubkey": str(key), "account": self._account(key, encoding)})
        return self._context(found)


# --- encoders ------------------------------------------------------------------------------------


def _rejection_error(exc: LedgerRejection) -> RpcError:
    if exc.kind == "signature":
        return RpcError(SIGNATURE_FAILURE, exc.message)
    if exc.kind == "invalid":
        return RpcError(INVALID_PARAMS, exc.message)
    data = {
        "err": exc.err,
        "logs": exc.logs,
        "accounts": None,
        "unitsConsumed": exc.units_consumed,
        "returnData": None,
    }
    return RpcError(PREFLIGHT_FAILURE, exc.message, data)


def _program_name(program: Pubkey) -> str:
    return "spl-token-2022" if program == TOKEN_2022_PROGRAM_ID else "spl-token"


def _token_info(account: Any, decimals: int) -> dict[str, Any]:
    state = "frozen" if account.state == TokenAccountState.Frozen else "initialized"
    info: dict[str, Any] = {
        "isNative": account.is_native is not None,
        "mint": str(account.mint),
        "owner": str(account.owner),
        "state": state,
        "tokenAmount": ui_token_amount(account.amount, decimals),
    }
    if account.delegate is not None:
        info["delegate"] = str(account.delegate)
        info["delegatedAmount"] = ui_token_amount(account.delegated_amount, decimals)
    return info


def _flags(tx: VersionedTransaction) -> list[tuple[bool, bool]]:
    """(signer, writable) for each static account key, from the message header."""
    header = tx.message.header
    keys = len(tx.message.account_keys)
    signed = header.num_required_signatures
    flags = []
    for index in range(keys):
        if index < signed:
            flags.append((True, index < signed - header.num_readonly_signed_accounts))
        else:
            flags.append((False, index < keys - header.num_readonly_unsigned_accounts))
    return flags


def _encode_transaction(tx: VersionedTransaction, raw: bytes, encoding: str) -> Any:
    if encoding == "base64":
        return [base64.b64encode(raw).decode(), "base64"]
    if encoding == "base58":
        return [b58encode(raw), "base58"]
    message = tx.message
    keys = [str(k) for k in message.account_keys]
    signatures = [str(s) for s in tx.signatures]
    lookups = None
    if isinstance(message, MessageV0):
        lookups = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(lookup.writable_indexes),
                "readonlyIndexes": list(lookup.readonly_indexes),
            }
            for lookup in message.address_table_lookups
        ]
    if encoding == "json":
        header = message.header
        body: dict[str, Any] = {
            "header": {
                "numRequiredSignatures": header.num_required_signatures,
                "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
            },
            "accountKeys": keys,
            "recentBlockhash": str(message.recent_blockhash),
            "instructions": [
                {
                    "programIdIndex": ix.program_id_index,
                    "accounts": list(ix.accounts),
                    "data": b58encode(bytes(ix.data)),
                    "stackHeight": None,
                }
                for ix in message.instructions
            ],
        }
    else:
        body = {
            "accountKeys": [
                {"pubkey": key, "writable": writable, "signer": signer, "source": "transaction"}
                for key, (signer, writable) in zip(keys, _flags(tx), strict=True)
            ],
            "recentBlockhash": str(message.recent_blockhash),
            "instructions": [
                _parsed_instruction(
                    keys[ix.program_id_index], [keys[i] for i in ix.accounts], bytes(ix.data), None
                )
                for ix in message.instructions
            ],
        }
    if lookups is not None:
        body["addressTableLookups"] = lookups
    return {"signatures": signatures, "message": body}


def _meta(record: TxRecord, tx: VersionedTransaction, *, parsed: bool) -> dict[str, Any]:
    inner = record.inner_instructions
    if parsed:
        keys = [str(k) for k in tx.message.account_keys]
        inner = [
            {
                "index": group["index"],
                "instructions": [
                    _parsed_instruction(
                        keys[ix["programIdIndex"]],
                        [keys[i] for i in ix["accounts"]],
                        b58decode(ix["data"]),
                        ix["stackHeight"],
                    )
                    for ix in group["instructions"]
                ],
            }
            for group in inner
        ]
    return {
        "err": record.err,
        "status": _status(record),
        "fee": record.fee,
        "preBalances": record.pre_balances,
        "postBalances": record.post_balances,
        "innerInstructions": inner,
        "logMessages": record.logs,
        "preTokenBalances": record.pre_token_balances,
        "postTokenBalances": record.post_token_balances,
        "rewards": [],
        "loadedAddresses": {"writable": [], "readonly": []},
        "computeUnitsConsumed": record.compute_units,
    }


def _parsed_instruction(program: str, accounts: list[str], data: bytes, stack: int | None) -> dict[str, Any]:
    """An instruction in ``jsonParsed`` form: SPL transfers and SOL transfers parsed, others raw."""
    parsed = _parse_known(program, accounts, data)
    if parsed is not None:
        name, body = parsed
        return {"program": name, "programId": program, "parsed": body, "stackHeight": stack}
    return {"programId": program, "accounts": accounts, "data": b58encode(data), "stackHeight": stack}


def _parse_known(program: str, accounts: list[str], data: bytes) -> tuple[str, dict[str, Any]] | None:
    is_transfer = len(data) == 12 and int.from_bytes(data[:4], "little") == 2 and len(accounts) >= 2
    if program == _SYSTEM_PROGRAM and is_transfer:
        lamports = int.from_bytes(data[4:12], "little")
        info = {"source": accounts[0], "destination": accounts[1], "lamports": lamports}
        return "system", {"type": "transfer", "info": info}
    if program not in (str(TOKEN_PROGRAM_ID), str(TOKEN_2022_PROGRAM_ID)) or not data:
        return None
    name = _program_name(Pubkey.from_string(program))
    if data[0] == 3 and len(data) == 9 and len(accounts) >= 3:
        amount = int.from_bytes(data[1:9], "little")
        info = {
            "source": accounts[0],
            "destination": accounts[1],
            "authority": accounts[2],
            "amount": str(amount),
        }
        return name, {"type": "transfer", "info": info}
    if data[0] == 12 and len(data) == 10 and len(accounts) >= 4:
        amount = int.from_bytes(data[1:9], "little")
        info = {
            "source": accounts[0],
            "mint": accounts[1],
            "destination": accounts[2],
            "authority": accounts[3],
            "tokenAmount": ui_token_amount(amount, data[9]),
        }
        return name, {"type": "transferChecked", "info": info}
    return None
