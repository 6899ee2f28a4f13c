"""Task files: the schema, ${VAR} interpolation, and errors that name the field and the line."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyer_agent import Money, TaskFileError
from buyer_agent.task import Task, load_task, parse_task

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MINIMAL = """\
task:
  service_type: compute.marketplace
  operation: sha256
budget: "2.50 USDC"
"""


def error(text: str, env: dict[str, str] | None = None) -> TaskFileError:
    with pytest.raises(TaskFileError) as info:
        parse_task(text, env=env or {})
    return info.value


@pytest.mark.parametrize("name", ["task.yaml", "escrow.yaml", "solana.yaml", "dispute.yaml"])
def test_examples_parse_with_no_environment(name: str) -> None:
    task = load_task(EXAMPLES / name, env={})
    assert isinstance(task, Task)
    assert task.market is None  # the embedded sandbox
    assert task.evm_key is None and task.api_key is None
    assert task.spec.budget == Money.parse("2.50 USDC")
    assert task.spec.acceptance.json_schema is not None


def test_examples_read_the_environment_for_an_external_market() -> None:
    env = {
        "PEAQOS_ORCHESTRATION_URL": "http://127.0.0.1:9999",
        "PEAQOS_API_KEY": "platform-key",
        "PEAQOS_MACHINE_ID": "machine-1",
        "BUYER_AGENT_EVM_KEY": "0x" + "11" * 32,
        "BUYER_AGENT_EVM_RPC": "http://127.0.0.1:8545",
    }
    task = load_task(EXAMPLES / "task.yaml", env=env)
    assert task.market == "http://127.0.0.1:9999"
    assert task.machine_id == "machine-1"
    assert task.evm_key is not None and task.evm_key.reveal() == env["BUYER_AGENT_EVM_KEY"]
    assert task.evm_rpc == "http://127.0.0.1:8545"
    assert "11" * 32 not in repr(task)
    assert task.spec.fee_cap_wei == 50 * 10**9


def test_full_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The acceptance callable must load when the task is read (issue 19): give it a module.
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "mypkg" / "checks.py").write_text("def accept(result, outcome):\n    return True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    task = parse_task(
        """\
market: https://market.example/
task:
  service_type: compute.marketplace
  task_type: hash
  operation: sha256
  input: {data: x, n: 3, ratio: 0.5, nested: [1, {a: null}]}
  region: eu-west
  capabilities: [gpu, fast]
  allow_handoff: true
budget: "2.50 USDC"
strategy: {name: weighted, params: {price: 0.7, score: 0.3}}
payment: {rail: onchain-escrow, chain: "eip155:31337", max_fee_per_gas_gwei: 1.5}
acceptance: {outcome: completed, schema: {type: object}, callable: "mypkg.checks:accept"}
approval_threshold: "2.00 USDC"
deadlines: {quote: 30, order: 10, payment: 90, execution: 45.5, refund: 20}
policy:
  per_transaction_limit: "2.00 USDC"
  daily_spend_limit: "10 USDC"
  denied_service_ids: [svc_bad]
