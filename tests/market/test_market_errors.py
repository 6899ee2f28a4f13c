"""Every way a market call can fail, and what the caller gets: one error tree, no foreign exceptions.

Documented codes keep their code; a non-JSON error is BAD_RESPONSE; any body that does not match the
documented shape (random JSON included) is INVALID_RESPONSE_SHAPE, never a KeyError or TypeError; bad
arguments are refused before a request is sent; secrets never reach a message, repr or details.
"""

from __future__ import annotations

import asyncio
import copy
import json
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import market_support as ms
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyer_agent._errors import (
    OrchestrationApiError,
    OrchestrationConfigError,
    OrchestrationError,
    OrchestrationNetworkError,
    OrchestrationOutcomeUnknown,
    OrchestrationValidationError,
)
from buyer_agent._redact import Secret
from buyer_agent.market import AsyncMarketClient, InsecureTransportWarning, MarketClient
from buyer_agent.market._codes import BAD_RESPONSE, DOCUMENTED_CODES, INVALID_RESPONSE_SHAPE

Call = Callable[[AsyncMarketClient], Awaitable[Any]]


def outcome(market: ms.Market, call: Call, **kw: Any) -> Any:
    """The result of one call, or the exception it raised."""

    async def go() -> Any:
        async with ms.client_for(market, **kw) as client:
            try:
                return await call(client)
            except Exception as exc:  # the test inspects whatever came out
                return exc

    return asyncio.run(go())


def api_error(market: ms.Market, call: Call, **kw: Any) -> OrchestrationApiError:
    """The OrchestrationApiError ``call`` raised (failing the test on anything else)."""
    result = outcome(market, call, **kw)
    assert isinstance(result, OrchestrationApiError), repr(result)
    return result


