"""The README's custom-strategy example runs as written, and it goes through the guard like any other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from strategies_quotes import T0, open_limits, pay_anything, quote

from buyer_agent.workflow._eligibility import choose
from strategies import BaseStrategy, Fallback, available_strategies, load_strategy

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    section = README.read_text().split("\n## Strategies\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the Strategies section has no python example"
    return match.group(1)


def test_the_readme_example_is_about_ten_lines_and_works() -> None:
    code = example()
    assert len(code.strip().splitlines()) <= 12
    namespace: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), namespace)
    fastest = namespace["Fastest"]()
    assert isinstance(fastest, BaseStrategy) and fastest.name == "fastest"
    qs = [
        quote("slow", "0.80", latency_ms=450),
        quote("quick", "1.20", latency_ms=40),
        quote("unknown", "0.50"),
        quote("too_dear", "9.00", latency_ms=5),
    ]
    decision, cands = choose(qs, fastest, open_limits("2.50"), now=T0, can_pay=pay_anything)
    assert decision.choice == qs[1] and decision.reason == "fastest: svc_quick"
    assert [r.quote.quote_id for r in decision.ranking] == ["quick", "slow", "unknown"]
    assert not cands[3].eligible
    # It composes like a built-in.
    assert (fastest | load_strategy("cheapest")).rank([qs[2]], None).choice == qs[2]  # type: ignore[arg-type]
    assert isinstance(fastest | load_strategy("cheapest"), Fallback)


def test_the_readme_table_names_every_built_in() -> None:
    section = README.read_text().split("\n## Strategies\n", 1)[1]
    for name in available_strategies():
        assert f"| `{name}` |" in section
