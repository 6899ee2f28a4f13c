"""Task files: the YAML schema of one order and its connection settings, parsed with exact errors.

(About 750 lines: one walk over one schema, a method per section, kept together so every field's
error names its path and line the same way.)

The file is read with PyYAML's node API (``yaml.compose`` with the safe loader) rather than
``safe_load`` so every error can name the field as a dotted path *and* the line it is on. Unknown
keys and wrong types are refused. String values may hold ``${VAR}`` / ``${VAR:-default}``
references to the environment; the keys section holds nothing else, so a task file never carries a
literal secret. ``keys.evm`` may instead name an external signer that holds the key in another
process: ``keys: {evm: {signer: http://127.0.0.1:8550, address: 0x…}}`` (``address`` optional when
the signer holds one account).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from buyer_agent._errors import TaskFileError
from buyer_agent._limits import (
    MAX_SERVICE_INPUT_BYTES,
    MAX_TASK_FILE_BYTES,
    TooLarge,
    human,
    input_size,
    read_bounded,
)
from buyer_agent._money import Money
from buyer_agent._redact import Secret
from buyer_agent.networks import NetworkProfile, agent_networks, load_networks_file, parse_profiles
from buyer_agent.workflow import Acceptance, Deadlines, OrderSpec
from strategies import StrategyError, load_strategy

__all__ = ["SANDBOX", "Task", "check_strategy", "load_task", "parse_task"]

#: The ``market`` value meaning the embedded sandbox (also the default).
SANDBOX = "sandbox"

_TAG = "tag:yaml.org,2002:"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_WHOLE_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-)?\}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9.$-]{1,16}$")
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_MAX_DEPTH = 64
_MAX_NODES = 100_000
_RAILS = ("wallet", "onchain-escrow", "x402", "not-required")
_POLICY_MONEY = ("per_transaction_limit", "daily_spend_limit")
_POLICY_LISTS = ("allowed_service_ids", "denied_service_ids", "allowed_skill_keys", "denied_skill_keys")


@dataclass(frozen=True, slots=True)
class Task:
    """A parsed task file: the order to place and how to reach the market.

    ``market`` is None for the embedded sandbox, else the market's URL. Keys are :class:`Secret`
    (None when the file leaves them unset: the sandbox supplies demo keys, an external market
    falls back to the environment). ``evm_signer`` is the URL of an external JSON-RPC signer that
    holds the EVM key instead (``evm_signer_address`` the account it signs with, when named).
    ``policy`` is the delegation policy to request when pairing (snake_case keys, amounts as Decimal
    with a ``currency``). ``networks`` are the task's own network profiles (``networks:``, inline or
    a file), extending the built-in ones.
    """

    spec: OrderSpec
    market: str | None = None
    machine_id: str | None = None
    api_key: Secret | None = None
    evm_key: Secret | None = None
    evm_signer: str | None = None
    evm_signer_address: str | None = None
    solana_key: Secret | None = None
    evm_rpc: str | None = None
    solana_rpc: str | None = None
    policy: Mapping[str, Any] | None = None
    networks: tuple[NetworkProfile, ...] = ()
    source: str | None = field(default=None, compare=False)

    def with_market(self, market: str | None) -> Task:
        """The same task against another market (``--market``); ``"sandbox"`` or None = the embedded one."""
        return replace(self, market=None if market in (None, "", SANDBOX) else market)

    def with_strategy(self, strategy: str | Mapping[str, Any]) -> Task:
        """The same task with another quote-selection strategy (``--strategy``).

        Raises:
            TaskFileError: An unknown strategy or bad params (the message lists the available ones),
                so a bad ``--strategy`` stops the run before any market call.
        """
        check_strategy(strategy, "--strategy")
        return replace(self, spec=replace(self.spec, strategy=strategy))


def check_strategy(strategy: str | Mapping[str, Any], field: str, *, line: int | None = None) -> None:
    """Refuse a strategy that cannot be loaded (unknown name, bad params) as a :class:`TaskFileError`.

    Checked when the task is read, so a bad strategy fails before pairing or searching.
    """
    try:
        load_strategy(strategy)
    except StrategyError as exc:
        raise TaskFileError(field, str(exc), line=line) from exc


def load_task(path: str | Path, *, env: Mapping[str, str] | None = None) -> Task:
    """Read and validate a task file.

    Args:
        path: The YAML file.
        env: The variables ``${VAR}`` references read; defaults to ``os.environ``.

    Raises:
        TaskFileError: The file cannot be read, is not YAML, or breaks the schema (field and line named).
    """
    try:
        text = read_bounded(path, MAX_TASK_FILE_BYTES, f"the task file {path}").decode("utf-8")
    except TooLarge as exc:
        raise TaskFileError("<file>", str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise TaskFileError("<file>", f"{path} is not UTF-8 text") from exc
    except OSError as exc:
        raise TaskFileError("<file>", f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_task(text, source=str(path), env=env)


def parse_task(text: str, *, source: str | None = None, env: Mapping[str, str] | None = None) -> Task:
    """Validate task-file text (see :func:`load_task`)."""
    root = _compose(text)
    if root is None:
        raise TaskFileError("<document>", "the task file is empty", line=1)
    base = Path(source).parent if source else Path.cwd()
    parser = _Parser(os.environ if env is None else env, base=base)
    task = parser.task(root)
    return replace(task, source=source)


def _unloadable(path: str) -> str | None:
    """Why the ``module:function`` at ``path`` cannot be loaded and called, or None when it can."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure of the user's module: named, never a traceback
        return f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
    func = getattr(module, name, None)
    if func is None:
        return f"{module_name!r} has no {name!r}"
    if not callable(func):
        return f"{path!r} is not callable"
    return None


