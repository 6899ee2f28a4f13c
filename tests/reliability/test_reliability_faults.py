"""Market faults: with 20% of requests failing (5xx, 429, timeouts, drops) every order completes once.

Orders run through the real CLI (forked by ``crash_worker.py``), each with its own fresh wallet, so
"exactly one payment" is the number of token Transfer logs from that wallet read from anvil. The
sandbox deduplicates nothing (``--idempotency off``, as peaq's docs promise no idempotency key): a
write repeated blindly after its answer was dropped would show as a second market order or a second
run of the service, which the market's own lists (its orders, its audit events) are read for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_support import (
    assert_no_secrets,
    final_states,
    fork_cli,
    make_orders,
    market_problems,
    payments_by_sender,
    served_sandbox,
    verify_journals,
)

pytestmark = pytest.mark.chains

# 20% of market requests fail: 5% each of 5xx, 429 (Retry-After 1 s), a timeout (held 1 s, then
# closed unanswered and unprocessed) and commit-then-drop (processed, then closed unanswered).
FAULTS = "5xx=0.05,429=0.05,timeout=0.05,drop=0.05,retry-after=1,timeout-s=1"
FAULT_ORDERS = 12


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served sandbox whose market injects 20% faults (seeded)."""
    args = ("--faults", FAULTS, "--fault-seed", "9", "--idempotency", "off")
    with served_sandbox(tmp_path_factory.mktemp("faulted"), *args) as (info, _):
        yield info


def test_every_order_completes_once_under_20_percent_market_faults(
    faulted: dict[str, Any], tmp_path: Path
) -> None:
    orders, wallets = make_orders(faulted, tmp_path, FAULT_ORDERS)
    reports = fork_cli(faulted, orders, parallel=4, hang_s=150.0)
    paid = payments_by_sender(faulted)
    for report, wallet in zip(reports, wallets, strict=True):
        final = report["final"]
        assert "Traceback" not in final["stderr"]
        assert (final["code"], final_states(report)) == (0, ["confirmed"]), final["stderr"][-1500:]
        assert paid.get(wallet, 0) == 1, f"{report['state_dir']}: {paid.get(wallet, 0)} payments"
        verify_journals(report)
    # The faults really happened: the sandbox counts every kind it injected. Then they stop, so the
    # test's own reads of the market below are not dropped (its counts are never reset).
    platform = {"x-api-key": faulted["api_key"]}
    counts = httpx.get(faulted["url"] + "/sandbox/faults", headers=platform)
    injected = counts.json()["injected"]
    assert all(injected[kind] > 0 for kind in ("5xx", "429", "timeout", "drop_after_commit")), injected
    assert httpx.post(faulted["url"] + "/sandbox/faults", headers=platform, json={}).status_code == 200
    # 0 duplicate market orders: the market's own list holds exactly the journaled order per agent,
    # and the market ran each service once.
    assert market_problems(faulted, reports, wallets) == []
    assert_no_secrets(faulted, reports, [o["key"] for o in orders])
