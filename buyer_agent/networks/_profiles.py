"""Network profiles: a chain's CAIP-2 id, its aliases, gas token, stablecoins, depth and explorer.

The built-in profiles are the package's ``profiles.yaml`` (every token address there names its
source). A user's own profiles (a file named by ``BUYER_AGENT_NETWORKS``, or ``networks:`` in a task)
extend or override them by name; the embedded sandbox adds a profile of its own chains at start.
Every field is validated, and an error names it as a dotted path (``networks.base.tokens.USDC.decimals``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from buyer_agent._errors import TaskFileError
from buyer_agent._limits import MAX_TASK_FILE_BYTES, TooLarge, read_bounded

__all__ = [
    "NETWORKS_ENV",
    "NativeToken",
    "NetworkProfile",
    "Networks",
    "TokenInfo",
    "builtin_networks",
    "load_networks_file",
    "parse_profiles",
]

#: The environment variable naming a file of the user's own profiles.
NETWORKS_ENV = "BUYER_AGENT_NETWORKS"

_CAIP2 = re.compile(r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9:._-]{0,63}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9.$-]{1,16}$")
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_URL = re.compile(r"^https?://\S+$")
_COMMITMENTS = ("processed", "confirmed", "finalized")
_FIELDS = (
    "name",
    "chain",
    "aliases",
    "native",
    "confirmations",
    "commitment",
    "explorer",
    "tokens",
    "x402_tokens",
)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token the agent may pay in: its symbol, contract address (EVM) or mint (Solana), decimals."""

    symbol: str
    address: str
    decimals: int

    def matches(self, address: str | None) -> bool:
        """True when ``address`` is this token's (EVM addresses compared without case)."""
        return address is not None and same_address(self.address, address)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"symbol": self.symbol, "address": self.address, "decimals": self.decimals}


@dataclass(frozen=True, slots=True)
class NativeToken:
    """The chain's gas token."""

    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """One chain as the agent knows it.

    ``confirmations`` is the EVM depth a payment needs before it counts; ``commitment`` the Solana
    commitment level. ``explorer`` holds ``{tx}`` where a transaction id goes.
    """

    name: str
    chain: str
    display: str = ""
    aliases: tuple[str, ...] = ()
    native: NativeToken | None = None
    confirmations: int | None = None
    commitment: str | None = None
    explorer: str | None = None
    tokens: Mapping[str, TokenInfo] = field(default_factory=dict)
    source: str = "built-in"
    x402_tokens: Mapping[str, TokenInfo] = field(default_factory=dict)
    """The EIP-3009 tokens x402 authorizations are signed for, by symbol, where they are not the
    ``tokens`` entry (a test chain's second USDC); USDC on Base is one contract for both."""

    @property
    def is_evm(self) -> bool:
        """True for an ``eip155`` chain."""
        return self.chain.startswith("eip155:")

    @property
    def evm_chain_id(self) -> int | None:
        """The numeric EVM chain id, or None for other namespaces."""
        return int(self.chain.split(":", 1)[1]) if self.is_evm else None

    def token(self, symbol: str) -> TokenInfo | None:
        """The profile's token for ``symbol`` (case-insensitive), or None."""
        return self.tokens.get(symbol.upper())

    def x402_token(self, symbol: str) -> TokenInfo | None:
        """The token an x402 authorization for ``symbol`` is signed for: its own entry, else :meth:`token`."""
        return self.x402_tokens.get(symbol.upper()) or self.token(symbol)

    def tx_link(self, tx: str) -> str | None:
        """The explorer page of transaction ``tx``, when the profile has an explorer."""
        return self.explorer.replace("{tx}", tx) if self.explorer else None

    def to_json(self) -> dict[str, Any]:
        """JSON form (what ``networks --json`` prints)."""
        return {
            "name": self.name,
            "chain": self.chain,
            "display": self.display or self.name,
            "aliases": list(self.aliases),
            "native": {"symbol": self.native.symbol, "decimals": self.native.decimals}
            if self.native
            else None,
            "confirmations": self.confirmations,
            "commitment": self.commitment,
            "explorer": self.explorer,
            "tokens": {s: {"address": t.address, "decimals": t.decimals} for s, t in self.tokens.items()},
            "source": self.source,
            **(
                {
                    "x402_tokens": {
                        s: {"address": t.address, "decimals": t.decimals} for s, t in self.x402_tokens.items()
                    }
                }
                if self.x402_tokens
                else {}
            ),
        }


def same_address(a: str, b: str) -> bool:
    """Equal addresses: EVM hex without regard to case, anything else (base58) exactly."""
    if a.startswith("0x") and b.startswith("0x"):
        return a.lower() == b.lower()
    return a == b


