"""The rails' JSON-RPC calls on real local chains (anvil, the LiteSVM RPC): client spans under the step."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from buyer_agent import Money
from buyer_agent.rails import EvmRail, PaymentRequest, SolanaRail, TxStatus
from buyer_agent.sandbox.chains import AnvilNode, EvmChain, EvmWallet, SolanaRpcServer, SolanaWallet
from buyer_agent.telemetry import TracingObserver

pytestmark = pytest.mark.chains


@pytest.fixture(scope="module")
def evm() -> Iterator[EvmChain]:
    with AnvilNode(accounts=2) as node:
        yield EvmChain.setup(node)


@pytest.fixture(scope="module")
def solana() -> Iterator[SolanaRpcServer]:
    with SolanaRpcServer() as server:
        yield server


def _pay(rail: Any, req: PaymentRequest, observer: TracingObserver | None) -> None:
    async def go() -> None:
        try:
            if observer is not None:
                observer.order_started(req.order_id, "ordered", resumed=False)
                observer.step_started(req.order_id, "pay", "ordered")
            (tx,) = await rail.prepare(req)
            await rail.broadcast(tx)
            assert await rail.wait(tx, 10) is TxStatus.CONFIRMED
            if observer is not None:
                observer.step_finished(req.order_id, "pay", "paying", error=None)
                observer.order_finished(req.order_id, "paying")
        finally:
            await rail.aclose()

    asyncio.run(go())


def _traced(make_rail: Any, req: PaymentRequest) -> tuple[ReadableSpan, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _pay(make_rail(), req, None)  # not tracing: the hooks pass everything through
    assert exporter.get_finished_spans() == ()
    observer = TracingObserver(provider)
    try:
        _pay(make_rail(), req, observer)
    finally:
        observer.close()
    spans = exporter.get_finished_spans()
    (step,) = [s for s in spans if s.name == "buyer_agent.step.pay"]
    rpc = [s for s in spans if s.kind is SpanKind.CLIENT]
    for span in rpc:
        attrs = dict(span.attributes or {})
        assert span.name == "POST" and attrs["http.request.method"] == "POST"
        assert attrs["rpc.system"] == "jsonrpc" and attrs["server.address"] == "127.0.0.1"
        assert span.parent is not None and span.parent.span_id == step.context.span_id
    return step, rpc


def _methods(rpc: list[ReadableSpan]) -> set[str]:
    return {str((s.attributes or {})["rpc.method"]) for s in rpc}


def test_an_evm_payment_s_rpc_calls_are_client_spans_of_the_pay_step_and_hold_no_key(evm: EvmChain) -> None:
    buyer = evm.new_wallet(usdc=5_000_000)

    def req(order_id: str) -> PaymentRequest:
        return PaymentRequest(
            order_id=order_id,
            rail_type="wallet",
            chain=evm.caip2,
            token=evm.token_address,
            payer=buyer.address,
            payee=EvmWallet.create().address,
            amount=Money(100_000, 6, "USDC"),
        )

    _, rpc = _traced(lambda: EvmRail(evm.rpc_url, buyer.private_key, chain=evm.caip2), req("ord_evm"))
    assert {"eth_sendRawTransaction", "eth_getTransactionReceipt"} <= _methods(rpc)
    key = buyer.private_key.reveal().removeprefix("0x")
    assert all(key not in repr(dict(s.attributes or {})) for s in rpc)


def test_a_solana_payment_s_rpc_calls_are_client_spans_of_the_pay_step(solana: SolanaRpcServer) -> None:
    buyer = solana.chain.new_wallet(usdc=5_000_000)
    req = PaymentRequest(
        order_id="ord_sol",
        rail_type="wallet",
        chain=solana.caip2,
        token=solana.mint,
        payer=buyer.address,
        payee=SolanaWallet.create().address,
        amount=Money(100_000, 6, "USDC"),
    )

    def rail() -> SolanaRail:
        return SolanaRail(solana.rpc_url, buyer.secret_key, chain=solana.caip2, poll_interval=0.01)

    _, rpc = _traced(rail, req)
    assert {"sendTransaction", "getLatestBlockhash"} <= _methods(rpc)
    assert all((s.attributes or {}).get("http.response.status_code") == 200 for s in rpc)
