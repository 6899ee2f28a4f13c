"""Loading strategies by name, mapping, ``module:Class`` path and entry point; clear errors otherwise."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from strategies_quotes import T0, quote, usdc

from strategies import (
    BestScore,
    Cheapest,
    DecisionContext,
    Fallback,
    NativeFirst,
    StrategyError,
    Weighted,
    available_strategies,
    load_strategy,
)

BUILT_IN = ["best_score", "cheapest", "fallback", "native_first", "weighted"]
AVAILABLE = "available: best_score, cheapest, fallback, native_first, weighted"


def test_built_in_names_mappings_and_dashes() -> None:
    assert available_strategies() == BUILT_IN
    assert isinstance(load_strategy("cheapest"), Cheapest)
    assert isinstance(load_strategy("best-score"), BestScore)
    assert isinstance(load_strategy({"name": "native_first"}), NativeFirst)
    w = load_strategy({"name": "weighted", "params": {"price": "0.7", "score": 0.3}})
    assert isinstance(w, Weighted) and w.weights["score"] == Decimal("0.3")
    chain = load_strategy(
        {"name": "fallback", "params": {"chain": ["cheapest", {"name": "weighted", "params": {"score": 1}}]}}
    )
    assert isinstance(chain, Fallback) and [s.name for s in chain.chain] == ["cheapest", "weighted"]


def test_fallback_without_a_chain_is_cheapest_then_best_score() -> None:
    fallback = load_strategy("fallback")
    assert [s.name for s in fallback.chain] == ["cheapest", "best_score"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fastest", f"unknown strategy 'fastest'; {AVAILABLE}"),
        ("", AVAILABLE),
        ({"name": "nope", "params": {}}, AVAILABLE),
        ({"params": {}}, "available strategies: best_score, cheapest"),
        ({"name": "cheapest", "weights": {}}, "keys name and params"),
        (
            {"name": "weighted", "params": {"speed": 1}},
            "accepted params: latency, native, price, reputation, score",
        ),
        ({"name": "weighted", "params": {"price": "cheap"}}, "weighted.price must be a number"),
        ({"name": "weighted", "params": "price"}, "must be a mapping"),
        ({"name": "cheapest", "params": {"x": 1}}, "accepted params: none"),
        ({"name": "fallback", "params": {"steps": ["cheapest"]}}, "accepted params: chain"),
        ({"name": "fallback", "params": {"chain": "cheapest"}}, "must be a list"),
        ({"name": "fallback", "params": {"chain": []}}, "at least one strategy"),
        ({"name": "fallback", "params": {"chain": ["cheapest", "fastest"]}}, AVAILABLE),
        ("no_such_module_xyz:Thing", "cannot import strategy"),
        ("strategies:NoSuchThing", "cannot import strategy"),
        ("strategies._scoring:ONE", "not a strategy"),
    ],
)
def test_a_bad_name_or_bad_params_is_a_clear_error(spec: object, message: str) -> None:
    with pytest.raises(StrategyError, match=message.replace("(", r"\(")) as info:
        load_strategy(spec)
    assert isinstance(info.value, ValueError)


PLUGIN = '''
"""A strategy shipped by another package."""
from decimal import Decimal
from strategies import BaseStrategy, Decision, Ranked


class Fastest(BaseStrategy):
    name = "fastest"

    def __init__(self, unknown_latency_ms: int = 10_000):
        self.unknown = unknown_latency_ms

    def rank(self, quotes, ctx):
        order = sorted(quotes, key=lambda q: (q.latency_ms or self.unknown, q.quote_id))
        ranking = tuple(Ranked(q, Decimal(-(q.latency_ms or self.unknown)), ("latency",)) for q in order)
        return Decision(order[0] if order else None, ranking, "fastest")


def dearest(quotes, ctx):
    order = sorted(quotes, key=lambda q: -q.price.to_decimal())
    return Decision(order[0] if order else None, tuple(Ranked(q, Decimal(0), ()) for q in order), "dearest")
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (a real dist-info on sys.path) registering two strategies."""
    (tmp_path / "fastplug.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "fastplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fastplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[buyer_agent.strategies]\n"
        "fastest = fastplug:Fastest\ndearest = fastplug:dearest\nbroken = fastplug:Gone\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_module_class_paths_and_entry_points(plugin: Path) -> None:
    ctx = DecisionContext(budget=usdc("2.50"), now=T0)
    qs = [quote("a", "0.80", latency_ms=450), quote("b", "1.20", latency_ms=40)]
    assert available_strategies() == sorted([*BUILT_IN, "broken", "dearest", "fastest"])
    assert load_strategy("fastest").rank(qs, ctx).choice == qs[1]
    assert load_strategy("fastplug:Fastest").rank(qs, ctx).choice == qs[1]
    assert load_strategy({"name": "fastest", "params": {"unknown_latency_ms": 5}}).name == "fastest"
    dearest = load_strategy("dearest")
    assert dearest.name == "dearest" and dearest.rank(qs, ctx).choice == qs[1]
    chain = load_strategy({"name": "fallback", "params": {"chain": ["fastplug:Fastest", "cheapest"]}})
    assert isinstance(chain, Fallback) and [s.name for s in chain.chain] == ["fastest", "cheapest"]
    with pytest.raises(StrategyError, match="accepted params: unknown_latency_ms"):
        load_strategy({"name": "fastest", "params": {"latency": 1}})
    with pytest.raises(StrategyError, match="cannot load strategy 'broken'"):
        load_strategy("broken")


class _CountingMarket:
    """A loopback HTTP server that counts every request it gets (and answers 503 to all)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                seen.append(f"{self.command} {self.path}")
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


TASK = """\
task: {service_type: compute.marketplace, operation: sha256, input: {data: x}}
budget: "2.50 USDC"
keys: {api_key: "${PEAQOS_API_KEY:-}", evm: "${BUYER_AGENT_EVM_KEY:-}"}
"""


@pytest.mark.parametrize(
    ("strategy_yaml", "flag", "field", "message"),
    [
        (None, "bogus", "--strategy", f"unknown strategy 'bogus'; {AVAILABLE}"),
        ("strategy: bogus\n", None, "strategy (line 4)", f"unknown strategy 'bogus'; {AVAILABLE}"),
        (
            "strategy:\n  name: weighted\n  params: {speed: 1}\n",
            None,
            "strategy (line 5)",
            "bad params for strategy weighted",
        ),
        (
            "strategy: {name: fallback, params: {chain: [cheapest, nope]}}\n",
            None,
            "strategy (line 4)",
            f"unknown strategy 'nope'; {AVAILABLE}",
        ),
    ],
    ids=["cli-flag", "task-name", "task-params", "task-fallback-chain"],
)
def test_a_bad_strategy_exits_2_before_any_market_call(
    strategy_yaml: str | None,
    flag: str | None,
    field: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from buyer_agent.cli import main

    monkeypatch.setenv("PEAQOS_API_KEY", "pk_test_counting")
    monkeypatch.setenv("BUYER_AGENT_EVM_KEY", "0x" + "11" * 32)
    task = tmp_path / "task.yaml"
    task.write_text(TASK + (strategy_yaml or ""))
    market = _CountingMarket()
    try:
        state = tmp_path / "state"
        args = ["run", str(task), "--market", market.url, "--state-dir", str(state)]
        code = main([*args, *(["--strategy", flag] if flag else [])])
    finally:
        market.close()
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {field}: ") and message in err, err
    assert "Traceback" not in err
    # Refused while the task was read: the market never heard of it and no order was journaled.
    assert market.requests == []
    assert not (state / "buyer_agent.db").exists()