class Networks:
    """Profiles by name, looked up by name, alias or CAIP-2 id."""

    def __init__(self, profiles: Iterable[NetworkProfile] = ()) -> None:
        self._profiles: dict[str, NetworkProfile] = {}
        for profile in profiles:
            self._profiles[profile.name] = profile

    def __iter__(self) -> Any:
        return iter(self._profiles.values())

    def __len__(self) -> int:
        return len(self._profiles)

    def __repr__(self) -> str:
        return f"Networks({', '.join(self._profiles)})"

    def names(self) -> list[str]:
        """Every profile's name."""
        return list(self._profiles)

    def extend(self, profiles: Iterable[NetworkProfile]) -> Networks:
        """A copy where ``profiles`` are added, replacing any of the same name or chain."""
        new = list(profiles)
        chains = {p.chain for p in new}
        names = {p.name for p in new}
        kept = [p for p in self._profiles.values() if p.name not in names and p.chain not in chains]
        return Networks([*kept, *new])

    def get(self, name_or_chain: str) -> NetworkProfile | None:
        """The profile named, aliased or identified by ``name_or_chain`` (None when unknown)."""
        key = name_or_chain.strip()
        if key in self._profiles:
            return self._profiles[key]
        low = key.lower()
        for profile in self._profiles.values():
            if profile.chain == key or low in profile.aliases or low == profile.name:
                return profile
        return None

    def resolve(self, name_or_chain: str) -> str | None:
        """The CAIP-2 id for a name, alias or id (an unknown CAIP-2 id is returned as it is)."""
        profile = self.get(name_or_chain)
        if profile is not None:
            return profile.chain
        return name_or_chain if _CAIP2.match(name_or_chain) else None

    def to_json(self) -> list[dict[str, Any]]:
        """Every profile's JSON form."""
        return [p.to_json() for p in self._profiles.values()]


_BUILTIN: Networks | None = None


def builtin_networks() -> Networks:
    """The profiles shipped in the package (read once)."""
    global _BUILTIN
    if _BUILTIN is None:
        text = resources.files("buyer_agent.networks").joinpath("profiles.yaml").read_text(encoding="utf-8")
        _BUILTIN = Networks(parse_profiles(yaml.safe_load(text), source="built-in", where="networks"))
    return _BUILTIN


def load_networks_file(path: str | Path, *, where: str | None = None) -> list[NetworkProfile]:
    """The profiles in a YAML file (``networks:`` at its top, or the mapping itself).

    Raises:
        TaskFileError: The file cannot be read, is not YAML, or a field is wrong (named).
    """
    label = where or NETWORKS_ENV
    try:
        # Bounded like a task file: /dev/zero or an endless FIFO must not hang or fill memory.
        text = read_bounded(path, MAX_TASK_FILE_BYTES, f"the networks file {path}").decode("utf-8")
    except TooLarge as exc:
        raise TaskFileError(label, str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(label, f"cannot read the networks file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaskFileError(label, f"{path} is not valid YAML: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"networks"}:
        data = data["networks"]
    return parse_profiles(data, source=str(path), where=f"{label}:{path}")


def parse_profiles(data: Any, *, source: str, where: str = "networks") -> list[NetworkProfile]:
    """Validate a mapping of profiles by name.

    Raises:
        TaskFileError: A field is missing or wrong; ``field`` is its dotted path under ``where``.
    """
    if isinstance(data, dict) and set(data) == {"networks"} and where == "networks":
        data = data["networks"]
    if not isinstance(data, dict):
        raise TaskFileError(where, "must be a mapping of profiles by name")
    return [_profile(str(name), body, source, f"{where}.{name}") for name, body in data.items()]


def _fail(path: str, message: str) -> TaskFileError:
    return TaskFileError(path, message)


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(path, f"must be an integer from {low} to {high}, not {value!r}")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _profile(name: str, body: Any, source: str, path: str) -> NetworkProfile:
    if not _NAME.match(name):
        raise _fail(path, "a profile name is lower-case letters, digits and - _ . :")
    if not isinstance(body, dict):
        raise _fail(path, "must be a mapping (chain, aliases, native, tokens, ...)")
    unknown = sorted(set(map(str, body)) - set(_FIELDS))
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"unknown key (allowed: {', '.join(_FIELDS)})")
    if "chain" not in body:
        raise _fail(f"{path}.chain", "is required (a CAIP-2 id like eip155:8453)")
    chain = _str(body["chain"], f"{path}.chain")
    if not _CAIP2.match(chain):
        raise _fail(f"{path}.chain", f"must be a CAIP-2 id like eip155:8453, not {chain!r}")
    namespace = chain.split(":", 1)[0]
    if namespace == "eip155" and not chain.split(":", 1)[1].isdigit():
        raise _fail(f"{path}.chain", f"an eip155 chain id is a number, not {chain!r}")
    aliases: list[str] = []
    raw_aliases = body.get("aliases") or []
    if not isinstance(raw_aliases, list):
        raise _fail(f"{path}.aliases", "must be a list of names")
    for i, alias in enumerate(raw_aliases):
        text = _str(alias, f"{path}.aliases[{i}]").lower()
        if not _NAME.match(text):
            raise _fail(f"{path}.aliases[{i}]", f"not a valid name: {text!r}")
        aliases.append(text)
    native = None
    if body.get("native") is not None:
        native = _native(body["native"], f"{path}.native")
    confirmations = None
    commitment = None
    if body.get("confirmations") is not None:
        if namespace != "eip155":
            raise _fail(f"{path}.confirmations", "is for EVM chains (Solana profiles set commitment)")
        confirmations = _int(body["confirmations"], f"{path}.confirmations", 1, 10_000)
    if body.get("commitment") is not None:
        if namespace != "solana":
            raise _fail(f"{path}.commitment", "is for Solana chains (EVM profiles set confirmations)")
        commitment = _str(body["commitment"], f"{path}.commitment")
        if commitment not in _COMMITMENTS:
            raise _fail(f"{path}.commitment", f"must be one of {', '.join(_COMMITMENTS)}")
    explorer = None
    if body.get("explorer") is not None:
        explorer = _str(body["explorer"], f"{path}.explorer")
        if not _URL.match(explorer) or "{tx}" not in explorer:
            raise _fail(f"{path}.explorer", "must be an http(s) URL holding {tx}")
    tokens = _tokens(body, "tokens", namespace, path)
    x402_tokens = _tokens(body, "x402_tokens", namespace, path)
    if x402_tokens and namespace != "eip155":
        raise _fail(f"{path}.x402_tokens", "is for EVM chains (x402 signs EIP-3009 authorizations)")
    display = _str(body["name"], f"{path}.name") if body.get("name") is not None else name
    return NetworkProfile(
        name=name,
        chain=chain,
        display=display,
        aliases=tuple(aliases),
        native=native,
        confirmations=confirmations,
        commitment=commitment,
        explorer=explorer,
        tokens=tokens,
        source=source,
        x402_tokens=x402_tokens,
    )


