"""``--log-format json``: one redacted JSON object per stderr line; secrets in neither format."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from cli_support import cli, market_env

from buyer_agent._logformat import ORDER_ID, STEP, JsonFormatter, JsonLines, configure_logging
from buyer_agent._redact import Secret
from buyer_agent._waits import WAIT_LOGGER, report_wait, show_waits
from buyer_agent.telemetry import LogContextObserver

KEYS = {"time", "level", "logger", "order_id", "step", "message", "fields"}


def _objects(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    docs = [json.loads(line) for line in lines]  # every line is JSON, or this raises
    for doc in docs:
        assert isinstance(doc, dict) and set(doc) == KEYS, doc
    return docs


def test_a_record_is_one_object_with_its_order_step_and_redacted_fields() -> None:
    record = logging.LogRecord(
        "buyer_agent.rails", logging.INFO, __file__, 1, "sent %s", (Secret("0xkey"),), None
    )
    record.order_id = "ord_1"
    record.step = "pay"
    record.private_key = "0xdeadbeef_private"
    record.pairing = {"token": "tok_abc_secret", "pairing_token": "tok_abc_secret", "id": "pair_1"}
    record.amount = 2_500_000
    doc = json.loads(JsonFormatter().format(record))
    assert set(doc) == KEYS
    assert (doc["level"], doc["logger"], doc["order_id"], doc["step"]) == (
        "info",
        "buyer_agent.rails",
        "ord_1",
        "pay",
    )
    assert doc["message"] == "sent [secure]"
    assert doc["fields"]["private_key"] == "[secure]"
    assert (
        doc["fields"]["pairing"]["pairing_token"] == "[secure]" and doc["fields"]["pairing"]["id"] == "pair_1"
    )
    assert doc["fields"]["amount"] == 2_500_000
    assert doc["time"].endswith("Z")
    assert "0xdeadbeef_private" not in json.dumps(doc) and "0xkey" not in json.dumps(doc)


def test_the_log_observer_names_the_order_and_step_of_lines_written_inside_a_step() -> None:
    observer = LogContextObserver()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "slow", (), None)
    observer.step_started("ord_9", "execute", "paid")
    inside = json.loads(JsonFormatter().format(record))
    observer.step_finished("ord_9", "execute", "executed", error=None)
    outside = json.loads(JsonFormatter().format(record))
    assert (inside["order_id"], inside["step"]) == ("ord_9", "execute")
    assert (outside["order_id"], outside["step"]) == (None, None)
    assert ORDER_ID.get() is None and STEP.get() is None


def test_a_part_of_a_step_names_itself_and_then_the_step_it_is_part_of_again() -> None:
    observer = LogContextObserver()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "line", (), None)

    def names() -> tuple[str | None, str | None]:
        doc = json.loads(JsonFormatter().format(record))
        return doc["order_id"], doc["step"]

    observer.step_started("ord_7", "settle", "paying")
    observer.step_started("ord_7", "broadcast", "paying")
    assert names() == ("ord_7", "broadcast")
    observer.step_finished("ord_7", "broadcast", "paying", error=None)
    assert names() == ("ord_7", "settle")
    observer.step_finished("ord_7", "settle", "paid", error=None)
    assert names() == (None, None)
    observer.step_started("ord_7", "execute", "paid")
    observer.order_finished("ord_7", "paid")  # a step the loop never finished
    assert names() == (None, None)


def test_wait_lines_are_json_objects_in_json_mode() -> None:
    out = io.StringIO()
    handler = show_waits(out, fmt="json")
    try:
        report_wait(
            "the market's answer to POST /market/orders", attempt=2, of=5, next_in_s=1.5, because="HTTP 503"
        )
    finally:
        logging.getLogger(WAIT_LOGGER).removeHandler(handler)
    (doc,) = _objects(out.getvalue())
    assert doc["logger"] == WAIT_LOGGER and doc["level"] == "info"
    expected = "waiting for the market's answer to POST /market/orders (attempt 2 of 5): HTTP 503"
    assert doc["message"] == expected + "; next try in 1.5 s"


def test_plain_lines_printed_on_stderr_become_objects_and_error_lines_are_errors() -> None:
    raw = io.StringIO()
    lines = JsonLines(raw)
    lines.write("error: order ord_1 ended failed\nplain note\n")
    lines.write('{"already": "json"}\npartial')
    lines.close_pending()
    docs = [json.loads(line) for line in raw.getvalue().splitlines()]
    assert docs[0]["level"] == "error" and docs[0]["message"] == "order ord_1 ended failed"
    assert docs[1]["level"] == "info" and docs[1]["message"] == "plain note"
    assert docs[2] == {"already": "json"}
    assert docs[3]["message"] == "partial"


def test_configure_logging_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")


@pytest.mark.chains
def test_a_real_run_writes_only_json_lines_and_no_secret_in_either_format(
    external: dict[str, Any], tmp_path: Any
) -> None:
    env = market_env(external)
    secrets = [
        external["api_key"],
        external["wallets"]["evm"]["private_key"],
        external["wallets"]["evm"]["private_key"].removeprefix("0x"),
        external["wallets"]["solana"]["secret_key"],
    ]
    runs = {}
    for fmt in ("text", "json"):
        proc = cli(
            "-v", "--log-format", fmt, "run", "examples/task.yaml", "--json", "--market", external["url"],
            "--state-dir", str(tmp_path / fmt), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs[fmt] = proc.stderr
    docs = _objects(runs["json"])
    # Debug lines of the market client, progress lines naming the order, all as objects.
    progress = [d for d in docs if d["logger"] == "buyer_agent.progress"]
    assert progress and all(d["order_id"] for d in progress)
    assert progress[-1]["fields"]["state"] == "confirmed"
    assert any(d["level"] == "debug" and d["logger"].startswith("buyer_agent.market") for d in docs)
    assert "→ confirmed" in runs["text"]
    # A refused key: the error line is an object at level error, and the key is not in it.
    bad = cli(
        "--log-format", "json", "run", "examples/task.yaml", "--market", external["url"],
        "--state-dir", str(tmp_path / "bad"), env={**env, "PEAQOS_API_KEY": "sk_wrong_key_never_logged"},
    )  # fmt: skip
    assert bad.returncode != 0
    errors = [d for d in _objects(bad.stderr) if d["level"] == "error"]
    assert errors and errors[-1]["message"] and not errors[-1]["message"].startswith("error:")
    for text in (runs["text"], runs["json"], bad.stderr):
        for secret in [*secrets, "sk_wrong_key_never_logged"]:
            assert secret not in text


@pytest.mark.chains
def test_a_real_run_s_lines_written_inside_a_step_name_its_order_and_step(
    external: dict[str, Any], tmp_path: Any
) -> None:
    proc = cli(
        "-v", "--log-format", "json", "run", "examples/task.yaml", "--json", "--market", external["url"],
        "--state-dir", str(tmp_path), env=market_env(external),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    order_id = json.loads(proc.stdout)["order_id"]
    # The market client's own lines say nothing of orders: the step that was running names them.
    calls = {
        d["message"].split(" -> ")[0]: d
        for d in _objects(proc.stderr)
        if d["logger"] == "buyer_agent.market" and " -> " in d["message"]
    }
    steps = {what.split("/")[-1]: (d["order_id"], d["step"]) for what, d in calls.items()}
    assert steps["search"] == (order_id, "search")
    assert steps["execute"] == (order_id, "execute")
    # A part of a step names itself while it runs (the proof inside settling the payment).
    assert steps["payment-proof"] == (order_id, "prove")
    assert steps["confirm"] == (order_id, "confirm")
