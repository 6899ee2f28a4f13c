"""The sandbox and its market package export exactly their public names, sorted."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["buyer_agent.sandbox", "buyer_agent.sandbox.market"])
def test_all_is_sorted_and_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, type(importlib)) and n.isidentifier()
    }
    assert public == set(exported)


def test_sandbox_info_repr_hides_keys() -> None:
    from buyer_agent._redact import Secret
    from buyer_agent.sandbox import SandboxInfo

    info = SandboxInfo(
        url="http://127.0.0.1:1",
        api_key=Secret("sbx_secret"),
        machine_id="m",
        evm_address="0x1",
        evm_private_key=Secret("0xkey"),
        solana_address=None,
        solana_secret_key=None,
        evm_rpc_url="u",
        evm_chain="eip155:31337",
        token_address="t",
        escrow_address="e",
        solana_rpc_url=None,
        solana_chain=None,
        mint=None,
    )
    assert "sbx_secret" not in repr(info) and "0xkey" not in repr(info)
    assert info.to_json()["api_key"] == "sbx_secret"
