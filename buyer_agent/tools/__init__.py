"""buyer_agent.tools: the buyer's work as LLM tools — definitions, argument guard, dispatcher, MCP.

``agent.tools(format)`` hands the definitions to a model API; ``await agent.call_tool(name,
arguments)`` runs what the model asked for and always answers with a JSON-safe dict: the result,
or ``{"error": {"code", "message", "hint", ...}}`` (codes in :data:`ERROR_CODES`).

The tools depend on the agent, never the reverse: importing this package attaches
:class:`AgentTools` as every agent's tool surface (``buyer_agent`` imports it, so it always is).
"""

from buyer_agent.agent import attach_tools
from buyer_agent.tools._dispatch import AgentTools
from buyer_agent.tools._formats import FORMATS, ToolFormat, tool_definitions
from buyer_agent.tools._mcp import MCP_MISSING, build_server, serve_stdio
from buyer_agent.tools._results import ERROR_CODES, STEP_TOOLS
from buyer_agent.tools._schemas import (
    FORBIDDEN_KEYS,
    INPUT_REFUSED_KEYS,
    MONEY_KEYS,
    SCHEMA_DIALECT,
    TOOLS,
    ToolSpec,
)

__all__ = [  # noqa: RUF022 - plain sorted(), as the export test checks
    "AgentTools",
    "ERROR_CODES",
    "FORBIDDEN_KEYS",
    "FORMATS",
    "INPUT_REFUSED_KEYS",
    "MCP_MISSING",
    "MONEY_KEYS",
    "SCHEMA_DIALECT",
    "STEP_TOOLS",
    "TOOLS",
    "ToolFormat",
    "ToolSpec",
    "build_server",
    "serve_stdio",
    "tool_definitions",
]

attach_tools(AgentTools)