def envelope(code: str, message: str = "refused", details: Any = None, status: int = 400) -> tuple[int, Any]:
    """A documented error answer."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return status, {"error": error}


# --- documented error codes -----------------------------------------------------------------------


@pytest.mark.parametrize("code", DOCUMENTED_CODES)
def test_documented_code_reaches_the_caller(code: str) -> None:
    market = ms.Market(
        httpx.Response(
            409,
            json={"error": {"code": code, "message": "the market says no", "details": {"orderId": "o1"}}},
            headers={"x-request-id": "req-7"},
        )
    )
    err = api_error(market, lambda m: m.get_market_order(ms.ORDER))
    assert err.code == code
    assert err.status_code == 409
    assert err.message == f"{code}: the market says no"
    assert err.details == {"order_id": "o1"}  # snake_cased like every answer
    assert err.request_id == "req-7"
    assert not err.retryable  # a 4xx answer is final


def test_every_documented_code_is_a_constant() -> None:
    from buyer_agent.market import _codes

    assert len(set(DOCUMENTED_CODES)) == len(DOCUMENTED_CODES) >= 30
    for code in DOCUMENTED_CODES:
        assert getattr(_codes, code) == code
    assert BAD_RESPONSE not in DOCUMENTED_CODES and INVALID_RESPONSE_SHAPE not in DOCUMENTED_CODES


# --- bodies that are not what the docs say --------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502, content=b"<html>Bad gateway</html>", headers={"content-type": "text/html"}),
        httpx.Response(500, content=b""),
        httpx.Response(400, json={"message": "no envelope"}),
        httpx.Response(400, json={"error": "just a string"}),
        httpx.Response(400, json={"error": {"code": 7, "message": "code is not a string"}}),
        httpx.Response(400, content=b'{"error": {"code": "NOT_FO'),
    ],
    ids=["html", "empty", "no envelope", "string error", "numeric code", "truncated"],
)
def test_an_error_without_a_json_envelope_is_bad_response(answer: httpx.Response) -> None:
    err = api_error(ms.Market(answer), lambda m: m.get_machine(ms.MACHINE))
    assert err.code == BAD_RESPONSE
    assert err.status_code == answer.status_code


def test_a_proxy_page_echoing_the_headers_is_not_attached() -> None:
    page = f"<html>upstream failed; x-api-key: {ms.API_KEY}; x-agent-pairing-token: {ms.TOKEN}</html>"
    market = ms.Market(httpx.Response(502, content=page.encode(), headers={"content-type": "text/html"}))
    err = api_error(market, lambda m: m.search_market({"machine_id": ms.MACHINE}, ms.TOKEN))
    assert err.code == BAD_RESPONSE
    assert_no_secret(err)
    assert err.details == {"content_type": "text/html", "length": len(page)}


ORDER_CALL: Call = lambda m: m.get_market_order(ms.ORDER)  # noqa: E731
LIST_CALL: Call = lambda m: m.list_market_orders(machine_id=ms.MACHINE)  # noqa: E731
PAYMENT_CALL: Call = lambda m: m.get_market_payment(ms.ORDER)  # noqa: E731
EXECUTE_CALL: Call = lambda m: m.execute_market_order(ms.ORDER, None, ms.TOKEN)  # noqa: E731
SEARCH_CALL: Call = lambda m: m.get_market_search(ms.SEARCH)  # noqa: E731


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


ORDER = ms.item(ms.ORDER_ITEM)
PAYMENT = ms.item(ms.PAYMENT_ITEM)
SEARCH = ms.item(ms.SEARCH_ITEM)

NOT_JSON: list[tuple[str, Call, Any]] = [
    ("not json", ORDER_CALL, b"this is not json"),
    ("truncated json", ORDER_CALL, json.dumps(ORDER).encode()[:-7]),
    ("empty body", ORDER_CALL, b""),
    ("json null", ORDER_CALL, b"null"),
    ("deep nesting", ORDER_CALL, ("[" * 100_000 + "]" * 100_000).encode()),
    ("NaN literal", PAYMENT_CALL, json.dumps(PAYMENT).replace("1.25", "NaN").encode()),
    ("Infinity literal", PAYMENT_CALL, json.dumps(PAYMENT).replace("1.25", "-Infinity").encode()),
]


@pytest.mark.parametrize(("call", "body"), [m[1:] for m in NOT_JSON], ids=[m[0] for m in NOT_JSON])
def test_a_success_answer_without_json_is_bad_response_with_its_status(call: Call, body: Any) -> None:
    # As the official SDK (and the reference, 1.6): BAD_RESPONSE for an empty or non-JSON success body.
    err = api_error(ms.Market((201, body)), call)
    assert err.code == BAD_RESPONSE
    assert err.status_code == 201
    assert not err.retryable


MALFORMED: list[tuple[str, Call, Any]] = [
    ("a list, not an object", ORDER_CALL, [ORDER]),
    ("item missing", ORDER_CALL, {"order": ms.ORDER_ITEM}),
    ("item not an object", ORDER_CALL, {"item": "ord_01"}),
    ("items for an item", ORDER_CALL, ms.page(ms.ORDER_ITEM)),
    ("items missing", LIST_CALL, ORDER),
    ("items not a list", LIST_CALL, {"items": {"0": ms.ORDER_ITEM}}),
    ("cursor not a string", LIST_CALL, {"items": [], "nextCursor": 7}),
    ("id wrong type", ORDER_CALL, _with(ORDER, "item.id", 12)),
    ("status wrong type", ORDER_CALL, _with(ORDER, "item.status", ["created"])),
    ("required field missing", ORDER_CALL, _with(ORDER, "item.machineId", ...)),
    ("nested required field missing", ORDER_CALL, _with(ORDER, "item.payment.defaultRail", ...)),
    ("list field not a list", ORDER_CALL, _with(ORDER, "item.payment.supportedRails", "wallet")),
    ("mapping field not a mapping", ORDER_CALL, _with(ORDER, "item.inputPayload", [1, 2])),
    ("negative amount", PAYMENT_CALL, _with(PAYMENT, "item.amount", -1.25)),
    ("negative amount string", PAYMENT_CALL, _with(PAYMENT, "item.amount", "-0.01")),
    ("amount not a number", PAYMENT_CALL, _with(PAYMENT, "item.amount", "one dollar")),
    ("amount a boolean", PAYMENT_CALL, _with(PAYMENT, "item.amount", True)),
    ("amount nan string", PAYMENT_CALL, _with(PAYMENT, "item.amount", "NaN")),
    ("amount infinity string", PAYMENT_CALL, _with(PAYMENT, "item.amount", "Infinity")),
    ("amount huge", PAYMENT_CALL, json.dumps(PAYMENT).replace("1.25", "1e400").encode()),
    ("amount huge integer", PAYMENT_CALL, json.dumps(PAYMENT).replace("1.25", "9" * 120).encode()),
    ("quote price negative", SEARCH_CALL, _with(SEARCH, "item.quotes.0.pricing.amount", -3)),
    ("quote score a string", SEARCH_CALL, _with(SEARCH, "item.quotes.0.score", "high")),
    ("required field null", ORDER_CALL, _with(ORDER, "item.status", None)),
    ("execute status 201", EXECUTE_CALL, _with(ms.EXECUTE_200, "execution.statusCode", 201)),
    ("execute 200 without run", EXECUTE_CALL, _with(ms.EXECUTE_200, "execution.run", ...)),
    ("execute 202 without handoff", EXECUTE_CALL, _with(ms.EXECUTE_202, "execution.handoff", ...)),
    ("execute without order", EXECUTE_CALL, _with(ms.EXECUTE_200, "order", ...)),
]


@pytest.mark.parametrize(("call", "body"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_success_body_is_invalid_response_shape(call: Call, body: Any) -> None:
    err = api_error(ms.Market((200, body)), call)
    assert err.code == INVALID_RESPONSE_SHAPE
    assert err.status_code == 0  # synthesised by the client
    assert not err.retryable


def test_the_shape_error_names_the_bad_field() -> None:
    err = api_error(ms.Market((200, _with(PAYMENT, "item.rail.type", 3))), PAYMENT_CALL)
    assert err.details == {"field": "item.rail.type", "expected": "a string"}


def test_204_where_a_body_is_documented_is_invalid_response_shape() -> None:
    err = api_error(ms.Market((204, None)), ORDER_CALL)
    assert err.code == INVALID_RESPONSE_SHAPE


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(
    [
        "item",
        "items",
        "nextCursor",
        "id",
        "status",
        "amount",
        "rail",
        "type",
        "order",
        "execution",
        "statusCode",
    ]
)
CALLS = st.sampled_from(
    [ORDER_CALL, LIST_CALL, PAYMENT_CALL, EXECUTE_CALL, SEARCH_CALL, lambda m: m.get_machine(ms.MACHINE)]
)


def _is_json_body(body: Any) -> bool:
    # What the market would send: JSON text other than ``null`` (NaN and Infinity are not JSON).
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:
        return False
    return body is not None


def _accepts_or_refuses_cleanly(call: Call, body: Any) -> None:
    result = outcome(ms.Market((200, body)), call)
    if isinstance(result, BaseException):
        assert isinstance(result, OrchestrationApiError), repr(result)
        assert result.code == (INVALID_RESPONSE_SHAPE if _is_json_body(body) else BAD_RESPONSE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=CALLS, body=st.dictionaries(FIELD_NAMES, JSON, max_size=4) | JSON)
def test_random_json_bodies_never_escape_the_error_tree(call: Call, body: Any) -> None:
    _accepts_or_refuses_cleanly(call, body)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_valid_answer_with_one_field_replaced_never_escapes_the_error_tree(data: st.DataObject) -> None:
    call, base = data.draw(
        st.sampled_from(
            [
                (ORDER_CALL, ORDER),
                (PAYMENT_CALL, PAYMENT),
                (SEARCH_CALL, SEARCH),
                (EXECUTE_CALL, ms.EXECUTE_200),
            ]
        )
    )
    body = copy.deepcopy(base)
    path = data.draw(st.sampled_from(_leaves(body)))
    if path:
        node: Any = body
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = data.draw(JSON)
    _accepts_or_refuses_cleanly(call, body)


# --- arguments refused before any request ---------------------------------------------------------

LIST_METHODS: list[tuple[str, Callable[[AsyncMarketClient, int], Any]]] = [
    ("list_machines", lambda m, n: m.list_machines(limit=n)),
    ("list_agent_pairings", lambda m, n: m.list_agent_pairings(ms.MACHINE, limit=n)),
    ("list_market_services", lambda m, n: m.list_market_services(limit=n)),
    ("list_market_orders", lambda m, n: m.list_market_orders(machine_id=ms.MACHINE, limit=n)),
    ("list_audit_events", lambda m, n: m.list_audit_events(limit=n)),
]
ALL_METHODS: list[tuple[str, Callable[[AsyncMarketClient, int], Any]]] = [
    ("list_machines_all", lambda m, n: m.list_machines_all(limit=n)),
    ("list_agent_pairings_all", lambda m, n: m.list_agent_pairings_all(ms.MACHINE, limit=n)),
    ("list_market_services_all", lambda m, n: m.list_market_services_all(limit=n)),
    ("list_market_orders_all", lambda m, n: m.list_market_orders_all(machine_id=ms.MACHINE, limit=n)),
]


@pytest.mark.parametrize("limit", [0, 501, -1, True])
@pytest.mark.parametrize(
    ("name", "call"), LIST_METHODS + ALL_METHODS, ids=[n for n, _ in LIST_METHODS + ALL_METHODS]
)
def test_a_limit_outside_1_to_500_is_refused_before_any_request(
    name: str, call: Callable[[AsyncMarketClient, int], Any], limit: int
) -> None:
    market = ms.Market()

    async def go() -> None:
        async with ms.client_for(market) as client:
            with pytest.raises(OrchestrationValidationError) as info:
                result = call(client, limit)  # the *_all iterators refuse when called, not when first read
                if asyncio.iscoroutine(result):
                    await result
            assert info.value.field == "limit"
            assert "500" in info.value.constraint

    asyncio.run(go())
    assert market.requests == []


@pytest.mark.parametrize("limit", [1, 500])
def test_the_limit_bounds_themselves_are_allowed(limit: int) -> None:
    market = ms.Market((200, ms.page()))
    outcome(market, lambda m: m.list_machines(limit=limit))
    assert dict(market.sent[0].query) == {"limit": str(limit)}


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("machine_id", lambda m: m.get_machine("")),
        ("machine_id", lambda m: m.get_machine("   ")),
        ("machine_id", lambda m: m.get_machine("../admin")),
        ("order_id", lambda m: m.get_market_order("o1?x=1")),
        ("order_id", lambda m: m.confirm_market_order("o1#frag", ms.TOKEN)),
        ("pairing_id", lambda m: m.revoke_agent_pairing(ms.MACHINE, "")),
        ("search_id", lambda m: m.get_market_search("")),
        ("service_id", lambda m: m.get_market_service("a/b")),
        ("machine_id", lambda m: m.list_market_orders(machine_id="")),
        ("pairing_token", lambda m: m.search_market({}, "")),
        ("pairing_token", lambda m: m.create_market_order({}, "   ")),
        ("pairing_token", lambda m: m.execute_market_order(ms.ORDER, None, Secret(""))),
        ("params", lambda m: m.create_market_order(["not", "a", "mapping"], ms.TOKEN)),
    ],
)
def test_a_bad_argument_is_refused_before_any_request(field: str, call: Call) -> None:
    market = ms.Market()
    err = outcome(market, call)
    assert isinstance(err, OrchestrationValidationError) and err.field == field
    assert isinstance(err, ValueError)  # usable as plain Python argument errors too
    assert market.requests == []


# --- secrets ----------------------------------------------------------------------------------------


def assert_no_secret(*things: Any) -> None:
    """Neither the API key nor the pairing token shows in the str/repr of anything given."""
    for thing in things:
        for text in (str(thing), repr(thing)):
            assert ms.API_KEY not in text and ms.TOKEN not in text, text
        details = getattr(thing, "details", None)
        if details is not None:
            dumped = json.dumps(details, default=str)
            assert ms.API_KEY not in dumped and ms.TOKEN not in dumped, dumped


def test_secrets_in_error_details_are_redacted_at_any_depth() -> None:
    details = {
        "pairingToken": ms.TOKEN,
        "headers": {"x-api-key": ms.API_KEY, "authorization": f"Bearer {ms.TOKEN}"},
        "attempts": [{"providerCredentials": {"apiSecret": "s3cr3t"}, "agentPairingToken": ms.TOKEN}],
        "orderId": "o1",
    }
    err = api_error(ms.Market(envelope("AGENT_AUTH_INVALID", "bad token", details, 401)), SEARCH_CALL)
    assert err.code == "AGENT_AUTH_INVALID"
    assert_no_secret(err)
    assert "s3cr3t" not in json.dumps(err.details)
    assert err.details["order_id"] == "o1"  # what is not secret stays useful


def test_secrets_never_appear_in_errors_or_reprs_on_any_failure() -> None:
    failures: list[ms.Answer] = [
        envelope("AUTH_INVALID", "no", {"apiKey": ms.API_KEY}, 401),
        envelope("AGENT_AUTH_INVALID", f"token {ms.TOKEN} is not valid for key {ms.API_KEY}", None, 401),
        envelope("VALIDATION_ERROR", "bad", {"field": "x", "value": f"Bearer {ms.TOKEN}"}),
        httpx.Response(500, content=f"key={ms.API_KEY} token={ms.TOKEN}".encode()),
        (200, {"item": {"pairingToken": ms.TOKEN}}),
        httpx.ConnectError(f"cannot connect with {ms.TOKEN}"),
        httpx.ReadTimeout(f"timed out, key {ms.API_KEY}"),
    ]
    for failure in failures:
        err = outcome(ms.Market(failure), lambda m: m.search_market({"machine_id": ms.MACHINE}, ms.TOKEN))
        assert isinstance(err, OrchestrationError), repr(err)
        assert_no_secret(err)


def test_secrets_never_appear_in_client_or_pairing_reprs() -> None:
    market = ms.Market((201, ms.item({**ms.PAIRING_WITH_TOKEN, "pairingToken": ms.TOKEN})))

    async def go() -> Any:
        async with ms.client_for(market) as client:
            assert_no_secret(client)
            return (await client.create_agent_pairing(ms.MACHINE, {"agent_address": "0x1"})).item

    pairing = asyncio.run(go())
    assert pairing.pairing_token.reveal() == ms.TOKEN
    assert_no_secret(pairing, pairing.pairing_token)
    with MarketClient(ms.BASE, api_key=ms.API_KEY) as sync_client:
        assert_no_secret(sync_client)


# --- transport failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ConnectError("refused"), OrchestrationNetworkError),
        (httpx.ConnectTimeout("slow connect"), OrchestrationNetworkError),
        (httpx.ReadTimeout("slow answer"), OrchestrationOutcomeUnknown),
        (httpx.WriteTimeout("slow upload"), OrchestrationOutcomeUnknown),
        (httpx.RemoteProtocolError("peer closed connection"), OrchestrationOutcomeUnknown),
        (httpx.ReadError("connection reset"), OrchestrationOutcomeUnknown),
    ],
)
def test_transport_failures_become_network_errors(
    failure: Exception, kind: type[OrchestrationNetworkError]
) -> None:
    err = outcome(ms.Market(failure), lambda m: m.create_market_order({"machine_id": "m"}, ms.TOKEN))
    assert type(err) is kind and isinstance(err, OrchestrationNetworkError)
    assert err.__cause__ is failure  # the original kept for debugging, never raised as is
    assert err.retryable


# --- configuration --------------------------------------------------------------------------------


def test_from_env_without_the_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAQOS_API_KEY", ms.API_KEY)
    for sync in (False, True):
        with pytest.raises(OrchestrationConfigError, match="PEAQOS_ORCHESTRATION_URL"):
            MarketClient.from_env() if sync else AsyncMarketClient.from_env()


@pytest.mark.parametrize("url", ["   ", "ftp://market.example", "market.example", "https://"])
def test_from_env_with_an_invalid_url_names_the_variable(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PEAQOS_ORCHESTRATION_URL", url)
    with pytest.raises(OrchestrationConfigError, match="PEAQOS_ORCHESTRATION_URL") as info:
        AsyncMarketClient.from_env()
    assert ms.API_KEY not in str(info.value)


def test_from_env_reads_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAQOS_ORCHESTRATION_URL", ms.BASE + "/")
    monkeypatch.setenv("PEAQOS_API_KEY", ms.API_KEY)
    market = ms.Market((200, ms.page()))
    http = httpx.AsyncClient(transport=httpx.MockTransport(market))

    async def go() -> None:
        client = AsyncMarketClient.from_env(http_client=http)
        assert client.base_url == ms.BASE
        await client.list_machines()
        await http.aclose()

    asyncio.run(go())
    assert market.sent[0].api_key == ms.API_KEY
    monkeypatch.delenv("PEAQOS_API_KEY")
    assert AsyncMarketClient.from_env()._transport._api_key is None  # the key is optional


@pytest.mark.parametrize("url", ["http://market.example", "http://10.0.0.5:8080", "HTTP://Market.Example"])
def test_plain_http_to_another_host_warns(url: str) -> None:
    with pytest.warns(InsecureTransportWarning, match="unencrypted"):
        AsyncMarketClient(url, api_key=ms.API_KEY)


@pytest.mark.parametrize(
    "url", ["https://market.example", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:80"]
)
def test_https_and_loopback_do_not_warn(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AsyncMarketClient(url)


@pytest.mark.parametrize("url", ["", "not a url", "file:///etc/passwd", "https://"])
def test_an_unusable_base_url_is_a_config_error(url: str) -> None:
    with pytest.raises(OrchestrationConfigError):
        AsyncMarketClient(url)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
    body=st.fixed_dictionaries(
        {},
        optional={
            "error": st.fixed_dictionaries(
                {}, optional={"code": JSON, "message": JSON, "details": JSON, "requestId": JSON}
            )
            | JSON
        },
    )
    | JSON,
)
def test_any_error_answer_is_an_api_error_carrying_its_status(status: int, body: Any) -> None:
    err = api_error(ms.Market((status, body)), ORDER_CALL, retry=None)
    assert err.status_code == status
    assert err.retryable == (status == 429 or status >= 500)
    assert isinstance(err.code, str) and isinstance(err.message, str)
    json.dumps(err.details, default=str)  # details stay plain data


@pytest.mark.parametrize(
    "url",
    [
        "https://buyer:hunter2-pass@market.example",
        "https://market.example/?api_key=hunter2-pass",
        "https://market.example/#hunter2-pass",
        "ftp://buyer:hunter2-pass@market.example",
        "buyer:hunter2-pass@market.example",
    ],
)
def test_a_url_carrying_credentials_is_refused_without_repeating_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    with pytest.raises(OrchestrationConfigError) as info:
        AsyncMarketClient(url)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value)
    monkeypatch.setenv("PEAQOS_ORCHESTRATION_URL", url)
    with pytest.raises(OrchestrationConfigError, match="PEAQOS_ORCHESTRATION_URL") as info:
        AsyncMarketClient.from_env()
    assert "hunter2" not in str(info.value)