""",
        env={},
    )
    spec = task.spec
    assert task.market == "https://market.example"
    assert spec.input == {"data": "x", "n": 3, "ratio": Decimal("0.5"), "nested": [1, {"a": None}]}
    assert spec.capabilities == ("gpu", "fast") and spec.allow_handoff is True
    assert spec.strategy == {"name": "weighted", "params": {"price": Decimal("0.7"), "score": Decimal("0.3")}}
    assert (spec.rail, spec.chain, spec.fee_cap_wei) == ("onchain-escrow", "eip155:31337", 1_500_000_000)
    assert spec.acceptance.callable_path == "mypkg.checks:accept"
    assert spec.approval_threshold == Money.parse("2.00 USDC")
    assert spec.deadlines.execution == 45.5 and spec.deadlines.order == 10
    assert task.policy == {
        "per_transaction_limit": Decimal("2.00"),
        "daily_spend_limit": Decimal("10"),
        "currency": "USDC",
        "allowed_service_ids": [],
        "denied_service_ids": ["svc_bad"],
        "allowed_skill_keys": [],
        "denied_skill_keys": [],
    }


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        (MINIMAL + "budgett: 1\n", "budgett", 5),
        (MINIMAL.replace("  operation", "  colour: red\n  operation"), "task.colour", 3),
        (MINIMAL.replace('"2.50 USDC"', "2.5"), "budget", 4),
        (MINIMAL.replace('"2.50 USDC"', '"2.5 DOGE"'), "budget", 4),
        (MINIMAL.replace('"2.50 USDC"', '"-1 USDC"'), "budget", 4),
        (MINIMAL + "payment: {rail: paypal}\n", "payment.rail", 5),
        (MINIMAL + "payment:\n  chain: moon\n", "payment.chain", 6),
        (MINIMAL + "payment: {max_fee_per_gas_gwei: fast}\n", "payment.max_fee_per_gas_gwei", 5),
        (MINIMAL + "deadlines: {quote: -1}\n", "deadlines.quote", 5),
        (MINIMAL + "deadlines: {quote: .inf}\n", "deadlines.quote", 5),
        (MINIMAL + "acceptance:\n  schema: {type: 12}\n", "acceptance.schema", 6),
        (MINIMAL + "acceptance: {callable: not-a-path}\n", "acceptance.callable", 5),
        (MINIMAL + "task2: {}\n", "task2", 5),
        (MINIMAL.replace("compute.marketplace", "[a, b]"), "task.service_type", 2),
        (MINIMAL + "keys: {evm: '0x1111'}\n", "keys.evm", 5),
        (MINIMAL + "keys: {evm: '${K:-0x1111}'}\n", "keys.evm", 5),
        (MINIMAL + "market: ftp://x\n", "market", 5),
        (MINIMAL + "task: {}\n", "task", 5),
        (MINIMAL + "strategy: {params: {}}\n", "strategy.name", 5),
        (MINIMAL + "approval_threshold: '1 USDT'\n", "approval_threshold", 5),
        (MINIMAL + "policy: {daily_spend_limit: 5}\n", "policy.daily_spend_limit", 5),
        (MINIMAL + "policy: {allowed_service_ids: svc}\n", "policy.allowed_service_ids", 5),
        (MINIMAL + "x: &a {b: 1}\ny:\n  <<: *a\n", "x", 5),
        ("task: [1\n", "<document>", 2),
        ("", "<document>", 1),
        ("- a\n- b\n", "<document>", 1),
    ],
)
def test_errors_name_the_field_and_the_line(text: str, field: str, line: int) -> None:
    exc = error(text)
    assert exc.field == field
    assert exc.line == line
    assert field in str(exc) and f"line {line}" in str(exc)


def test_missing_required_fields() -> None:
    assert error('budget: "1 USDC"\n').field == "task"
    assert error("task: {service_type: s}\n").field == "budget"
    assert error('task: {operation: sha256}\nbudget: "1 USDC"\n').field == "task.service_type"


def test_interpolation() -> None:
    text = MINIMAL.replace("sha256", "${OP}") + "machine_id: ${MID:-m-default}\n"
    task = parse_task(text, env={"OP": "sha512"})
    assert task.spec.operation == "sha512" and task.machine_id == "m-default"
    task = parse_task(text, env={"OP": "sha512", "MID": "m-env"})
    assert task.machine_id == "m-env"
    exc = error(text)
    assert exc.field == "task.operation" and exc.line == 3 and "OP" in str(exc)
    assert error(MINIMAL + "machine_id: ${BROKEN\n").field == "machine_id"
    numbers = MINIMAL + "payment: {max_fee_per_gas_gwei: '${GAS}'}\n"
    assert parse_task(numbers, env={"GAS": "2"}).spec.fee_cap_wei == 2 * 10**9
    assert error(numbers, env={"GAS": "lots"}).field == "payment.max_fee_per_gas_gwei"


def test_keys_are_secrets_never_in_repr_or_errors() -> None:
    key = "0x" + "ab" * 32
    task = parse_task(MINIMAL + "keys: {evm: '${K}', api_key: '${A}'}\n", env={"K": key, "A": "api-secret"})
    assert task.evm_key is not None and task.evm_key.reveal() == key
    assert key not in repr(task) and "api-secret" not in repr(task)
    exc = error(MINIMAL + f"keys: {{evm: '{key}'}}\n")
    assert key not in str(exc)


def test_keys_evm_may_name_an_external_signer_instead_of_a_key() -> None:
    task = parse_task(MINIMAL + "keys: {evm: {signer: 'http://127.0.0.1:8550'}}\n")
    assert task.evm_signer == "http://127.0.0.1:8550" and task.evm_key is None
    assert task.evm_signer_address is None
    address = "0x" + "ab" * 20
    text = MINIMAL + "keys:\n  evm:\n    signer: ${SIGNER}\n    address: " + address + "\n"
    task = parse_task(text, env={"SIGNER": "https://signer.example:9000/rpc"})
    assert task.evm_signer == "https://signer.example:9000/rpc" and task.evm_signer_address == address
    # ${VAR} keeps working beside it.
    assert parse_task(MINIMAL + "keys: {evm: '${K}'}\n", env={"K": "0x11"}).evm_signer is None


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ("{evm: {address: '0x" + "ab" * 20 + "'}}", "keys.evm.signer"),
        ("{evm: {signer: 'ws://127.0.0.1:8550'}}", "keys.evm.signer"),
        ("{evm: {signer: 8550}}", "keys.evm.signer"),
        ("{evm: {signer: 'http://127.0.0.1:8550', address: '0x1234'}}", "keys.evm.address"),
        ("{evm: {signer: 'http://127.0.0.1:8550', key: '${K}'}}", "keys.evm.key"),
        ("{solana: {signer: 'http://127.0.0.1:8550'}}", "keys.solana"),
    ],
)
def test_a_bad_external_signer_names_its_field(keys: str, field: str) -> None:
    exc = error(MINIMAL + f"keys: {keys}\n")
    assert exc.field == field and exc.line == 5


def test_load_task_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="cannot read"):
        load_task(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00task")
    with pytest.raises(TaskFileError):
        load_task(bad)


def test_overrides() -> None:
    task = parse_task(MINIMAL, env={})
    assert task.with_market("http://127.0.0.1:1").market == "http://127.0.0.1:1"
    assert task.with_market("sandbox").market is None
    assert task.with_strategy("best-score").spec.strategy == "best-score"


_yamlish = st.text(alphabet=st.sampled_from(list("abc:{}[]-,'\"&*!|>#%@` \n\t$0.1_<")), max_size=120)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_yamlish)
def test_garbage_raises_only_task_file_errors(text: str) -> None:
    with contextlib.suppress(TaskFileError):
        parse_task(text, env={})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_files_raise_only_task_file_errors(data: st.DataObject) -> None:
    base = (EXAMPLES / "task.yaml").read_text()
    pos = data.draw(st.integers(0, len(base)))
    cut = data.draw(st.integers(0, 20))
    insert = data.draw(_yamlish)
    with contextlib.suppress(TaskFileError):
        parse_task(base[:pos] + insert + base[pos + cut :], env={})


def test_the_readmes_task_file_is_valid_yaml_and_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user copies it first: its `rpc: {evm: ${VAR}, …}` was not even YAML (the `{` of an unquoted
    # reference opens a mapping inside a flow mapping).
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Task file") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    text = block.group(1)
    yaml.compose(text, Loader=yaml.SafeLoader)  # valid YAML as written
    # What it leaves to the reader: a token contract, the callable's module and the profiles file.
    text = text.replace('"0x…"', '"0x' + "ab" * 20 + '"')
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "mypkg" / "checks.py").write_text("def accept(result, outcome):\n    return True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my-networks.yaml").write_text("dev: {chain: 'eip155:777'}\n", encoding="utf-8")
    env = {
        "PEAQOS_MACHINE_ID": "machine_1",
        "PEAQOS_API_KEY": "k",
        "BUYER_AGENT_EVM_KEY": "0x" + "11" * 32,
        "BUYER_AGENT_SOLANA_KEY": "k",
        "BUYER_AGENT_EVM_RPC": "http://127.0.0.1:8545",
        "BUYER_AGENT_SOLANA_RPC": "http://127.0.0.1:8899",
    }
    task = parse_task(text, source=str(tmp_path / "task.yaml"), env=env)
    assert task.evm_rpc == "http://127.0.0.1:8545" and task.solana_rpc == "http://127.0.0.1:8899"
    assert task.spec.acceptance.callable_path == "mypkg.checks:accept"


def test_an_unquoted_reference_inside_braces_says_how_to_fix_it() -> None:
    with pytest.raises(TaskFileError) as err:
        parse_task('rpc: {evm: ${X}}\ntask: {service_type: s}\nbudget: "1 USDC"\n', env={"X": "http://h"})
    assert err.value.line == 1 and 'quote a ${VAR} reference: "${VAR}"' in str(err.value)
