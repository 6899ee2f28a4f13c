"""Whether a delivery is accepted: the outcome status, a JSON schema, or a user's callable."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import jsonschema

from buyer_agent.workflow._spec import Acceptance

__all__ = ["check_acceptance"]


def check_acceptance(acceptance: Acceptance, outcome: Mapping[str, Any]) -> str | None:
    """None when ``outcome`` is accepted, else the reason it is not.

    Args:
        acceptance: The order's acceptance rules.
        outcome: ``{status, result, ...}`` from the execution.
    """
    status = outcome.get("status")
    if status != acceptance.outcome:
        return f"outcome status {status!r} is not {acceptance.outcome!r}"
    result = outcome.get("result")
    if acceptance.json_schema is not None:
        try:
            jsonschema.validate(result, dict(acceptance.json_schema))
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "result"
            return f"result fails the JSON schema at {where}: {exc.message}"
        except jsonschema.SchemaError as exc:
            return f"the acceptance JSON schema is invalid: {exc.message}"
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
