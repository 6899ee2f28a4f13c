"""Whether a delivery is accepted: the outcome status, a JSON schema, or a user's callable."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from buyer_agent.workflow._spec import Acceptance

__all__ = ["check_acceptance"]


def check_acceptance(acceptance: Acceptance, outcome: Mapping[str, Any]) -> str | None:
    """None when ``outcome`` is accepted, else the reason it is not.

    Numbers in the result are exact (``Decimal`` for a fraction, ``int`` otherwise), and so are the
    schema's (a task file's numbers are read as Decimal): ``minimum`` and ``multipleOf`` compare
    exactly, and ``type: integer`` accepts an integral Decimal (``1200.0``) as JSON Schema does.

    Args:
        acceptance: The order's acceptance rules.
        outcome: ``{status, result, ...}`` from the execution.
    """
    status = outcome.get("status")
    if status != acceptance.outcome:
        return f"outcome status {status!r} is not {acceptance.outcome!r}"
    result = outcome.get("result")
    if acceptance.json_schema is not None:
        schema = _exact(acceptance.json_schema)
        cls = _validator(jsonschema.validators.validator_for(schema))
        try:
            cls.check_schema(schema)
            error = jsonschema.exceptions.best_match(cls(schema).iter_errors(result))
        except jsonschema.SchemaError as exc:
            return f"the acceptance JSON schema is invalid: {exc.message}"
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "result"
            return f"result fails the JSON schema at {where}: {error.message}"
    if acceptance.callable_path is not None:
        module_name, _, func_name = acceptance.callable_path.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            return f"acceptance callable {acceptance.callable_path!r} cannot be loaded: {exc}"
        verdict = func(result, dict(outcome))
        if isinstance(verdict, str):
            return verdict or "refused by the acceptance callable"
        if not verdict:
            return f"refused by {acceptance.callable_path}"
    return None


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    if isinstance(instance, Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    return isinstance(instance, float) and instance.is_integer()


@cache
def _validator(base: type[Validator]) -> type[Validator]:
    """``base`` (the schema's draft) whose ``integer`` also takes an integral Decimal."""
    checker = base.TYPE_CHECKER.redefine("integer", _is_integer)
    extended: type[Validator] = jsonschema.validators.extend(base, type_checker=checker)  # type: ignore[no-untyped-call]
    return extended


def _exact(value: Any) -> Any:
    """The schema with any float (a schema built in Python) read through its shortest text."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value
