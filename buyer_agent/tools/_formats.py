"""The tool definitions in the shapes LLM APIs take: OpenAI, Anthropic, or plain JSON Schema."""

from __future__ import annotations

import copy
from typing import Any, Literal

from buyer_agent.tools._schemas import SCHEMA_DIALECT, TOOLS, ToolSpec

__all__ = ["FORMATS", "ToolFormat", "tool_definitions"]

ToolFormat = Literal["openai", "anthropic", "json_schema"]

#: The formats :func:`tool_definitions` knows.
FORMATS: tuple[str, ...] = ("openai", "anthropic", "json_schema")


def _openai(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": copy.deepcopy(dict(tool.parameters)),
        },
    }


def _anthropic(tool: ToolSpec) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": copy.deepcopy(dict(tool.parameters)),
    }


def _json_schema(tool: ToolSpec) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": {"$schema": SCHEMA_DIALECT, **copy.deepcopy(dict(tool.parameters))},
    }


_SHAPES = {"openai": _openai, "anthropic": _anthropic, "json_schema": _json_schema}


def tool_definitions(format: ToolFormat | str = "openai") -> list[dict[str, Any]]:
    """Every tool's definition, ready to hand to a model API (fresh copies, safe to modify).

    Args:
        format: ``"openai"`` (chat-completions ``tools``: ``{"type": "function", "function": {...}}``),
            ``"anthropic"`` (Messages API ``tools``: ``{"name", "description", "input_schema"}``) or
            ``"json_schema"`` (``{"name", "description", "parameters"}`` with ``$schema`` set to
            Draft 2020-12).

    Raises:
        ValueError: An unknown format.
    """
    shape = _SHAPES.get(format)
    if shape is None:
        raise ValueError(f"unknown tool format {format!r}; use one of {', '.join(FORMATS)}")
    return [shape(tool) for tool in TOOLS]
