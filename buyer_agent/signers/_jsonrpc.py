"""An EVM key held by another process, reached over JSON-RPC as Clef and Web3Signer speak it.

Methods used (Ethereum JSON-RPC names; Clef's ``account_*`` names are tried when a signer answers
"method not found"):

- ``eth_accounts`` → the addresses the signer holds;
- ``eth_signTransaction [tx]`` with ``from``, ``to``, ``gas``, ``maxFeePerGas``,
  ``maxPriorityFeePerGas``, ``nonce``, ``chainId``, ``value`` as hex quantities and ``data`` as hex →
  the raw signed transaction (a hex string, or Clef's ``{raw, tx}``);
- ``personal_sign [data, address]`` → an EIP-191 signature (Web3Signer's ``eth_sign [address, data]``
  as the fallback);
- ``eth_signTypedData_v4 [address, typedData]`` → an EIP-712 signature.

Every answer is checked before use (see :mod:`buyer_agent.signers._verify`): the signed transaction
must be the one asked for and recover to the signer's address.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from eth_utils.address import is_address, to_checksum_address

from buyer_agent._errors import SignerError
from buyer_agent._tls import tls_context
from buyer_agent.signers._protocol import EvmTransaction, SignedEvmTransaction
from buyer_agent.signers._verify import (
    checked_message_signature,
    checked_transaction,
    checked_typed_signature,
)

__all__ = ["JsonRpcEvmSigner"]

_METHOD_NOT_FOUND = -32601
_MAX_DETAIL = 200


def _public_url(url: str) -> str:
    """The URL without credentials or query (what reprs and errors may show)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _hex_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise SignerError(f"the signer answered {what} with {type(value).__name__}, not 0x hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise SignerError(f"the signer answered {what} with malformed hex") from None


class JsonRpcEvmSigner:
    """Signs with a key that never enters this process.

    Build it with :meth:`connect` (asks ``eth_accounts`` and picks ``address``, or the only account);
    the constructor takes an address already known.

    Args:
        url: The signer's HTTP JSON-RPC endpoint, e.g. ``http://127.0.0.1:8550`` (Clef's default).
        address: The account to sign with.
        client: An ``httpx.AsyncClient`` to send through (not closed here); default: a short-lived one
            per call, so the signer holds no connection and needs no closing.
        timeout: Seconds to wait for an answer (a signer asking a human to approve can be slow).
    """

    def __init__(
        self,
        url: str,
        address: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 60.0,
    ) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise SignerError(f"the signer URL must be http(s), not {_public_url(url)!r}")
        if not is_address(address):
            raise SignerError(f"the signer's account is not an EVM address: {address!r}")
        self._url = url
        self._address = to_checksum_address(address)
        self._client = client
        self._timeout = timeout
        self._ids = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        address: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 60.0,
    ) -> JsonRpcEvmSigner:
        """A signer for ``address`` (or the signer's only account), checked against ``eth_accounts``.

        Raises:
            SignerError: the signer is unreachable (``retryable``), holds no account, holds several
                and none was chosen, or does not hold ``address``.
        """
        probe = cls(url, address or "0x" + "00" * 20, client=client, timeout=timeout)
        accounts = await probe.accounts()
        where = _public_url(url)
        if address is None:
            if len(accounts) != 1:
                listed = ", ".join(accounts) or "none"
                raise SignerError(
                    f"the signer at {where} holds {len(accounts)} accounts ({listed}); "
                    "name one with keys.evm.address"
                )
            address = accounts[0]
        elif not any(a.lower() == address.lower() for a in accounts):
            raise SignerError(
                f"the signer at {where} does not hold {address} (it holds {', '.join(accounts)})"
            )
        probe._address = to_checksum_address(address)
        return probe

    def __repr__(self) -> str:
        return f"JsonRpcEvmSigner(url={_public_url(self._url)!r}, address={self._address!r})"

    @property
    def address(self) -> str:
        """The account signed with (checksummed)."""
        return self._address

    @property
    def url(self) -> str:
        """The signer's URL without credentials or query."""
        return _public_url(self._url)

    # --- the methods ------------------------------------------------------------------------------

    async def accounts(self) -> list[str]:
        """``eth_accounts``: the checksummed addresses the signer holds."""
        result = await self._call_first([("eth_accounts", []), ("account_list", [])], "eth_accounts")
        if not isinstance(result, list) or not all(isinstance(a, str) and is_address(a) for a in result):
            raise SignerError(
                "the signer answered eth_accounts with something that is not a list of addresses"
            )
        return [to_checksum_address(a) for a in result]

    async def sign_transaction(self, tx: EvmTransaction) -> SignedEvmTransaction:
        """``eth_signTransaction``; the returned bytes are checked to be ``tx`` from :attr:`address`."""
        obj = tx.to_rpc(self._address)
        result = await self._call_first(
            [("eth_signTransaction", [obj]), ("account_signTransaction", [obj])], "eth_signTransaction"
        )
        raw_hex = result.get("raw") if isinstance(result, Mapping) else result
        raw = _hex_bytes(raw_hex, "eth_signTransaction")
        return checked_transaction(tx, raw, self._address)

    async def sign_message(self, message: bytes) -> bytes:
        """``personal_sign [data, address]`` (EIP-191); checked to recover to :attr:`address`."""
        data = "0x" + message.hex()
        result = await self._call_first(
            [
                ("personal_sign", [data, self._address]),
                ("eth_sign", [self._address, data]),
                ("account_signData", ["text/plain", self._address, data]),
            ],
            "personal_sign",
        )
        return checked_message_signature(message, _hex_bytes(result, "personal_sign"), self._address)

    async def sign_typed_data(self, typed_data: Mapping[str, Any]) -> bytes:
        """``eth_signTypedData_v4 [address, typedData]`` (EIP-712); checked to recover to :attr:`address`."""
        document = json.dumps(typed_data, separators=(",", ":"))
        result = await self._call_first(
            [
                ("eth_signTypedData_v4", [self._address, document]),
                ("account_signTypedData", [self._address, json.loads(document)]),
            ],
            "eth_signTypedData_v4",
        )
        return checked_typed_signature(typed_data, _hex_bytes(result, "eth_signTypedData_v4"), self._address)

    async def aclose(self) -> None:
        """Nothing to release: calls use the given client (the caller closes it) or their own."""

    # --- transport --------------------------------------------------------------------------------

    async def _call_first(self, attempts: Sequence[tuple[str, list[Any]]], what: str) -> Any:
        """The first of ``attempts`` the signer knows (the next is tried on "method not found")."""
        last: SignerError | None = None
        for method, params in attempts:
            try:
                return await self._call(method, params)
            except _MethodNotFound as exc:
                last = SignerError(f"the signer at {self.url} does not offer {what} ({exc})")
        assert last is not None
        raise last

    async def _call(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        try:
            if self._client is not None:
                resp = await self._client.post(self._url, json=body, timeout=self._timeout)
            else:
                async with httpx.AsyncClient(verify=tls_context(), timeout=self._timeout) as client:
                    resp = await client.post(self._url, json=body)
        except httpx.TransportError as exc:
            raise SignerError(
                f"the signer at {self.url} did not answer {method}: {type(exc).__name__}", retryable=True
            ) from exc
        if resp.status_code >= 400:
            raise SignerError(
                f"the signer at {self.url} answered {method} with HTTP {resp.status_code}",
                retryable=resp.status_code >= 500 or resp.status_code == 429,
            )
        try:
            payload = resp.json()
        except ValueError:
            raise SignerError(f"the signer at {self.url} answered {method} with something not JSON") from None
        if not isinstance(payload, dict):
            raise SignerError(
                f"the signer at {self.url} answered {method} with a JSON {type(payload).__name__}"
            )
        error = payload.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = str(error.get("message") if isinstance(error, dict) else error)[:_MAX_DETAIL]
            if code == _METHOD_NOT_FOUND:
                raise _MethodNotFound(message)
            raise SignerError(f"the signer at {self.url} refused {method}: {message} (code {code})")
        if "result" not in payload:
            raise SignerError(f"the signer at {self.url} answered {method} without a result")
        return payload["result"]


class _MethodNotFound(Exception):
    """The signer does not offer a method (JSON-RPC -32601); another name may be tried."""
