"""Choosing a rail by type and chain, third-party rails from entry points, and the in-memory nonce store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair

from buyer_agent._errors import RailError, UnsupportedRailError
from buyer_agent.rails import (
    EscrowProof,
    EvmRail,
    MemoryNonceStore,
    PaymentRequest,
    Rail,
    SignedTx,
    SolanaRail,
    TxStatus,
    load_entry_point_rails,
    rail_for,
)

SOLANA_CHAIN = "solana:Cyx3a8EVvqQZHcaC32RJDgveuK5S9v8b"


class LightningRail:
    """A third-party rail, as a plugin would ship one."""

    name = "lightning"

    def supports(self, rail_type: str, chain: str) -> bool:
        return rail_type == "lightning"

    async def prepare(self, request: PaymentRequest) -> Sequence[SignedTx]:
        return []

    async def broadcast(self, tx: SignedTx) -> None:
        return None

    async def wait(self, tx: SignedTx, timeout: float) -> TxStatus:
        return TxStatus.CONFIRMED

    async def status(self, tx: SignedTx) -> TxStatus:
        return TxStatus.CONFIRMED

    async def verify(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> None:
        return None

    def proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> dict[str, Any]:
        return {}

    def escrow_proof(self, request: PaymentRequest, txs: Sequence[SignedTx]) -> EscrowProof:
        raise RailError("no escrow")

    async def prepare_release(self, request: PaymentRequest) -> Sequence[SignedTx]:
        return []

    async def aclose(self) -> None:
        return None


def make_lightning() -> LightningRail:
    return LightningRail()


def rails() -> list[Rail]:
    return [
        EvmRail("http://127.0.0.1:1", "0x" + "11" * 32, chain="eip155:31337"),
        SolanaRail("http://127.0.0.1:1", str(Keypair()), chain=SOLANA_CHAIN),
    ]


def test_rails_are_chosen_by_type_and_chain() -> None:
    evm, sol = rails()
    assert isinstance(evm, Rail) and isinstance(sol, Rail)
    assert rail_for("wallet", "eip155:31337", [evm, sol]) is evm
    assert rail_for("onchain-escrow", "eip155:31337", [evm, sol]) is evm
    assert rail_for("wdk-usdt-transfer", "eip155:31337", [evm, sol]) is evm
    assert rail_for("wallet", SOLANA_CHAIN, [evm, sol]) is sol


def test_an_unknown_rail_fails_clearly_listing_what_there_is() -> None:
    with pytest.raises(UnsupportedRailError) as caught:
        rail_for("stripe", "eip155:31337", rails())
    assert caught.value.rail_type == "stripe"
    assert caught.value.available == ["evm on eip155:31337", f"solana on {SOLANA_CHAIN}"]
    assert "evm on eip155:31337" in str(caught.value)
    with pytest.raises(UnsupportedRailError, match="none configured"):
        rail_for("wallet", "eip155:1", [])
    with pytest.raises(UnsupportedRailError):
        rail_for("onchain-escrow", SOLANA_CHAIN, rails())


def _install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    dist = tmp_path / "lightning_rail-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lightning-rail\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[buyer_agent.rails]\nlightning = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_third_party_rails_load_from_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(tmp_path, monkeypatch, "test_rails_registry:make_lightning")
    factories = load_entry_point_rails()
    assert set(factories) >= {"lightning"}
    rail = factories["lightning"]()
    assert isinstance(rail, Rail)
    assert rail_for("lightning", "bolt11:mainnet", [*rails(), rail]) is rail


def test_a_broken_entry_point_is_a_rail_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(tmp_path, monkeypatch, "no_such_module_xyz:factory")
    with pytest.raises(RailError, match="lightning"):
        load_entry_point_rails()


def test_the_memory_nonce_store_never_hands_out_a_nonce_twice() -> None:
    store = MemoryNonceStore()
    assert store.reserve("eip155:1", "0xAB", 5, 2) == 5
    assert store.reserve("eip155:1", "0xab", 5, 1) == 7  # same address, any case
    assert store.reserve("eip155:1", "0xab", 20, 1) == 20  # the chain moved on
    assert store.reserve("eip155:2", "0xab", 0, 1) == 0
    got: list[int] = []
    lock = threading.Lock()

    def grab() -> None:
        for _ in range(50):
            n = store.reserve("eip155:1", "0xcd", 0, 1)
            with lock:
                got.append(n)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(200))
    with pytest.raises(ValueError):
        store.reserve("eip155:1", "0xcd", 0, 0)
