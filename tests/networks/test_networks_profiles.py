"""Network profiles: the built-ins, aliases, user files and task files, validation, the token check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from buyer_agent import Money
from buyer_agent._errors import TaskFileError
from buyer_agent.cli import main
from buyer_agent.networks import (
    NetworkProfile,
    TokenInfo,
    agent_networks,
    builtin_networks,
    check_token,
    parse_profiles,
)
from buyer_agent.task import parse_task

MINIMAL = 'task: {service_type: compute.marketplace}\nbudget: "2.50 USDC"\n'
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
OTHER = "0x000000000000000000000000000000000000bad2"


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        ("peaq", "eip155:3338"),
        ("agung", "eip155:9990"),
        ("base", "eip155:8453"),
        ("base-sepolia", "eip155:84532"),
        ("ethereum", "eip155:1"),
        ("eth", "eip155:1"),
        ("polygon", "eip155:137"),
        ("arbitrum", "eip155:42161"),
        ("optimism", "eip155:10"),
        ("solana", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"),
        ("solana:mainnet", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"),
        ("solana-devnet", "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"),
        ("BASE", "eip155:8453"),
        ("eip155:8453", "eip155:8453"),
    ],
)
def test_builtin_names_and_aliases_resolve_to_caip2(name: str, chain: str) -> None:
    assert builtin_networks().resolve(name) == chain


def test_every_builtin_profile_is_complete() -> None:
    for profile in builtin_networks():
        assert profile.native is not None and profile.explorer and "{tx}" in profile.explorer
        assert (profile.confirmations or 0) >= 1 if profile.is_evm else profile.commitment
        for token in profile.tokens.values():
            assert token.decimals == 6  # every listed stablecoin is a 6-decimal one (issuer lists)


def test_the_profiles_match_the_official_sdk() -> None:
    from peaq_os_sdk import constants

    nets = builtin_networks()
    for name, chain_id in constants.SUPPORTED_CHAINS.items():
        assert nets.resolve(name) == f"eip155:{chain_id}"
    assert nets.resolve("solana") == constants.SOLANA_MAINNET_CHAIN_ID
    assert nets.resolve("solana-devnet") == constants.SOLANA_DEVNET_CHAIN_ID


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"x": {"aliases": []}}, "networks.x.chain"),
        ({"x": {"chain": "base"}}, "networks.x.chain"),
        ({"x": {"chain": "eip155:abc"}}, "networks.x.chain"),
        ({"x": {"chain": "eip155:1", "colour": 1}}, "networks.x.colour"),
        (
            {"x": {"chain": "eip155:1", "tokens": {"USDC": {"address": "0x12", "decimals": 6}}}},
            "networks.x.tokens.USDC.address",
        ),
        (
            {"x": {"chain": "eip155:1", "tokens": {"USDC": {"address": BASE_USDC, "decimals": -1}}}},
            "networks.x.tokens.USDC.decimals",
        ),
        (
            {"x": {"chain": "eip155:1", "tokens": {"USDC": {"address": BASE_USDC}}}},
            "networks.x.tokens.USDC.decimals",
        ),
        (
            {"x": {"chain": "solana:abc", "tokens": {"USDC": {"address": BASE_USDC, "decimals": 6}}}},
            "networks.x.tokens.USDC.address",
        ),
        ({"x": {"chain": "eip155:1", "commitment": "finalized"}}, "networks.x.commitment"),
        ({"x": {"chain": "eip155:1", "confirmations": 0}}, "networks.x.confirmations"),
        ({"x": {"chain": "eip155:1", "explorer": "https://x.io/tx/"}}, "networks.x.explorer"),
        ({"x": {"chain": "eip155:1", "native": {"symbol": "ETH"}}}, "networks.x.native"),
    ],
)
def test_profile_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(TaskFileError) as err:
        parse_profiles(body, source="test")
    assert err.value.field == field, str(err.value)


def test_a_user_file_extends_and_overrides_the_builtins(tmp_path: Path) -> None:
    path = tmp_path / "nets.yaml"
    path.write_text(
        "networks:\n"
        "  base:\n    chain: 'eip155:8453'\n    aliases: [base, mybase]\n    confirmations: 20\n"
        f"    tokens: {{USDC: {{address: '{BASE_USDC}', decimals: 6}}}}\n"
        "  devchain:\n    chain: 'eip155:777'\n    aliases: [dev]\n",
        encoding="utf-8",
    )
    nets = agent_networks(env={"BUYER_AGENT_NETWORKS": str(path)})
    base = nets.get("mybase")
    assert base is not None and base.confirmations == 20 and base.source == str(path)
    assert nets.resolve("dev") == "eip155:777"
    assert nets.resolve("peaq") == "eip155:3338"


def test_a_bad_user_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "nets.yaml"
    path.write_text("networks:\n  dev: {chain: 'eip155:777', confirmations: lots}\n", encoding="utf-8")
    with pytest.raises(TaskFileError) as err:
        agent_networks(env={"BUYER_AGENT_NETWORKS": str(path)})
    assert "networks.dev.confirmations" in str(err.value) or "dev.confirmations" in err.value.field


def test_task_chain_aliases_resolve_and_unknown_ones_name_the_field() -> None:
    assert parse_task(MINIMAL + "payment: {chain: base}\n", env={}).spec.chain == "eip155:8453"
    assert parse_task(MINIMAL + "chain: eth\n", env={}).spec.chain == "eip155:1"
    assert parse_task(MINIMAL + "chain: evm\n", env={}).spec.chain == "evm"
    with pytest.raises(TaskFileError) as err:
        parse_task(MINIMAL + "chain: moon\n", env={})
    assert err.value.field == "chain" and "moon" in str(err.value) and "base" in str(err.value)
    with pytest.raises(TaskFileError) as err:
        parse_task(MINIMAL + "chain: base\npayment: {chain: base}\n", env={})
    assert err.value.field == "chain"


def test_task_networks_and_token_allowlist(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "networks:\n  dev: {chain: 'eip155:777', aliases: [dev]}\n"
        + f"payment: {{chain: dev, tokens: {{usdc: '{OTHER}'}}}}\n"
    )
    task = parse_task(text, env={})
    assert task.spec.chain == "eip155:777" and task.spec.tokens == {"USDC": OTHER}
    assert task.networks[0].name == "dev"
    assert task.spec.to_json()["tokens"] == {"USDC": OTHER}
    # A chain the agent pays on needs the budget's token pinned (here by the profile itself).
    (tmp_path / "nets.yaml").write_text(
        f"dev2: {{chain: 'eip155:778', tokens: {{USDC: {{address: '{OTHER}', decimals: 6}}}}}}\n",
        encoding="utf-8",
    )
    file_task = parse_task(
        MINIMAL + "networks: nets.yaml\nchain: dev2\n", source=str(tmp_path / "t.yaml"), env={}
    )
    assert file_task.spec.chain == "eip155:778"
    with pytest.raises(TaskFileError) as err:
        parse_task(MINIMAL + "payment: {tokens: {USDC: '0x12'}}\n", env={})
    assert err.value.field == "payment.tokens.USDC"
    with pytest.raises(TaskFileError) as err:
        parse_task(MINIMAL + "networks: {dev: {chain: nope}}\n", env={})
    assert err.value.field == "networks.dev.chain"


def test_the_cli_exits_2_on_an_unknown_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(MINIMAL + "payment: {chain: moon}\n", encoding="utf-8")
    code = main(["run", str(path), "--state-dir", str(tmp_path / "st")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: payment.chain") and "moon" in err


def intent(token: str | None, decimals: int | None = 6, chain: str = "eip155:8453") -> dict[str, Any]:
    return {"rail": {"chain": chain, "token_address": token, "token_decimals": decimals}}


PRICE = Money.parse("0.80 USDC")


def test_check_token_against_the_profile() -> None:
    nets = builtin_networks()
    choice = {"chain": "eip155:8453"}
    assert check_token(intent(BASE_USDC.lower()), choice, PRICE, {}, nets) is None
    wrong = check_token(intent(OTHER), choice, PRICE, {}, nets)
    assert wrong is not None and wrong.code == "UNKNOWN_TOKEN"
    assert "eip155:8453" in wrong.message and OTHER in wrong.message and BASE_USDC in wrong.message
    decimals = check_token(intent(BASE_USDC, 18), choice, PRICE, {}, nets)
    assert decimals is not None and "decimals" in decimals.message
    # The task's allowlist admits another contract, still with the profile's decimals.
    assert check_token(intent(OTHER), choice, PRICE, {"USDC": OTHER}, nets) is None
    assert check_token(intent(OTHER, 18), choice, PRICE, {"USDC": OTHER}, nets) is not None


def test_check_token_on_a_profile_without_that_token_or_no_profile() -> None:
    nets = builtin_networks()
    peaq = {"chain": "eip155:3338"}
    missing = check_token(intent(OTHER, chain="eip155:3338"), peaq, PRICE, {}, nets)
    assert missing is not None and "payment.tokens" in missing.message
    assert check_token(intent(OTHER, chain="eip155:3338"), peaq, PRICE, {"USDC": OTHER}, nets) is None
    # A chain no profile knows is pinned by the allowlist alone, when the task gives one.
    dev = {"chain": "eip155:777"}
    assert check_token(intent(OTHER, chain="eip155:777"), dev, PRICE, {}, nets) is None
    assert check_token(intent(OTHER, chain="eip155:777"), dev, PRICE, {"USDC": BASE_USDC}, nets) is not None


def test_tx_links() -> None:
    base = builtin_networks().get("base")
    assert base is not None and base.tx_link("0xabc") == "https://basescan.org/tx/0xabc"
    profile = NetworkProfile(name="x", chain="eip155:1", tokens={"USDC": TokenInfo("USDC", OTHER, 6)})
    assert profile.tx_link("0x1") is None and profile.token("usdc") is not None


def test_the_networks_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import json

    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    assert "base-sepolia" in out and BASE_USDC in out and "(none: name it in payment.tokens)" in out
    path = tmp_path / "nets.yaml"
    path.write_text("dev: {chain: 'eip155:777', aliases: [dev], confirmations: 3}\n", encoding="utf-8")
    monkeypatch.setenv("BUYER_AGENT_NETWORKS", str(path))
    assert main(["networks", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dev = next(p for p in doc if p["name"] == "dev")
    assert dev["chain"] == "eip155:777" and dev["confirmations"] == 3 and dev["source"] == str(path)
    assert {p["chain"] for p in doc} >= {
        "eip155:3338",
        "eip155:8453",
        "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
    }
    path.write_text("dev: {chain: 'eip155:777', confirmations: -1}\n", encoding="utf-8")
    assert main(["networks"]) == 2
    assert "dev.confirmations" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["networks", "--help"])
    assert exc.value.code == 0


def test_the_run_summary_links_the_payment_to_its_explorer() -> None:
    from buyer_agent.commands.run import human
    from buyer_agent.workflow import OrderState, OrderSummary

    summary = OrderSummary(
        order_id="ord_1",
        state=OrderState.CONFIRMED,
        market_order_id=None,
        quote=None,
        candidates=(),
        payment={
            "amount": "0.80",
            "currency": "USDC",
            "rail": "wallet",
            "chain": "eip155:8453",
            "tx": "0xabc",
        },
        outcome=None,
        error=None,
        journal="state/journal.db",
        updated_at="2026-12-02T00:00:00Z",
    )
    assert "explorer https://basescan.org/tx/0xabc" in human(summary, builtin_networks())
    assert "explorer" not in human(summary)


X402_ASSET = "0x000000000000000000000000000000000000e3d9"


def test_x402_tokens_pin_the_asset_x402_authorizations_are_signed_for(tmp_path: Path) -> None:
    from buyer_agent.networks import dump_profiles, load_networks_file

    (dev,) = parse_profiles(
        {
            "dev": {
                "chain": "eip155:777",
                "tokens": {"USDC": {"address": BASE_USDC, "decimals": 6}},
                "x402_tokens": {"usdc": {"address": X402_ASSET, "decimals": 6}},
            }
        },
        source="test",
    )
    assert dev.x402_token("USDC") == TokenInfo("USDC", X402_ASSET, 6)
    assert dev.token("USDC") is not None and dev.token("USDC").address == BASE_USDC  # type: ignore[union-attr]
    # Without an x402 entry (USDC on Base: one contract for both), the tokens entry is the asset.
    assert builtin_networks().get("base").x402_token("USDC").address == BASE_USDC  # type: ignore[union-attr]
    # Written and read back, and shown by the networks command's JSON.
    path = tmp_path / "n.yaml"
    import yaml

    path.write_text(yaml.safe_dump(dump_profiles([dev])))
    (again,) = load_networks_file(path)
    assert (
        again.x402_tokens == dev.x402_tokens and dev.to_json()["x402_tokens"]["USDC"]["address"] == X402_ASSET
    )
    nets = agent_networks().extend([dev])
    x402 = {"chain": "eip155:777", "rail": "x402"}
    assert check_token(intent(X402_ASSET, chain="eip155:777"), x402, PRICE, {}, nets) is None
    refused = check_token(intent(BASE_USDC, chain="eip155:777"), x402, PRICE, {}, nets)
    assert refused is not None and refused.code == "UNKNOWN_TOKEN" and X402_ASSET in refused.message
    # A direct transfer on the same chain is still pinned to the tokens entry.
    assert check_token(intent(X402_ASSET, chain="eip155:777"), {"chain": "eip155:777"}, PRICE, {}, nets)


def test_x402_tokens_are_for_evm_chains_only() -> None:
    with pytest.raises(TaskFileError) as refused:
        parse_profiles(
            {"sol": {"chain": "solana:abc", "x402_tokens": {"USDC": {"mint": "1" * 32, "decimals": 6}}}},
            source="test",
        )
    assert refused.value.field == "networks.sol.x402_tokens"
