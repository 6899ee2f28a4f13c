"""What a call span says of the URL it called: the server, never the user info, path or query of a node."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from buyer_agent.telemetry import TracingObserver
from buyer_agent.telemetry._attributes import endpoint_of


def _call_attrs(url: str, *, rpc_method: str | None = None) -> dict[str, object]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = TracingObserver(provider)
    try:
        observer.http_client("POST", url, rpc_method=rpc_method).end()
    finally:
        observer.close()
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_a_market_call_names_its_order_path_and_the_server() -> None:
    attrs = _call_attrs("http://127.0.0.1:4000/api/v1/market/orders/ord_ü1/confirm?token=secret")
    assert attrs["url.full"] == "http://127.0.0.1:4000/api/v1/market/orders/ord_ü1/confirm"
    assert (attrs["server.address"], attrs["server.port"], attrs["url.scheme"]) == ("127.0.0.1", 4000, "http")


def test_a_node_call_keeps_neither_its_user_info_nor_its_key_in_the_path() -> None:
    attrs = _call_attrs("https://user:pw@rpc.example.com/v2/KEY123?x=1", rpc_method="eth_call")
    assert "url.full" not in attrs
    assert (attrs["server.address"], attrs["server.port"], attrs["rpc.method"]) == (
        "rpc.example.com",
        443,
        "eth_call",
    )
    assert "KEY123" not in repr(attrs) and "pw" not in repr(attrs)


def test_an_ipv6_server_keeps_its_brackets_in_the_url() -> None:
    attrs = _call_attrs("http://[::1]:8545/api/v1/market/search")
    assert attrs["url.full"] == "http://[::1]:8545/api/v1/market/search"
    assert attrs["server.address"] == "::1"


def test_every_order_of_one_market_shares_one_remembered_endpoint() -> None:
    first = endpoint_of("http://127.0.0.1:4000/api/v1/market/orders/ord_1/confirm")
    assert endpoint_of("http://127.0.0.1:4000/api/v1/market/orders/ord_2/execute") is first
    assert endpoint_of("http://user:pw@127.0.0.1:4000/x") is not first  # another spelling, same server
    assert endpoint_of("http://user:pw@127.0.0.1:4000/x")[0] == first[0]
