"""Tool definitions: valid Draft 2020-12 schemas in every format, closed objects, no money fields."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from buyer_agent import BuyerAgent
from buyer_agent.tools import (
    ERROR_CODES,
    FORBIDDEN_KEYS,
    FORMATS,
    SCHEMA_DIALECT,
    STEP_TOOLS,
    TOOLS,
    tool_definitions,
)

EXPECTED = {
    "wait_for",
    "search_market",
    "list_candidates",
    "choose_quote",
    "place_order",
    "pay_order",
    "adopt_payment",
    "execute_order",
    "order_status",
    "confirm_order",
    "dispute_order",
    "cancel_order",
    "list_orders",
}


def _schema(fmt: str, definition: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if fmt == "openai":
        assert definition["type"] == "function"
        return definition["function"]["name"], definition["function"]["parameters"]
    if fmt == "anthropic":
        return definition["name"], definition["input_schema"]
    return definition["name"], definition["parameters"]


def _objects(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield path, schema
        for key, value in schema.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _objects(value, f"{path}/{i}")


def _property_names(schema: Any) -> Iterator[str]:
    for _, obj in _objects(schema):
        yield from obj.get("properties", {})


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_schema_is_valid_draft_2020_12_and_closed(fmt: str) -> None:
    definitions = tool_definitions(fmt)
    names = set()
    for definition in definitions:
        name, schema = _schema(fmt, definition)
        names.add(name)
        assert definition.get("description") or definition.get("function", {}).get("description")
        # Checked against the Draft 2020-12 meta-schema, and usable as a validator.
        jsonschema.Draft202012Validator.check_schema(schema)
        declared = schema.get("$schema")
        assert (
            declared is None or jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
        )
        assert schema["type"] == "object"
        for where, obj in _objects(schema):
            assert obj.get("additionalProperties") is False, (name, where)
    assert names == EXPECTED


def test_json_schema_format_names_its_dialect() -> None:
    for definition in tool_definitions("json_schema"):
        schema = definition["parameters"]
        assert schema["$schema"] == SCHEMA_DIALECT
        assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_no_tool_takes_an_amount_a_payee_a_token_or_a_rail() -> None:
    for tool in TOOLS:
        assert not set(_property_names(tool.parameters)) & FORBIDDEN_KEYS, tool.name


def test_formats_differ_only_in_shape_and_are_fresh_copies() -> None:
    openai = tool_definitions("openai")
    anthropic = tool_definitions("anthropic")
    for a, b in zip(openai, anthropic, strict=True):
        assert a["function"]["name"] == b["name"]
        assert a["function"]["parameters"] == b["input_schema"]
    openai[0]["function"]["parameters"]["properties"].clear()
    assert tool_definitions("openai")[0]["function"]["parameters"]["properties"]


def test_agent_tools_match_the_module_and_unknown_formats_are_refused(tmp_path: Any) -> None:
    agent = BuyerAgent(state_dir=tmp_path)
    for fmt in FORMATS:
        assert agent.tools(fmt) == tool_definitions(fmt)
    assert agent.tools() == tool_definitions("openai")
    with pytest.raises(ValueError, match="unknown tool format"):
        agent.tools("gemini")


def test_step_tools_and_error_codes_are_consistent() -> None:
    assert set(STEP_TOOLS.values()) <= EXPECTED
    assert {"ARGUMENT_REFUSED", "NOT_ELIGIBLE", "STEP_OUT_OF_ORDER", "UNKNOWN_TOOL"} <= set(ERROR_CODES)


def test_exports_are_sorted_and_complete() -> None:
    module = importlib.import_module("buyer_agent.tools")
    exported = list(module.__all__)
    assert exported == sorted(exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", "").startswith("buyer_agent.tools")
        and not isinstance(v, type(importlib))
    }
    assert public <= set(exported)
    for name in exported:
        assert hasattr(module, name), name
