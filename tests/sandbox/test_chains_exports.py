"""The chains and contracts packages export exactly their public names, sorted."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["buyer_agent.sandbox.chains", "buyer_agent.sandbox.contracts"])
def test_all_is_sorted_and_matches_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", "").startswith(name)
        and not isinstance(v, type(importlib))
    }
    assert public <= set(exported)
    for n in exported:
        assert hasattr(module, n), n
