"""The sandbox over HTTP: bad input, routing, idempotency, fault injection, persistence and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_kit import Market, send_spl, started_sandbox

from buyer_agent._errors import OrchestrationError
from buyer_agent.market import AsyncMarketClient, RetryPolicy
from buyer_agent.sandbox import Sandbox
from buyer_agent.sandbox.chains import anvil_available
from buyer_agent.sandbox.market import FaultConfig, parse_fault_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox(solana=False)


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


@pytest.fixture()
def no_faults(market: Market) -> Iterator[None]:
    yield
    market.http.post("/sandbox/faults", json={})


@pytest.fixture()
def keys_honoured(box: Sandbox) -> Iterator[None]:
    """The market honours ``Idempotency-Key`` for this test (``--idempotency on``), then not again."""
    box.market.idempotency = True
    try:
        yield
    finally:
        box.market.idempotency = False


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["error"]
    assert body["code"] == code
    return body


def test_malformed_requests_get_the_error_envelope(market: Market) -> None:
    path = f"/machines/{market.machine_id}/agent-pairings/challenges"
    body = _error(
        market.http.post(path, content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "VALIDATION_ERROR",
    )
    assert body["details"]["field"] == "body"
    _error(market.http.post(path, json=[1, 2]), 400, "VALIDATION_ERROR")
    missing = _error(
        market.http.post(path, json={"agentProvider": "x", "agentRole": "y"}), 400, "VALIDATION_ERROR"
    )
    assert missing["details"]["field"] == "agentAddress"
    typed = _error(
        market.http.post(path, json={"agentAddress": 12, "agentProvider": "x", "agentRole": "y"}),
        400,
        "VALIDATION_ERROR",
    )
    assert typed["details"]["field"] == "agentAddress"
    _error(market.http.get("/no/such/route"), 404, "NOT_FOUND")
    _error(market.http.put("/market/search", json={}), 405, "METHOD_NOT_ALLOWED")
    _error(market.http.get("/market/orders/ord_missing"), 404, "NOT_FOUND")
    _error(
        market.http.get("/market/orders", params={"machineId": market.machine_id, "limit": "0"}),
        400,
        "VALIDATION_ERROR",
    )


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "machineId",
        "agentPairingId",
        "serviceId",
        "quoteId",
        "input",
        "budget",
        "rail",
        "amount",
        "verificationMode",
        "chain",
        "token",
        "payerAddress",
        "payeeAddress",
        "transactionHash",
        "reason",
        "serviceType",
        "region",
        "maxResults",
        "requiredCapabilities",
        "agentAddress",
        "agentProof",
        "delegationPolicy",
        "escrowAddress",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(_keys, _json, max_size=6),
    step=st.sampled_from(
        ["search", "orders", "payment-intent", "payment-proof", "escrow-lock", "dispute", "pair", "challenge"]
    ),
)
def test_random_bodies_never_cause_a_500(market: Market, body: dict[str, Any], step: str) -> None:
    pairing = _shared_pairing(market)
    paths = {
        "search": "/market/search",
        "orders": "/market/orders",
        "payment-intent": f"/market/orders/{pairing[1]}/payment-intent",
        "payment-proof": f"/market/orders/{pairing[1]}/payment-proof",
        "escrow-lock": f"/market/orders/{pairing[1]}/payment/escrow-lock",
        "dispute": f"/market/orders/{pairing[2]}/dispute",
        "pair": f"/machines/{market.machine_id}/agent-pairings",
        "challenge": f"/machines/{market.machine_id}/agent-pairings/challenges",
    }
    r = market.agent(pairing[0], "POST", paths[step], body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()["error"]) >= {"code", "message"}


_PAIRING: list[Any] = []


def _shared_pairing(market: Market) -> tuple[Any, str, str]:
    if not _PAIRING:
        pairing = market.pair(policy={"dailySpendLimit": 1000, "perTransactionLimit": 10})
        first = market.order(pairing, "svc_hash_budget")
        second = market.order(pairing, "svc_hash_escrow")
        _PAIRING.extend([pairing, first["id"], second["id"]])
    return _PAIRING[0], _PAIRING[1], _PAIRING[2]


def test_idempotency_key_returns_the_first_answer(market: Market, keys_honoured: None) -> None:
    pairing = market.pair()
    quote = market.quote(pairing, "svc_hash_budget")
    body = {
        "machineId": market.machine_id,
        "agentPairingId": pairing.id,
        "serviceId": "svc_hash_budget",
        "quoteId": quote["id"],
        "input": {"data": "idem"},
    }
    first = market.agent(pairing, "POST", "/market/orders", body, headers={"Idempotency-Key": "k-1"})
    again = market.agent(pairing, "POST", "/market/orders", body, headers={"Idempotency-Key": "k-1"})
    other = market.agent(pairing, "POST", "/market/orders", body, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json()["item"]["id"] == again.json()["item"]["id"] != other.json()["item"]["id"]


def test_faults_5xx_429_timeout_and_drop_after_commit(
    market: Market, no_faults: None, keys_honoured: None
) -> None:
    pairing = market.pair()
    search = {"machineId": market.machine_id}
    assert market.http.post("/sandbox/faults", json={"rate5xx": 1}).status_code == 200
    assert market.http.get("/sandbox/faults").json()["item"]["rate5xx"] == 1
    _error(market.agent(pairing, "POST", "/market/search", search), 503, "SERVICE_UNAVAILABLE")

    market.http.post("/sandbox/faults", json={"rate429": 1, "retryAfterS": 3})
    r = market.agent(pairing, "POST", "/market/search", search)
    _error(r, 429, "RATE_LIMITED")
    assert r.headers["Retry-After"] == "3"

    market.http.post("/sandbox/faults", json={"rateTimeout": 1, "timeoutS": 0.2})
    with pytest.raises(httpx.TransportError):
        market.agent(pairing, "POST", "/market/search", search)

    # Commit, then drop: the retry with the same Idempotency-Key finds the committed order.
    market.http.post("/sandbox/faults", json={})
    quote = market.quote(pairing, "svc_hash_budget")
    listing = {"machineId": market.machine_id, "limit": "500"}
    before = len(market.http.get("/market/orders", params=listing).json()["items"])
    market.http.post("/sandbox/faults", json={"rateDropAfterCommit": 1})
    body = {
        "machineId": market.machine_id,
        "agentPairingId": pairing.id,
        "serviceId": "svc_hash_budget",
        "quoteId": quote["id"],
        "input": {"data": "drop"},
    }
    with pytest.raises(httpx.TransportError):
        market.agent(pairing, "POST", "/market/orders", body, headers={"Idempotency-Key": "drop-1"})
    market.http.post("/sandbox/faults", json={})
    retry = market.agent(pairing, "POST", "/market/orders", body, headers={"Idempotency-Key": "drop-1"})
    assert retry.status_code == 200
    orders = market.http.get("/market/orders", params=listing).json()["items"]
    assert len(orders) == before + 1 and orders[-1]["id"] == retry.json()["item"]["id"]


def test_latency_set_at_run_time_delays_answers_past_a_shorter_client_timeout(
    market: Market, no_faults: None
) -> None:
    machine = f"/machines/{market.machine_id}"
    short = httpx.Client(
        base_url=market.http.base_url, headers={"x-api-key": market.info["api_key"]}, timeout=0.3
    )

    async def read_machine() -> Any:
        async with AsyncMarketClient(
            market.info["url"], api_key=market.info["api_key"], retry=RetryPolicy.none()
        ) as client:
            try:
                return await client.get_machine(market.machine_id, options={"timeout": 0.3})
            except Exception as exc:  # inspected below
                return exc

    with short:
        assert short.get(machine).status_code == 200  # answered well within 0.3 s without the fault
        before = market.http.get("/sandbox/faults").json()["injected"]
        set_ = market.http.post("/sandbox/faults", json={"latencyMs": 1500})
        assert set_.status_code == 200 and set_.json()["item"]["latencyMs"] == 1500
        # The same read now outlives a client that waits 0.3 s: plain httpx, and our client.
        with pytest.raises(httpx.ReadTimeout):
            short.get(machine)
        failed = asyncio.run(read_machine())
        assert isinstance(failed, OrchestrationError) and failed.retryable, failed
        # /sandbox/* is never delayed, and it counted the delayed requests.
        after = short.get("/sandbox/faults").json()["injected"]
        assert after["latency"] - before["latency"] == 2
        assert after["5xx"] == before["5xx"] and after["timeout"] == before["timeout"]
        # A client patient enough gets the answer; with the latency off, the short one does again.
        assert market.http.get(machine).status_code == 200
        market.http.post("/sandbox/faults", json={})
        assert short.get(machine).status_code == 200
        ok = asyncio.run(read_machine())
        assert not isinstance(ok, Exception) and ok.item.id == market.machine_id


def test_fault_counters_count_what_was_injected(market: Market, no_faults: None) -> None:
    pairing = market.pair()
    search = {"machineId": market.machine_id}
    before = market.http.get("/sandbox/faults").json()["injected"]
    market.http.post("/sandbox/faults", json={"rate5xx": 1})
    for _ in range(3):
        _error(market.agent(pairing, "POST", "/market/search", search), 503, "SERVICE_UNAVAILABLE")
    market.http.post("/sandbox/faults", json={"rate429": 1})
    _error(market.agent(pairing, "POST", "/market/search", search), 429, "RATE_LIMITED")
    market.http.post("/sandbox/faults", json={})
    assert market.agent(pairing, "POST", "/market/search", search).status_code == 200
    after = market.http.get("/sandbox/faults").json()["injected"]
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {"requests": 5, "latency": 0, "5xx": 3, "429": 1, "timeout": 0, "drop_after_commit": 0}


def test_fault_spec_parsing() -> None:
    config = parse_fault_spec("5xx=0.1,429=0.2,timeout=0.05,drop=0.3,latency=15,retry-after=2", seed=7)
    assert config == FaultConfig(0.1, 0.2, 0.05, 0.3, 15, 7, 2)
    with pytest.raises(ValueError):
        parse_fault_spec("explode=1")
    with pytest.raises(ValueError):
        parse_fault_spec("5xx=2")


def test_state_survives_a_restart_on_the_same_state_dir(tmp_path: Path) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed")
    with Sandbox(state_dir=tmp_path, solana=False) as info:
        box_market = _market_for(info)
        pairing = box_market.pair()
        order = box_market.order(pairing, "svc_hash_budget")
        box_market.close()
    with Sandbox(state_dir=tmp_path, solana=False) as again:
        assert again.api_key.reveal() == info.api_key.reveal()
        m = _market_for(again)
        r = m.agent(pairing, "GET", f"/market/orders/{order['id']}")
        assert r.status_code == 200 and r.json()["item"]["status"] == "created"
        assert m.intent(pairing, order["id"])["status"] == "intent_created"
        m.close()


def _market_for(info: Any) -> Market:
    class _Box:
        pass

    holder: Any = _Box()
    holder.info = info
    return Market(holder)


def test_cli_prints_one_json_line_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed")
    log = (tmp_path / "stderr.log").open("wb")
    with (
        log,
        subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", "sandbox", "--port", "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "DO_NOT_TRACK": "1"},
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert set(info) == {"url", "api_key", "machine_id", "wallets", "evm", "solana"}
            assert set(info["wallets"]["evm"]) == {"address", "private_key"}
            assert set(info["wallets"]["solana"]) == {"address", "secret_key"}
            # Issue 14 extends the line with the x402 token; nothing is renamed.
            assert set(info["evm"]) == {
                "rpc_url",
                "chain",
                "token_address",
                "escrow_address",
                "x402_token_address",
            }
            assert set(info["solana"]) == {"rpc_url", "chain", "mint"}
            assert info["evm"]["chain"] == "eip155:31337" and info["solana"]["chain"].startswith("solana:")
            assert not info["url"].endswith("/api/v1")
            assert httpx.get(info["url"] + "/api/v1/health").status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, (tmp_path / "stderr.log").read_text()
            assert proc.stdout.read() == b""  # exactly one line on stdout
        finally:
            if proc.poll() is None:
                proc.kill()
    with pytest.raises(httpx.TransportError):
        httpx.post(
            info["evm"]["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=2
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state or "\nState:\tX" in state  # exited, waiting to be reaped


def _refused(url: str, payload: dict[str, Any]) -> bool:
    try:
        httpx.post(url, json=payload, timeout=2)
    except httpx.TransportError:
        return True
    return False


def _serve(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    with log.open("ab") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "buyer_agent", "sandbox", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "DO_NOT_TRACK": "1"},
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, log.read_text()
    return proc, json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_port_and_state_dir_and_a_signal_stops_the_market_and_both_chains(
    tmp_path: Path, sig: signal.Signals
) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed")
    port, state, log = _free_port(), tmp_path / "state", tmp_path / "stderr.log"
    proc, info = _serve(["--port", str(port), "--state-dir", str(state)], log)
    try:
        assert info["url"] == f"http://127.0.0.1:{port}"  # --port reached the market
        assert httpx.get(info["url"] + "/api/v1/health").status_code == 200
        api = httpx.Client(base_url=info["url"] + "/api/v1", headers={"x-api-key": info["api_key"]})
        with api:
            challenge = api.post(
                f"/machines/{info['machine_id']}/agent-pairings/challenges",
                json={
                    "agentAddress": info["wallets"]["evm"]["address"],
                    "agentProvider": "t",
                    "agentRole": "b",
                },
            )
            assert challenge.status_code == 200
        solana_rpc = {"jsonrpc": "2.0", "id": 1, "method": "getHealth"}
        assert httpx.post(info["solana"]["rpc_url"], json=solana_rpc, timeout=5).json()["result"] == "ok"
        chains = _children(proc.pid)
        assert chains, "anvil runs as a child process of the sandbox"
        # A Solana transfer just before the signal: a clean stop saves the ledger with it.
        sol = info["wallets"]["solana"]
        signature = send_spl(
            info["solana"]["rpc_url"], sol["secret_key"], info["solana"]["mint"], sol["address"], 1
        )

        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0, log.read_text()
        assert proc.stdout is not None and proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # The market, the EVM chain (its process too) and the Solana RPC are all gone.
    assert _refused(info["url"] + "/api/v1/health", {})
    assert _refused(info["evm"]["rpc_url"], {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert _refused(info["solana"]["rpc_url"], solana_rpc)
    assert all(_gone(pid) for pid in chains), chains
    # --state-dir reached it: market state, the anvil chain and the Solana ledger were kept there,
    # and a restart on it serves the same API key, contracts and mint.
    assert (state / "market" / "market-state.json").is_file()
    assert (state / "anvil").is_dir() and (state / "solana" / "solana-state.json").is_file()
    again, info2 = _serve(["--state-dir", str(state)], log)
    try:
        assert (info2["api_key"], info2["evm"]["token_address"], info2["solana"]["mint"]) == (
            info["api_key"],
            info["evm"]["token_address"],
            info["solana"]["mint"],
        )
        lookup = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "getTransaction",
            "params": [signature, {"encoding": "json"}],
        }
        assert httpx.post(info2["solana"]["rpc_url"], json=lookup, timeout=5).json()["result"] is not None
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=20) == 0, log.read_text()
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()
        if again.stdout is not None:
            again.stdout.close()


def test_cli_help_explains_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "sandbox", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--port", "--state-dir", "--faults", "--fault-seed", "--idempotency"):
        assert flag in out


def test_cli_idempotency_on_honours_the_key_and_the_default_does_not(tmp_path: Path) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed")
    for flag, same in ((["--idempotency", "on"], True), ([], False)):
        proc, info = _serve(["--port", "0", *flag], tmp_path / "stderr.log")
        try:
            box = httpx.Client(base_url=info["url"], headers={"x-api-key": info["api_key"]}, timeout=30)
            with box:
                shown = box.get("/sandbox/info").json()["item"]["idempotency"]
                assert shown == ("on" if same else "off")
                pairing = _pair_over_http(box, info)
                quote = _quote_over_http(box, info, pairing)
                body = {
                    "machineId": info["machine_id"],
                    "agentPairingId": pairing["id"],
                    "serviceId": "svc_hash_budget",
                    "quoteId": quote,
                    "input": {"data": "key"},
                }
                headers = {"x-agent-pairing-token": pairing["pairingToken"], "Idempotency-Key": "k-cli"}
                ids = [
                    box.post("/api/v1/market/orders", json=body, headers=headers).json()["item"]["id"]
                    for _ in range(2)
                ]
            assert (ids[0] == ids[1]) is same
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, (tmp_path / "stderr.log").read_text()
            if proc.stdout is not None:
                proc.stdout.close()


def test_cli_refuses_an_idempotency_mode_it_does_not_know() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "sandbox", "--idempotency", "maybe"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--idempotency" in done.stderr and "Traceback" not in done.stderr


def _pair_over_http(box: httpx.Client, info: dict[str, Any]) -> dict[str, Any]:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    account = Account.create()
    base = f"/api/v1/machines/{info['machine_id']}/agent-pairings"
    who = {"agentAddress": account.address, "agentProvider": "pytest", "agentRole": "buyer"}
    ch = box.post(base + "/challenges", json=who).json()["item"]
    signature = account.sign_message(encode_defunct(text=ch["message"])).signature.to_0x_hex()
    proof = {"challengeId": ch["challengeId"], "signature": signature}
    item: dict[str, Any] = box.post(base, json={**who, "agentProof": proof}).json()["item"]
    return item


def _quote_over_http(box: httpx.Client, info: dict[str, Any], pairing: dict[str, Any]) -> str:
    search = {
        "machineId": info["machine_id"],
        "agentPairingId": pairing["id"],
        "serviceType": "compute.marketplace",
    }
    found = box.post(
        "/api/v1/market/search", json=search, headers={"x-agent-pairing-token": pairing["pairingToken"]}
    ).json()["item"]["quotes"]
    return str(next(q["id"] for q in found if q["serviceId"] == "svc_hash_budget"))


def test_the_solana_ledger_persists_with_the_state_dir(tmp_path: Path) -> None:
    if not anvil_available():
        pytest.skip("anvil is not installed")
    with Sandbox(state_dir=tmp_path) as first:
        mint = first.to_json()["solana"]["mint"]
    with Sandbox(state_dir=tmp_path) as again:
        # The same mint (a fresh ledger would create a new one): balances and history came back.
        assert again.to_json()["solana"]["mint"] == mint
    assert (tmp_path / "solana").is_dir()