def _compose(text: str) -> Node | None:
    try:
        node: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = f"not valid YAML: {exc.problem or exc.context}"
        lines = text.splitlines()
        source = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
        if "${" in source and "got '{'" in str(exc.problem):
            # `{evm: ${VAR}}`: inside {…} or […] YAML reads the reference's `{` as a mapping.
            problem += ' (inside {…} or […], quote a ${VAR} reference: "${VAR}")'
        raise TaskFileError("<document>", problem, line=line) from exc
    except yaml.YAMLError as exc:
        raise TaskFileError("<document>", f"not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise TaskFileError("<document>", "nested too deeply") from exc
    return node


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_KIND = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "seq": "a list",
    "map": "a mapping",
    "timestamp": "a string",
}


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "map"
    if isinstance(node, SequenceNode):
        return "seq"
    tag = str(node.tag)
    return tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Parser:
    """Walks the node tree of one task file."""

    def __init__(self, env: Mapping[str, str], base: Path | None = None) -> None:
        self._env = env
        self._base = base or Path.cwd()
        self._nodes = 0
        self._profiles: tuple[NetworkProfile, ...] = ()

    # --- primitives ---------------------------------------------------------------------------

    def _fail(self, path: str, message: str, node: Node) -> TaskFileError:
        return TaskFileError(path or "<document>", message, line=_line(node))

    def _mapping(self, node: Node, path: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        """The mapping's value nodes by key; unknown or repeated keys are refused."""
        if not isinstance(node, MappingNode):
            raise self._fail(path, f"must be a mapping, not {_KIND.get(_kind(node), _kind(node))}", node)
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "<<":
                raise self._fail(_join(path, "<<"), "YAML merge keys are not supported", key_node)
            if not isinstance(key_node, ScalarNode) or _kind(key_node) not in ("str", "int", "bool", "null"):
                raise self._fail(path, "keys must be plain names", key_node)
            key = str(key_node.value)
            where = _join(path, key)
            if key not in allowed:
                raise self._fail(where, f"unknown key (allowed: {', '.join(allowed)})", key_node)
            if key in out:
                raise self._fail(where, "given twice", key_node)
            out[key] = value_node
        return out

    def _interpolate(self, raw: str, path: str, node: Node) -> str:
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self._env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise self._fail(path, f"environment variable {name} is not set", node)
                return default
            return value

        out = _REF.sub(sub, raw)
        if "${" in _REF.sub("", raw):
            raise self._fail(path, "malformed ${VAR} reference (write ${NAME} or ${NAME:-default})", node)
        return out

    def _scalar_text(self, node: Node, path: str) -> tuple[str, bool]:
        """A string scalar after interpolation, and whether it held a reference."""
        if not isinstance(node, ScalarNode) or _kind(node) not in ("str", "timestamp"):
            raise self._fail(path, f"must be a string, not {_KIND.get(_kind(node), _kind(node))}", node)
        raw = str(node.value)
        return self._interpolate(raw, path, node), "${" in raw

    def string(self, node: Node, path: str, *, empty_is_none: bool = True) -> str | None:
        """An optional string (null or, after interpolation, empty → None)."""
        if _kind(node) == "null":
            return None
        text, _ = self._scalar_text(node, path)
        if text == "" and empty_is_none:
            return None
        return text

    def required_string(self, node: Node, path: str) -> str:
        """A non-empty string."""
        text = self.string(node, path)
        if text is None:
            raise self._fail(path, "must be a non-empty string", node)
        return text

    def boolean(self, node: Node, path: str) -> bool:
        """A boolean (``true`` / ``false``)."""
        if _kind(node) == "bool":
            return bool(SafeConstructor.bool_values[str(node.value).lower()])
        if _kind(node) == "str" and "${" in str(node.value):
            text = self._interpolate(str(node.value), path, node).strip().lower()
            if text in ("true", "false"):
                return text == "true"
        raise self._fail(path, f"must be true or false, not {_KIND.get(_kind(node), _kind(node))}", node)

    def number(self, node: Node, path: str, *, positive: bool = True) -> Decimal:
        """A finite number (a ``${VAR}`` holding one is accepted), exact as a Decimal."""
        kind = _kind(node)
        text: str | None = None
        if kind in ("int", "float"):
            text = str(node.value).replace("_", "")
        elif kind == "str" and "${" in str(node.value):
            text = self._interpolate(str(node.value), path, node).strip()
        if text is None:
            raise self._fail(path, f"must be a number, not {_KIND.get(kind, kind)}", node)
        try:
            value = Decimal(int(text, 0)) if kind == "int" else Decimal(text)
        except (InvalidOperation, ValueError):
            raise self._fail(path, f"must be a number, not {text!r}", node) from None
        if not value.is_finite():
            raise self._fail(path, "must be a finite number", node)
        if positive and value <= 0:
            raise self._fail(path, "must be above zero", node)
        return value

    def money(self, node: Node, path: str) -> Money:
        """An amount like ``"2.50 USDC"``."""
        if _kind(node) in ("int", "float"):
            raise self._fail(path, 'must be an amount with its currency, like "2.50 USDC"', node)
        text, _ = self._scalar_text(node, path)
        try:
            return Money.parse(text.strip())
        except (ValueError, TypeError) as exc:
            raise self._fail(path, f'{exc} (write it like "2.50 USDC")', node) from None

    def strings(self, node: Node, path: str) -> tuple[str, ...]:
        """A list of strings."""
        if _kind(node) == "null":
            return ()
        if not isinstance(node, SequenceNode):
            raise self._fail(path, f"must be a list, not {_KIND.get(_kind(node), _kind(node))}", node)
        return tuple(self.required_string(item, _join(path, i)) for i, item in enumerate(node.value))

    def data(self, node: Node, path: str, depth: int = 0) -> Any:
        """Free-form data (``input``, JSON schema, policy extras): JSON types, numbers exact."""
        self._nodes += 1
        if depth > _MAX_DEPTH:
            raise self._fail(path, "nested too deeply", node)
        if self._nodes > _MAX_NODES:
            raise self._fail(path, "too large", node)
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode) or _kind(key_node) not in ("str", "int", "bool"):
                    raise self._fail(path, "keys must be strings", key_node)
                key = str(key_node.value)
                if key == "<<":
                    raise self._fail(_join(path, key), "YAML merge keys are not supported", key_node)
                if key in out:
                    raise self._fail(_join(path, key), "given twice", key_node)
                out[key] = self.data(value_node, _join(path, key), depth + 1)
            return out
        if isinstance(node, SequenceNode):
            return [self.data(item, _join(path, i), depth + 1) for i, item in enumerate(node.value)]
        kind = _kind(node)
        if kind == "null":
            return None
        if kind == "bool":
            return self.boolean(node, path)
        if kind in ("int", "float"):
            value = self.number(node, path, positive=False)
            return int(value) if kind == "int" else value
        if kind in ("str", "timestamp"):
            return self._scalar_text(node, path)[0]
        raise self._fail(path, f"unsupported YAML tag {node.tag}", node)

    # --- sections -----------------------------------------------------------------------------

    def task(self, root: Node) -> Task:
        """The whole document."""
        top = self._mapping(
            root,
            "",
            (
                "market",
                "machine_id",
                "keys",
                "rpc",
                "task",
                "budget",
                "strategy",
                "payment",
                "acceptance",
                "approval_threshold",
                "deadlines",
                "policy",
                "chain",
                "networks",
            ),
        )
        if "task" not in top:
            raise self._fail("task", "is required (the service to buy)", root)
        if "budget" not in top:
            raise self._fail("budget", 'is required (like "2.50 USDC")', root)
        market = self.market(top["market"]) if "market" in top else None
        machine_id = self.string(top["machine_id"], "machine_id") if "machine_id" in top else None
        keys, signer = self.keys(top["keys"]) if "keys" in top else ({}, {})
        rpc = self.rpc(top["rpc"]) if "rpc" in top else {}
        networks = self.networks(top["networks"]) if "networks" in top else ()
        self._profiles = networks
        spec_kw = self.order(top["task"])
        spec_kw["budget"] = self.money(top["budget"], "budget")
        if spec_kw["budget"].amount <= 0:
            raise self._fail("budget", "must be above zero", top["budget"])
        if "strategy" in top:
            spec_kw["strategy"] = self.strategy(top["strategy"])
        if "payment" in top:
            spec_kw.update(self.payment(top["payment"]))
        if "chain" in top:
            if "chain" in spec_kw:
                raise self._fail("chain", "given twice (here and as payment.chain)", top["chain"])
            spec_kw["chain"] = self.chain(top["chain"], "chain")
        if "acceptance" in top:
            spec_kw["acceptance"] = self.acceptance(top["acceptance"])
        if "approval_threshold" in top:
            threshold = self.money(top["approval_threshold"], "approval_threshold")
            if threshold.currency != spec_kw["budget"].currency:
                raise self._fail(
                    "approval_threshold", "must be in the budget's currency", top["approval_threshold"]
                )
            spec_kw["approval_threshold"] = threshold
        if "deadlines" in top:
            spec_kw["deadlines"] = self.deadlines(top["deadlines"])
        policy = self.policy(top["policy"]) if "policy" in top else None
        self.payable(spec_kw, top)
        try:
            spec = OrderSpec(**spec_kw)
        except (TypeError, ValueError) as exc:
            raise self._fail("budget" if "budget" in str(exc) else "task", str(exc), root) from None
        return Task(
            spec=spec,
            market=market,
            machine_id=machine_id,
            api_key=keys.get("api_key"),
            evm_key=keys.get("evm"),
            evm_signer=signer.get("signer"),
            evm_signer_address=signer.get("address"),
            solana_key=keys.get("solana"),
            evm_rpc=rpc.get("evm"),
            solana_rpc=rpc.get("solana"),
            policy=policy,
            networks=networks,
        )

    def payable(self, spec_kw: Mapping[str, Any], top: Mapping[str, Node]) -> None:
        """Refuse a budget in a currency no token the agent can pay on its chain carries.

        The agent pays only tokens it can pin (a network profile's, or ``payment.tokens``), and only in
        the budget's currency, so ``"2.50 USD"`` or ``chain: peaq`` with no ``USDC`` contract named can
        never be paid: refused now, before pairing, rather than after a search.
        """
        budget: Money = spec_kw["budget"]
        symbol = budget.currency.upper()
        allowlist = {s.upper() for s in spec_kw.get("tokens") or {}}
        if symbol in allowlist:
            return
        try:
            known = agent_networks(list(self._profiles), env=self._env)
        except TaskFileError:
            return  # the chain's own field reports the unreadable profiles when it needs them
        chain = spec_kw.get("chain")
        if chain not in (None, "evm", "solana"):
            profile = known.get(str(chain))
            if profile is None or profile.token(symbol) is not None:
                return  # a chain no profile knows: only the intent can tell (and the allowlist pins it)
            listed = ", ".join(sorted(profile.tokens)) or "none published"
            where = "chain" if "chain" in top else "payment.chain"
            raise self._fail(
                "budget",
                f"{profile.name} ({profile.chain}, from {where}) has no {symbol} the agent knows "
                f"(its profile's tokens: {listed}); name the {symbol} contract in payment.tokens "
                f'({{{symbol}: "0x..."}}) or pay in a token it lists',
                top["budget"],
            )
        family = {"evm": "eip155:", "solana": "solana:"}.get(str(chain), "")
        symbols = {s for p in known if p.chain.startswith(family) for s in p.tokens}
        if symbol not in symbols:
            raise self._fail(
                "budget",
                f"{symbol} is not a token the agent pays in (known: {', '.join(sorted(symbols))}); "
                f'write the budget in one of them, like "{str(budget).split()[0]} USDC", or name the '
                f"{symbol} contract in payment.tokens",
                top["budget"],
            )

    def networks(self, node: Node) -> tuple[NetworkProfile, ...]:
        """``networks:``: a file of profiles (path relative to the task file) or the profiles inline."""
        if isinstance(node, ScalarNode) and _kind(node) == "str":
            path = Path(self.required_string(node, "networks"))
            path = path if path.is_absolute() else self._base / path
            try:
                return tuple(load_networks_file(path, where="networks"))
            except TaskFileError as exc:
                raise TaskFileError(exc.field, str(exc).split(": ", 1)[-1], line=_line(node)) from None
        value = self.data(node, "networks")
        try:
            return tuple(parse_profiles(value, source="task", where="networks"))
        except TaskFileError as exc:
            raise TaskFileError(exc.field, str(exc).split(": ", 1)[-1], line=_line(node)) from None

    def chain(self, node: Node, path: str) -> str | None:
        """``evm``, ``solana``, or a chain's name or alias resolved to its CAIP-2 id."""
        chain = self.string(node, path)
        if chain is None or chain in ("evm", "solana"):
            return chain
        try:
            known = agent_networks(list(self._profiles), env=self._env)
        except TaskFileError as exc:
            raise self._fail(path, f"cannot read the network profiles: {exc}", node) from None
        resolved = known.resolve(chain)
        if resolved is None:
            names = ", ".join(sorted({a for p in known for a in (p.name, *p.aliases)}))
            raise self._fail(
                path, f"unknown chain {chain!r} (known: evm, solana, {names}, or a CAIP-2 id)", node
            )
        return resolved

    def market(self, node: Node) -> str | None:
        """``sandbox`` (None) or an http(s) URL."""
        text = self.string(node, "market")
        if text is None or text == SANDBOX:
            return None
        if not _URL.match(text):
            raise self._fail("market", f"must be 'sandbox' or an http(s) URL, not {text!r}", node)
        return text.rstrip("/")

    def keys(self, node: Node) -> tuple[dict[str, Secret], dict[str, str]]:
        """Only ``${VAR}`` references (a task file never holds a literal key), or an external signer.

        Returns the keys by name and the EVM signer's settings (``signer`` URL, ``address``).
        """
        found = self._mapping(node, "keys", ("api_key", "evm", "solana"))
        out: dict[str, Secret] = {}
        signer: dict[str, str] = {}
        for name, value_node in found.items():
            path = f"keys.{name}"
            if _kind(value_node) == "null":
                continue
            if name == "evm" and isinstance(value_node, MappingNode):
                signer = self.signer(value_node)
                continue
            if _kind(value_node) != "str" or not _WHOLE_REF.match(str(value_node.value).strip()):
                hint = " (or, for keys.evm, {signer: URL} of an external signer)" if name == "evm" else ""
                raise self._fail(
                    path,
                    f"must be a ${{VAR}} reference to the environment, never a literal key{hint}",
                    value_node,
                )
            text = self.string(value_node, path)
            if text is not None:
                out[name] = Secret(text.strip())
        return out, signer

    def signer(self, node: Node) -> dict[str, str]:
        """``keys.evm: {signer: URL, address: 0x…}``: the key stays in the signer's process."""
        found = self._mapping(node, "keys.evm", ("signer", "address"))
        if "signer" not in found:
            raise self._fail("keys.evm.signer", "is required (the external signer's http(s) URL)", node)
        url = self.required_string(found["signer"], "keys.evm.signer")
        if not _URL.match(url):
            raise self._fail("keys.evm.signer", f"must be an http(s) URL, not {url!r}", found["signer"])
        out = {"signer": url}
        if "address" in found:
            value = found["address"]
            # Unquoted, YAML reads 0x… as a (hex) integer: its text is still the address.
            hex_int = _kind(value) == "int" and str(value.value).lower().startswith("0x")
            address = str(value.value) if hex_int else self.string(value, "keys.evm.address")
            if address is not None:
                if not _EVM_ADDRESS.match(address):
                    raise self._fail(
                        "keys.evm.address", f"must be a 0x EVM address, not {address!r}", found["address"]
                    )
                out["address"] = address
        return out

    def rpc(self, node: Node) -> dict[str, str]:
        """Chain RPC URLs."""
        found = self._mapping(node, "rpc", ("evm", "solana"))
        out: dict[str, str] = {}
        for name, value_node in found.items():
            text = self.string(value_node, f"rpc.{name}")
            if text is not None:
                if not _URL.match(text):
                    raise self._fail(f"rpc.{name}", f"must be an http(s) URL, not {text!r}", value_node)
                out[name] = text
        return out

    def order(self, node: Node) -> dict[str, Any]:
        """The ``task`` section: what to buy."""
        found = self._mapping(
            node,
            "task",
            (
                "service_type",
                "task_type",
                "operation",
                "input",
                "region",
                "capabilities",
                "allow_handoff",
            ),
        )
        if "service_type" not in found:
            raise self._fail("task.service_type", "is required", node)
        out: dict[str, Any] = {
            "service_type": self.required_string(found["service_type"], "task.service_type")
        }
        for name in ("task_type", "operation", "region"):
            if name in found:
                out[name] = self.string(found[name], f"task.{name}")
        if "input" in found:
            value = self.data(found["input"], "task.input")
            if value is not None and not isinstance(value, dict):
                raise self._fail("task.input", "must be a mapping", found["input"])
            size = input_size(value or {})
            if size > MAX_SERVICE_INPUT_BYTES:
                raise self._fail(
                    "task.input",
                    f"is {size} bytes as JSON, over the limit of {human(MAX_SERVICE_INPUT_BYTES)}",
                    found["input"],
                )
            out["input"] = value or {}
        if "capabilities" in found:
            out["capabilities"] = self.strings(found["capabilities"], "task.capabilities")
        if "allow_handoff" in found:
            out["allow_handoff"] = self.boolean(found["allow_handoff"], "task.allow_handoff")
        return out

    def strategy(self, node: Node) -> str | dict[str, Any]:
        """A strategy name, or ``{name, params}``."""
        if isinstance(node, MappingNode):
            found = self._mapping(node, "strategy", ("name", "params"))
            if "name" not in found:
                raise self._fail("strategy.name", "is required", node)
            name = self.required_string(found["name"], "strategy.name")
            params: Any = {}
            if "params" in found:
                params = self.data(found["params"], "strategy.params")
                if params is not None and not isinstance(params, dict):
                    raise self._fail("strategy.params", "must be a mapping", found["params"])
            value: str | dict[str, Any] = {"name": name, "params": params or {}}
        else:
            value = self.required_string(node, "strategy")
        check_strategy(value, "strategy", line=_line(node))
        return value

    def payment(self, node: Node) -> dict[str, Any]:
        """The rail, the chain and the EVM fee cap."""
        found = self._mapping(node, "payment", ("rail", "chain", "max_fee_per_gas_gwei", "tokens"))
        out: dict[str, Any] = {}
        if "rail" in found:
            rail = self.string(found["rail"], "payment.rail")
            if rail is not None and rail not in _RAILS:
                raise self._fail(
                    "payment.rail", f"must be one of {', '.join(_RAILS)}, not {rail!r}", found["rail"]
                )
            out["rail"] = rail
        if "chain" in found:
            out["chain"] = self.chain(found["chain"], "payment.chain")
        if "tokens" in found:
            out["tokens"] = self.tokens(found["tokens"])
        if "max_fee_per_gas_gwei" in found:
            gwei = self.number(found["max_fee_per_gas_gwei"], "payment.max_fee_per_gas_gwei")
            wei = gwei.scaleb(9)
            if wei != wei.to_integral_value():
                raise self._fail(
                    "payment.max_fee_per_gas_gwei",
                    "has more than 9 decimal places",
                    found["max_fee_per_gas_gwei"],
                )
            out["fee_cap_wei"] = int(wei)
        return out

    def tokens(self, node: Node) -> dict[str, str]:
        """``payment.tokens``: the token allowlist, symbol → contract address (EVM) or mint (Solana)."""
        found = self.data(node, "payment.tokens")
        if not isinstance(found, dict):
            raise self._fail("payment.tokens", 'must be a mapping like {USDC: "0x..."}', node)
        out: dict[str, str] = {}
        for symbol, value in found.items():
            path = f"payment.tokens.{symbol}"
            if not _SYMBOL.match(symbol):
                raise self._fail(path, f"not a token symbol: {symbol!r}", node)
            if not isinstance(value, str) or not (_EVM_ADDRESS.match(value) or _BASE58.match(value)):
                raise self._fail(
                    path, f"must be a 0x contract address or a base58 Solana mint, not {value!r}", node
                )
            out[symbol.upper()] = value
        return out

    def acceptance(self, node: Node) -> Acceptance:
        """The outcome status, a JSON schema for the result, a ``module:function`` callable."""
        found = self._mapping(node, "acceptance", ("outcome", "schema", "callable"))
        outcome = "completed"
        if "outcome" in found:
            outcome = self.required_string(found["outcome"], "acceptance.outcome")
        schema: dict[str, Any] | None = None
        if "schema" in found:
            value = self.data(found["schema"], "acceptance.schema")
            if not isinstance(value, dict):
                raise self._fail("acceptance.schema", "must be a mapping (a JSON schema)", found["schema"])
            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise self._fail(
                    "acceptance.schema", f"not a valid JSON schema: {exc.message}", found["schema"]
                ) from None
            schema = value
        callable_path = None
        if "callable" in found:
            callable_path = self.string(found["callable"], "acceptance.callable")
            if callable_path is not None and not _CALLABLE.match(callable_path):
                raise self._fail(
                    "acceptance.callable",
                    f"must be 'module:function', not {callable_path!r}",
                    found["callable"],
                )
            if callable_path is not None:
                # Loaded now, as the delivery check will load it: a callable that cannot be loaded
                # would otherwise be found only after paying, and dispute an honest delivery.
                problem = _unloadable(callable_path)
                if problem is not None:
                    raise self._fail("acceptance.callable", problem, found["callable"])
        return Acceptance(outcome=outcome, json_schema=schema, callable_path=callable_path)

    def deadlines(self, node: Node) -> Deadlines:
        """Seconds per phase."""
        names = ("quote", "order", "payment", "execution", "refund")
        found = self._mapping(node, "deadlines", names)
        values = {name: float(self.number(found[name], f"deadlines.{name}")) for name in found}
        return Deadlines(**values)

    def policy(self, node: Node) -> dict[str, Any]:
        """The delegation policy to request when pairing (amounts in one currency)."""
        found = self._mapping(node, "policy", (*_POLICY_MONEY, *_POLICY_LISTS))
        out: dict[str, Any] = {}
        currency: str | None = None
        for name in _POLICY_MONEY:
            if name in found:
                amount = self.money(found[name], f"policy.{name}")
                if currency is not None and amount.currency != currency:
                    raise self._fail(f"policy.{name}", "both limits must be in one currency", found[name])
                currency = amount.currency
                out[name] = amount.to_decimal()
        for name in _POLICY_LISTS:
            out[name] = list(self.strings(found[name], f"policy.{name}")) if name in found else []
        if currency is not None:
            out["currency"] = currency
        return out
