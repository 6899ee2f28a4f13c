"""JsonRpcEvmSigner against the test signer in its own process; a lying or failing signer is refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from buyer_agent import SignerError
from buyer_agent.signers import EvmSigner, EvmTransaction, JsonRpcEvmSigner, LocalEvmSigner
from buyer_agent.testing.signer import SignerProcess

T = TypeVar("T")
KEY = "0x" + "6b" * 32
ADDRESS = Account.from_key(KEY).address
TX = EvmTransaction(
    chain_id=31337,
    nonce=3,
    to="0x000000000000000000000000000000000000dEaD",
    gas=120_000,
    max_fee_per_gas=3 * 10**9,
    max_priority_fee_per_gas=10**9,
    data=bytes.fromhex("a9059cbb") + b"\x01" * 64,
)
TYPED: dict[str, Any] = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}],
        "Pay": [{"name": "amount", "type": "uint256"}],
    },
    "primaryType": "Pay",
    "domain": {"name": "buyer_agent"},
    "message": {"amount": 1},
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def signer_process() -> Iterator[SignerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    with SignerProcess("TEST_SIGNER_KEY", {**env, "TEST_SIGNER_KEY": KEY}) as proc:
        yield proc


def signed_counts(url: str) -> dict[str, int]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "testing_signed", "params": []}
    return dict(httpx.post(url, json=body).json()["result"])


def test_a_signer_in_another_process_signs_transactions_and_messages(signer_process: SignerProcess) -> None:
    assert signer_process.url.startswith("http://127.0.0.1:") and signer_process.address == ADDRESS
    before = signed_counts(signer_process.url)

    async def main() -> None:
        signer = await JsonRpcEvmSigner.connect(signer_process.url)
        assert isinstance(signer, EvmSigner) and signer.address == ADDRESS
        assert await signer.accounts() == [ADDRESS]
        signed = await signer.sign_transaction(TX)
        # The same deterministic signature a key in this process would make.
        assert signed == await LocalEvmSigner(KEY).sign_transaction(TX)
        message = b"challenge: pair me"
        sig = await signer.sign_message(message)
        assert Account.recover_message(encode_defunct(primitive=message), signature=sig) == ADDRESS
        typed = await signer.sign_typed_data(TYPED)
        assert Account.recover_message(encode_typed_data(full_message=TYPED), signature=typed) == ADDRESS
        named = await JsonRpcEvmSigner.connect(signer_process.url, address=ADDRESS.lower())
        assert named.address == ADDRESS
        with pytest.raises(SignerError, match="does not hold"):
            await JsonRpcEvmSigner.connect(signer_process.url, address="0x" + "12" * 20)

    run(main())
    after = signed_counts(signer_process.url)
    for method in ("eth_signTransaction", "personal_sign", "eth_signTypedData_v4"):
        assert after.get(method, 0) == before.get(method, 0) + 1
    assert KEY[2:] not in repr(JsonRpcEvmSigner(signer_process.url, ADDRESS))


def test_the_test_signer_refuses_other_accounts_and_unknown_methods(signer_process: SignerProcess) -> None:
    def call(method: str, params: list[Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        answer: dict[str, Any] = httpx.post(signer_process.url, json=body).json()
        return answer

    other = TX.to_rpc("0x" + "12" * 20)
    assert call("eth_signTransaction", [other])["error"]["code"] == -32000
    assert call("personal_sign", ["0x00", "0x" + "12" * 20])["error"]["code"] == -32000
    assert call("eth_sendTransaction", [other])["error"]["code"] == -32601
    assert call("eth_signTransaction", [{"from": ADDRESS}])["error"]["code"] == -32602
    clef = call("account_signTransaction", [TX.to_rpc(ADDRESS)])["result"]
    assert set(clef) == {"raw", "tx"} and clef["raw"].startswith("0x02")


def _answering(answer: Callable[[dict[str, Any]], dict[str, Any] | httpx.Response]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = answer(body)
        if isinstance(out, httpx.Response):
            return out
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], **out})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_a_signer_that_signs_something_else_or_with_another_key_is_refused() -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        method = body["method"]
        if method == "eth_signTransaction":  # the right key, another payee
            asked = EvmTransaction.from_rpc(body["params"][0])
            wrong = replace(asked, to="0x000000000000000000000000000000000000bEEF").to_eth_account()
            raw = Account.from_key(KEY).sign_transaction(wrong).raw_transaction
            return {"result": "0x" + bytes(raw).hex()}
        if method == "personal_sign":  # the right message, another key
            message = encode_defunct(primitive=bytes.fromhex(body["params"][0][2:]))
            sig = Account.from_key("0x" + "7c" * 32).sign_message(message).signature
            return {"result": "0x" + bytes(sig).hex()}
        return {"error": {"code": -32601, "message": "no such method"}}

    async def main() -> None:
        async with _answering(answer) as client:
            signer = JsonRpcEvmSigner("http://127.0.0.1:1", ADDRESS, client=client)
            with pytest.raises(SignerError, match="different transaction: to"):
                await signer.sign_transaction(TX)
            with pytest.raises(SignerError, match="signed by"):
                await signer.sign_message(b"hello")
            with pytest.raises(SignerError, match="does not offer eth_signTypedData_v4"):
                await signer.sign_typed_data(TYPED)

    run(main())


def test_signer_failures_are_signer_errors_and_only_transport_ones_are_retryable() -> None:
    def refusing(body: dict[str, Any]) -> dict[str, Any]:
        return {"error": {"code": -32000, "message": "the user declined"}}

    def broken(body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    def garbage(body: dict[str, Any]) -> dict[str, Any]:
        return {"result": 12}

    async def main() -> None:
        for answer, match, retryable in (
            (refusing, "refused eth_signTransaction: the user declined", False),
            (broken, "HTTP 502", True),
            (garbage, "not 0x hex", False),
        ):
            async with _answering(answer) as client:
                signer = JsonRpcEvmSigner("http://127.0.0.1:1", ADDRESS, client=client)
                with pytest.raises(SignerError, match=match) as caught:
                    await signer.sign_transaction(TX)
                assert caught.value.retryable is retryable
        down = JsonRpcEvmSigner("http://user:pw@127.0.0.1:9/sign?token=abc", ADDRESS, timeout=2)
        with pytest.raises(SignerError, match="did not answer") as caught:
            await down.sign_message(b"x")
        assert caught.value.retryable
        assert "pw" not in str(caught.value) and "abc" not in str(caught.value) and "pw" not in repr(down)

    run(main())
    with pytest.raises(SignerError, match="http"):
        JsonRpcEvmSigner("ftp://127.0.0.1:1", ADDRESS)


def test_the_test_signer_stops_on_sigterm_and_when_its_parent_dies() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    proc = SignerProcess("K", {**env, "K": KEY}).start()
    assert proc.proc is not None
    child = proc.proc
    err = proc.stop()
    assert child.returncode == 0 and "stopped" in err and KEY[2:] not in err

    # A parent that starts the signer, prints its pid, and is then killed without stopping it.
    parent_code = (
        "import os, sys, json\n"
        "from buyer_agent.testing.signer import SignerProcess\n"
        "p = SignerProcess('K', dict(os.environ)).start()\n"
        "print(json.dumps({'pid': p.proc.pid}), flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        env={**env, "K": KEY},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pid = int(json.loads(parent.stdout.readline())["pid"])
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the signer outlived its parent"
    if parent.stdin is not None:
        parent.stdin.close()
    parent.stdout.close()


def test_the_test_signer_refuses_bad_usage_with_a_one_line_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEAQOS_", "BUYER_AGENT_"))}
    argv = [sys.executable, "-m", "buyer_agent.testing.signer", "--key-env", "NOPE"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: --key-env")
    done = subprocess.run(argv, env={**env, "NOPE": "0x1234"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "1234" not in done.stderr and "Traceback" not in done.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False
