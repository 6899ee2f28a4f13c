"""SolanaRpcServer: the real solana AsyncClient sends, confirms and reads SPL transfers over loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import GetTransactionResp
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from buyer_agent.sandbox.chains import SolanaChain, SolanaRpcServer, SolanaWallet


@pytest.fixture(scope="module")
def server() -> Iterator[SolanaRpcServer]:
    with SolanaRpcServer() as started:
        yield started


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _rpc(server: SolanaRpcServer, method: str, params: list[Any] | None = None) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []}
    answer: dict[str, Any] = httpx.post(server.rpc_url, json=body).json()
    return answer


def _transfer_ixs(chain: SolanaChain, sender: Pubkey, recipient: Pubkey, amount: int) -> list[Instruction]:
    return [
        create_idempotent_associated_token_account(sender, recipient, chain.mint),
        transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                source=get_associated_token_address(sender, chain.mint),
                mint=chain.mint,
                dest=get_associated_token_address(recipient, chain.mint),
                owner=sender,
                amount=amount,
                decimals=6,
            )
        ),
    ]


def _signed(
    payer: Keypair, ixs: list[Instruction], blockhash: Hash, *, v0: bool = True
) -> VersionedTransaction:
    if v0:
        return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash), [payer])
    return VersionedTransaction(Message.new_with_blockhash(ixs, payer.pubkey(), blockhash), [payer])


def test_chain_id_is_caip2_from_the_genesis_hash(server: SolanaRpcServer) -> None:
    genesis = _rpc(server, "getGenesisHash")["result"]
    assert genesis == server.genesis_hash
    assert server.caip2 == "solana:" + genesis[:32]
    assert _rpc(server, "sandbox_info")["result"]["mint"] == server.mint
    assert _rpc(server, "getHealth")["result"] == "ok"


def test_async_client_airdrops_transfers_confirms_and_reads_balances(server: SolanaRpcServer) -> None:
    chain = server.chain
    alice = chain.new_wallet(sol=0, usdc=5_000_000).keypair()
    bob = Keypair()

    async def flow() -> None:
        async with AsyncClient(server.rpc_url) as client:
            airdrop = await client.request_airdrop(alice.pubkey(), 2_000_000_000)
            await client.confirm_transaction(airdrop.value)
            assert (await client.get_balance(alice.pubkey())).value == 2_000_000_000

            latest = (await client.get_latest_blockhash()).value
            tx = _signed(
                alice, _transfer_ixs(chain, alice.pubkey(), bob.pubkey(), 1_250_000), latest.blockhash
            )
            sent = await client.send_transaction(
                tx, opts=TxOpts(last_valid_block_height=latest.last_valid_block_height)
            )
            assert sent.value == tx.signatures[0]
            (status,) = (await client.get_signature_statuses([sent.value])).value
            assert status is not None and status.err is None
            assert str(status.confirmation_status) == "TransactionConfirmationStatus.Finalized"

            bob_ata = get_associated_token_address(bob.pubkey(), chain.mint)
            assert (await client.get_token_account_balance(bob_ata)).value.amount == "1250000"
            found = (
                await client.get_token_accounts_by_owner(bob.pubkey(), TokenAccountOpts(mint=chain.mint))
            ).value
            assert [str(a.pubkey) for a in found] == [str(bob_ata)]
            parsed = (await client.get_account_info_json_parsed(bob_ata)).value
            assert parsed is not None
            assert parsed.data.parsed["info"]["tokenAmount"]["amount"] == "1250000"  # type: ignore[union-attr]

            for encoding in ("json", "jsonParsed", "base64"):
                got = (
                    await client.get_transaction(
                        sent.value, encoding=encoding, max_supported_transaction_version=0
                    )
                ).value
                assert got is not None
                meta = got.transaction.meta
                assert meta is not None and meta.err is None
                pre = {
                    (b.owner and str(b.owner)): int(b.ui_token_amount.amount)
                    for b in meta.pre_token_balances or []
                }
                post = {
                    (b.owner and str(b.owner)): int(b.ui_token_amount.amount)
                    for b in meta.post_token_balances or []
                }
                assert pre == {str(alice.pubkey()): 5_000_000}
                assert post == {str(alice.pubkey()): 3_750_000, str(bob.pubkey()): 1_250_000}
                assert {str(b.mint) for b in meta.post_token_balances or []} == {str(chain.mint)}

            # The same signed bytes again: refused, with or without preflight, and nothing moves twice.
            for skip in (False, True):
                with pytest.raises(RPCException, match="AlreadyProcessed"):
                    await client.send_raw_transaction(bytes(tx), opts=TxOpts(skip_preflight=skip))
            assert (await client.get_token_account_balance(bob_ata)).value.amount == "1250000"

    _run(flow())
    assert chain.usdc_balance(alice.pubkey()) == 3_750_000
    assert chain.usdc_balance(bob.pubkey()) == 1_250_000


def test_a_resent_transaction_is_refused_long_after_it_landed(server: SolanaRpcServer) -> None:
    # LiteSVM alone forgets a signature after ~32 transactions; the RPC must not.
    chain = server.chain
    payer = chain.new_wallet(usdc=100)
    first = chain.transfer_usdc(payer, Keypair().pubkey(), 1)
    raw = server.ledger.record(first).raw  # type: ignore[union-attr]
    for _ in range(60):
        chain.transfer_usdc(payer, payer.address, 1)
    answer = _rpc(
        server,
        "sendTransaction",
        [base64.b64encode(raw).decode(), {"encoding": "base64", "skipPreflight": True}],
    )
    assert answer["error"]["code"] == -32002
    assert answer["error"]["data"]["err"] == "AlreadyProcessed"
    assert chain.usdc_balance(payer.address) == 99


def test_base58_is_the_default_encoding(server: SolanaRpcServer) -> None:
    from buyer_agent.sandbox.chains._base58 import b58encode

    payer = server.chain.new_wallet(usdc=10)
    blockhash = Hash.from_string(_rpc(server, "getLatestBlockhash")["result"]["value"]["blockhash"])
    tx = _signed(
        payer.keypair(), _transfer_ixs(server.chain, payer.pubkey, Keypair().pubkey(), 4), blockhash, v0=False
    )
    answer = _rpc(server, "sendTransaction", [b58encode(bytes(tx))])
    assert answer["result"] == str(tx.signatures[0])
    assert server.chain.usdc_balance(payer.address) == 6


def test_an_expired_blockhash_makes_an_unsent_transaction_provably_dropped(server: SolanaRpcServer) -> None:
    payer = server.chain.new_wallet(usdc=50)
    latest = _rpc(server, "getLatestBlockhash")["result"]["value"]
    tx = _signed(
        payer.keypair(),
        _transfer_ixs(server.chain, payer.pubkey, Keypair().pubkey(), 5),
        Hash.from_string(latest["blockhash"]),
    )
    height = _rpc(server, "sandbox_expireBlockhashes")["result"]["blockHeight"]
    assert height > latest["lastValidBlockHeight"]
    assert _rpc(server, "getBlockHeight")["result"] == height
    assert _rpc(server, "isBlockhashValid", [latest["blockhash"]])["result"]["value"] is False

    async def late_send() -> None:
        async with AsyncClient(server.rpc_url) as client:
            with pytest.raises(RPCException, match="BlockhashNotFound"):
                await client.send_raw_transaction(bytes(tx), opts=TxOpts(skip_preflight=True))
            assert (await client.get_signature_statuses([tx.signatures[0]])).value == [None]

    _run(late_send())
    assert server.chain.usdc_balance(payer.address) == 50


def test_held_transactions_stay_pending_until_processed_or_dropped(server: SolanaRpcServer) -> None:
    chain = server.chain
    payer = chain.new_wallet(usdc=100)
    blockhash = server.ledger.current_blockhash

    def send(amount: int) -> str:
        tx = _signed(
            payer.keypair(), _transfer_ixs(chain, payer.pubkey, Keypair().pubkey(), amount), blockhash
        )
        answer = _rpc(
            server, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}]
        )
        return str(answer["result"])

    assert _rpc(server, "sandbox_setAutoProcess", [False])["result"] is False
    try:
        kept = send(10)
        assert _rpc(server, "getSignatureStatuses", [[kept]])["result"]["value"] == [None]
        assert chain.usdc_balance(payer.address) == 100
        assert _rpc(server, "sandbox_processHeld")["result"] == [kept]
        dropped = send(20)
        assert _rpc(server, "sandbox_dropHeld")["result"] == [dropped]
    finally:
        _rpc(server, "sandbox_setAutoProcess", [True])
    (status,) = _rpc(server, "getSignatureStatuses", [[kept, dropped]])["result"]["value"][:1]
    assert status["confirmationStatus"] == "finalized" and status["err"] is None
    assert _rpc(server, "getSignatureStatuses", [[dropped]])["result"]["value"] == [None]
    assert chain.usdc_balance(payer.address) == 90


def test_a_failing_transaction_fails_preflight_or_lands_with_its_error(server: SolanaRpcServer) -> None:
    chain = server.chain
    payer = chain.new_wallet(usdc=10)
    blockhash = server.ledger.current_blockhash
    too_much = _signed(payer.keypair(), _transfer_ixs(chain, payer.pubkey, Keypair().pubkey(), 11), blockhash)
    encoded = base64.b64encode(bytes(too_much)).decode()
    refused = _rpc(server, "sendTransaction", [encoded, {"encoding": "base64"}])["error"]
    assert refused["code"] == -32002 and "InstructionError" in refused["data"]["err"]
    assert any("insufficient funds" in line for line in refused["data"]["logs"])
    sol_before = chain.sol_balance(payer.address)

    landed = _rpc(server, "sendTransaction", [encoded, {"encoding": "base64", "skipPreflight": True}])[
        "result"
    ]
    (status,) = _rpc(server, "getSignatureStatuses", [[landed]])["result"]["value"]
    assert status["err"]["InstructionError"][0] == 1 and status["status"] == {"Err": status["err"]}
    assert chain.sol_balance(payer.address) == sol_before - 5000  # the fee is paid, the tokens stay
    assert chain.usdc_balance(payer.address) == 10


def test_v0_transactions_need_max_supported_transaction_version(server: SolanaRpcServer) -> None:
    payer = server.chain.new_wallet(usdc=10)
    signature = server.chain.transfer_usdc(payer, Keypair().pubkey(), 1)  # legacy message
    legacy = _rpc(server, "getTransaction", [signature, {"encoding": "json"}])["result"]
    assert (
        GetTransactionResp.from_json(
            httpx.post(
                server.rpc_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [signature]},
            ).text
        ).value
        is not None
    )
    assert "version" not in legacy

    blockhash = server.ledger.current_blockhash
    tx = _signed(payer.keypair(), _transfer_ixs(server.chain, payer.pubkey, Keypair().pubkey(), 1), blockhash)
    v0 = _rpc(server, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])[
        "result"
    ]
    assert _rpc(server, "getTransaction", [v0, {"encoding": "json"}])["error"]["code"] == -32015
    answer = _rpc(
        server, "getTransaction", [v0, {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0}]
    )
    assert answer["result"]["version"] == 0
    transfer = answer["result"]["transaction"]["message"]["instructions"][1]
    assert transfer["parsed"]["type"] == "transferChecked"
    assert transfer["parsed"]["info"]["tokenAmount"]["amount"] == "1"
    assert _rpc(server, "getTransaction", [str(Signature.default())])["result"] is None


def test_errors_are_json_rpc_error_objects_never_tracebacks(server: SolanaRpcServer) -> None:
    def post(content: bytes) -> httpx.Response:
        return httpx.post(server.rpc_url, content=content, headers={"Content-Type": "application/json"})

    assert post(b"{not json").json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }
    assert post(b'{"jsonrpc": "2.0", "id": 1}').json()["error"]["code"] == -32600
    assert _rpc(server, "noSuchMethod")["error"] == {"code": -32601, "message": "Method not found"}
    assert _rpc(server, "getBalance", ["not-a-key"])["error"]["code"] == -32602
    assert _rpc(server, "getBalance", [])["error"]["code"] == -32602
    assert _rpc(server, "requestAirdrop", [str(Keypair().pubkey()), -1])["error"]["code"] == -32602
    assert _rpc(server, "sendTransaction", ["AAAA", {"encoding": "base64"}])["error"]["code"] == -32602
    assert _rpc(server, "sendTransaction", ["!!", {"encoding": "base64"}])["error"]["code"] == -32602
    assert _rpc(server, "getTokenAccountBalance", [str(Keypair().pubkey())])["error"]["code"] == -32602

    payer = server.chain.new_wallet()
    tx = _signed(
        payer.keypair(),
        _transfer_ixs(server.chain, payer.pubkey, Keypair().pubkey(), 1),
        server.ledger.current_blockhash,
    )
    forged = bytearray(bytes(tx))
    forged[10] ^= 0xFF  # inside the signature
    bad = _rpc(server, "sendTransaction", [base64.b64encode(bytes(forged)).decode(), {"encoding": "base64"}])
    assert bad["error"]["code"] == -32003

    batch = httpx.post(
        server.rpc_url,
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        ],
    ).json()
    assert [item["id"] for item in batch] == [1, 2] and "error" in batch[1]
    assert httpx.get(server.rpc_url).status_code == 405


def test_concurrent_clients_all_land_exactly_once(server: SolanaRpcServer) -> None:
    chain = server.chain
    senders = [chain.new_wallet(usdc=1_000) for _ in range(4)]
    sink = SolanaWallet.create()
    errors: list[BaseException] = []

    def work(wallet: SolanaWallet) -> None:
        try:
            with httpx.Client() as http:
                for _ in range(10):
                    bh = http.post(
                        server.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash"}
                    ).json()
                    tx = _signed(
                        wallet.keypair(),
                        _transfer_ixs(chain, wallet.pubkey, sink.pubkey, 7),
                        Hash.from_string(bh["result"]["value"]["blockhash"]),
                    )
                    body = {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "sendTransaction",
                        "params": [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}],
                    }
                    assert "result" in http.post(server.rpc_url, json=body).json()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert chain.usdc_balance(sink.address) == 4 * 10 * 7
    assert all(chain.usdc_balance(w.address) == 1_000 - 70 for w in senders)


def test_stop_frees_the_port_and_closes_connections() -> None:
    server = SolanaRpcServer().start()
    url = server.rpc_url
    with httpx.Client() as http:
        assert http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"}).json()["result"] >= 1
        server.stop()
        server.stop()
        with pytest.raises(httpx.TransportError):
            http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"})
    assert not server.running


def test_wallet_secret_never_shows(server: SolanaRpcServer) -> None:
    wallet = SolanaWallet.create()
    assert str(wallet.keypair()) not in repr(wallet)
    assert SolanaWallet.from_secret(wallet.secret_key.reveal()) == wallet
    assert len(Keypair.from_base58_string(wallet.secret_key.reveal()).to_bytes()) == 64


def test_state_dir_keeps_balances_history_and_the_mint_across_restarts(tmp_path: Path) -> None:
    with SolanaRpcServer(state_dir=tmp_path) as first:
        payer = first.chain.new_wallet(usdc=1_000)
        payee = SolanaWallet.create()
        signature = first.chain.transfer_usdc(payer, payee.address, 300)
        raw = first.ledger.record(signature).raw  # type: ignore[union-attr]
        before = (first.mint, first.caip2, first.ledger.block_height)
    assert first.state_file is not None and first.state_file.is_file()

    with SolanaRpcServer(state_dir=tmp_path) as second:
        assert (second.mint, second.caip2) == before[:2]
        assert second.ledger.block_height == before[2]
        assert second.chain.usdc_balance(payee.address) == 300
        assert second.chain.usdc_balance(payer.address) == 700
        again = _rpc(second, "sendTransaction", [base64.b64encode(raw).decode(), {"encoding": "base64"}])
        assert again["error"]["data"]["err"] == "AlreadyProcessed"
        landed = second.get_transaction(signature)
        assert landed is not None and landed["meta"]["postTokenBalances"]
        assert _rpc(second, "getTransaction", [signature])["result"]["slot"] == landed["slot"]
        second.chain.mint_to(payee.address, 5)  # the mint authority survived too
        assert second.chain.usdc_balance(payee.address) == 305


def test_in_process_get_transaction_matches_the_rpc(server: SolanaRpcServer) -> None:
    payer = server.chain.new_wallet(usdc=10)
    signature = server.chain.transfer_usdc(payer, Keypair().pubkey(), 3)
    config = {"encoding": "json", "maxSupportedTransactionVersion": 0}
    assert server.get_transaction(signature) == _rpc(server, "getTransaction", [signature, config])["result"]
    assert server.get_transaction(str(Signature.default())) is None


def test_with_a_block_interval_blockhashes_expire_with_wall_time() -> None:
    with SolanaRpcServer(block_interval=0.001) as server:
        latest = _rpc(server, "getLatestBlockhash")["result"]["value"]
        deadline = time.monotonic() + 10
        while _rpc(server, "getBlockHeight")["result"] <= latest["lastValidBlockHeight"]:
            assert time.monotonic() < deadline, "block height did not move with time"
            time.sleep(0.05)
        assert _rpc(server, "isBlockhashValid", [latest["blockhash"]])["result"]["value"] is False
        fresh = _rpc(server, "getLatestBlockhash")["result"]["value"]
        assert fresh["blockhash"] != latest["blockhash"]


def test_funding_creates_the_token_account_even_without_usdc(server: SolanaRpcServer) -> None:
    wallet = server.chain.new_wallet(usdc=0)
    account = server.chain.token_account(wallet.address)
    assert _rpc(server, "getTokenAccountBalance", [str(account)])["result"]["value"]["amount"] == "0"
    assert server.chain.sol_balance(wallet.address) == 10 * 1_000_000_000