def _tokens(body: dict[Any, Any], key: str, namespace: str, path: str) -> dict[str, TokenInfo]:
    out: dict[str, TokenInfo] = {}
    raw = body.get(key) or {}
    if not isinstance(raw, dict):
        raise _fail(f"{path}.{key}", "must be a mapping of tokens by symbol")
    for symbol, token in raw.items():
        info = _token(str(symbol), token, namespace, f"{path}.{key}.{symbol}")
        out[info.symbol] = info
    return out


def _native(body: Any, path: str) -> NativeToken:
    if not isinstance(body, dict) or "symbol" not in body or "decimals" not in body:
        raise _fail(path, "must be {symbol, decimals}")
    return NativeToken(
        _str(body["symbol"], f"{path}.symbol"), _int(body["decimals"], f"{path}.decimals", 0, 36)
    )


def _token(symbol: str, body: Any, namespace: str, path: str) -> TokenInfo:
    if not _SYMBOL.match(symbol):
        raise _fail(path, f"not a token symbol: {symbol!r}")
    if not isinstance(body, dict):
        raise _fail(path, "must be {address (or mint), decimals}")
    key = "mint" if namespace == "solana" else "address"
    unknown = sorted(set(map(str, body)) - {key, "decimals"})
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", f"unknown key (allowed: {key}, decimals)")
    if key not in body:
        raise _fail(f"{path}.{key}", "is required")
    if "decimals" not in body:
        raise _fail(f"{path}.decimals", "is required")
    address = _str(body[key], f"{path}.{key}")
    check_token_address(address, namespace, f"{path}.{key}")
    return TokenInfo(symbol.upper(), address, _int(body["decimals"], f"{path}.decimals", 0, 36))


def check_token_address(address: str, namespace: str, path: str) -> None:
    """Refuse an address that is not an EVM address (``eip155``) or a base58 key (``solana``).

    Raises:
        TaskFileError: naming ``path``.
    """
    if namespace == "eip155" and not _EVM_ADDRESS.match(address):
        raise _fail(path, f"must be a 0x-prefixed 20-byte hex address, not {address!r}")
    if namespace == "solana" and not _BASE58.match(address):
        raise _fail(path, f"must be a base58 Solana mint, not {address!r}")


def with_source(profiles: Iterable[NetworkProfile], source: str) -> list[NetworkProfile]:
    """The same profiles, labelled with where they came from."""
    return [replace(p, source=source) for p in profiles]
