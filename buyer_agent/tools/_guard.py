"""The argument guard: parse what the model sent, refuse money fields and extras, check the schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from buyer_agent.tools._results import tool_error
from buyer_agent.tools._schemas import FORBIDDEN_KEYS, INPUT_REFUSED_KEYS, ToolSpec

__all__ = ["check_arguments"]

_MAX_TEXT = 64_000
_INPUT_REFUSED_LOWER = frozenset(k.lower() for k in INPUT_REFUSED_KEYS)
#: How much of a refused value an error echoes: enough to recognise it, never enough to hide the reason.
_ECHO = 40
_MAX_MESSAGE = 400
_MONEY_HINT = (
    "amounts, payees, tokens and rails come only from the quote, the market's payment intent and the "
    "agent's budget and policy; call the tool with only its documented arguments"
)


@cache
def _validator(name: str, schema_json: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_json)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _parse(arguments: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(arguments, None)`` or ``({}, a tool error)``; JSON text is parsed (floats as Decimal)."""
    if arguments is None:
        return {}, None
    if isinstance(arguments, bytes | bytearray):
        try:
            arguments = arguments.decode("utf-8")
        except UnicodeDecodeError:
            return {}, tool_error(
                "INVALID_ARGUMENTS", "the arguments are not UTF-8 text", "send a JSON object"
            )
    if isinstance(arguments, str):
        if len(arguments) > _MAX_TEXT:
            return {}, tool_error(
                "INVALID_ARGUMENTS", "the arguments are too long", "send a small JSON object"
            )
        if not arguments.strip():
            return {}, None
        try:
            arguments = json.loads(arguments, parse_float=Decimal)
        except (ValueError, RecursionError) as exc:
            return {}, tool_error(
                "INVALID_ARGUMENTS", f"the arguments are not valid JSON: {exc}"[:300], "send a JSON object"
            )
    if not isinstance(arguments, Mapping):
        return {}, tool_error(
            "INVALID_ARGUMENTS",
            f"the arguments must be a JSON object, not {type(arguments).__name__}",
            "send a JSON object with the tool's documented arguments",
        )
    if not all(isinstance(k, str) for k in arguments):
        return {}, tool_error("INVALID_ARGUMENTS", "argument names must be strings", "send a JSON object")
    return dict(arguments), None


def _reason(error: jsonschema.ValidationError) -> str:
    """The schema's reason, with a long offending value shortened so the reason itself is kept."""
    message = str(error.message)
    shown = repr(error.instance)
    if len(shown) > _ECHO and shown in message:
        message = message.replace(shown, f"{shown[:_ECHO]}… ({len(shown)} characters)", 1)
    return message


def _field(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<arguments>"


def check_arguments(spec: ToolSpec, arguments: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(validated arguments, None)`` for a call to ``spec``, or ``({}, {"error": ...})`` when refused.

    Extra keys are refused before the schema is consulted, so the error names them plainly:
    ``ARGUMENT_REFUSED`` for any key the tool does not take (and a pointed message when it names
    money or a payee); ``INVALID_ARGUMENTS`` for a value that breaks the schema.
    """
    parsed, refused = _parse(arguments)
    if refused is not None:
        return {}, refused
    allowed = set(spec.parameters.get("properties", {}))
    extra = sorted(set(parsed) - allowed)
    if extra:
        money = [k for k in extra if k in FORBIDDEN_KEYS or k.lower() in FORBIDDEN_KEYS]
        if money:
            message = (
                f"{spec.name} refuses {', '.join(map(repr, money))}: the model never sets an amount, a "
                "payee, a token or a rail"
            )
        else:
            message = f"{spec.name} does not take {', '.join(map(repr, extra))}"
        return {}, tool_error(
            "ARGUMENT_REFUSED", message, _MONEY_HINT, refused=extra, accepted=sorted(allowed)
        )
    service_input = parsed.get("input")
    if isinstance(service_input, Mapping):
        money_in = sorted(str(k) for k in service_input if str(k).lower() in _INPUT_REFUSED_LOWER)
        if money_in:
            return {}, tool_error(
                "ARGUMENT_REFUSED",
                f"{spec.name}: the service input may not carry {', '.join(map(repr, money_in))}: "
                "the model never sets an amount, a payee, a token or a rail",
                _MONEY_HINT,
                field="input",
                refused=money_in,
            )
    validator = _validator(spec.name, json.dumps(spec.parameters, sort_keys=True))
    try:
        error = best_match(validator.iter_errors(parsed))
    except Exception as exc:  # values no JSON parser makes (a model loop passing objects)
        return {}, tool_error(
            "INVALID_ARGUMENTS", f"the arguments cannot be checked: {type(exc).__name__}", "send plain JSON"
        )
    if error is None:
        return parsed, None
    field = _field(error)
    return {}, tool_error(
        "INVALID_ARGUMENTS",
        f"{spec.name}: {field}: {_reason(error)}"[:_MAX_MESSAGE],
        "fix that argument (see the tool's parameters) and call again",
        field=field,
    )
