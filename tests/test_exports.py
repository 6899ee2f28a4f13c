"""The public surface of each package is explicit: ``__all__`` is sorted and complete."""

import importlib

import pytest

PACKAGES = [
    "buyer_agent",
    "buyer_agent.dashboard",
    "buyer_agent.fleet",
    "buyer_agent.history",
    "buyer_agent.journal",
    "buyer_agent.market",
    "buyer_agent.networks",
    "buyer_agent.rails",
    "buyer_agent.sandbox",
    "buyer_agent.signers",
    "buyer_agent.telemetry",
    "buyer_agent.tools",
    "buyer_agent.workflow",
    "strategies",
]


@pytest.mark.parametrize("name", PACKAGES)
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
    assert public <= set(exported) | {"__version__"}
    for n in exported:
        assert hasattr(module, n), n
