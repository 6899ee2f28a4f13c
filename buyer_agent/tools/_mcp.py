"""The buyer's tools over the Model Context Protocol (stdio), with the official ``mcp`` package."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from buyer_agent._version import __version__
from buyer_agent.tools._schemas import TOOLS

if TYPE_CHECKING:
    from buyer_agent.agent import BuyerAgent

__all__ = ["MCP_MISSING", "build_server", "serve_stdio"]

log = logging.getLogger(__name__)

#: What to tell a user whose environment lacks the optional ``mcp`` package.
MCP_MISSING = "the MCP server needs the mcp package: pip install 'buyer-agent[mcp]'"

_INSTRUCTIONS = (
    "A buyer agent for peaqOS Machine Markets. Buy a service in this order: search_market (starts an "
    "order), list_candidates, choose_quote, place_order, pay_order, execute_order, then confirm_order "
    "(or dispute_order with a reason). Budget, payee, amount, token and rail are fixed by the agent's "
    "configuration, the quote and the payment intent; they are never arguments. Every result lists "
    "the tools allowed next; an error says what to do instead."
)


def _mcp() -> tuple[Any, Any]:
    try:
        import mcp_types
        from mcp.server.lowlevel import Server
    except ImportError as exc:
        raise ImportError(MCP_MISSING) from exc
    return Server, mcp_types


def build_server(agent: BuyerAgent) -> Any:
    """An ``mcp`` low-level ``Server`` whose tools are the agent's (``tools/list``, ``tools/call``).

    A tool's structured error comes back as a result with ``isError`` set, so the model sees the
    code, the message and the hint, as MCP asks for tool errors.

    Raises:
        ImportError: The ``mcp`` package is not installed (message says how to install it).
    """
    server_cls, types = _mcp()
    tools = [
        types.Tool(
            name=t.name,
            description=t.description,
            input_schema=dict(t.parameters),
            annotations=types.ToolAnnotations(read_only_hint=t.read_only),
        )
        for t in TOOLS
    ]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> Any:
        result = await agent.call_tool(params.name, params.arguments)
        failed = "error" in result
        if failed:
            log.info("tool %s: %s", params.name, result["error"].get("code"))
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(result, ensure_ascii=False))],
            structured_content=result,
            is_error=failed,
        )

    return server_cls(
        "buyer-agent",
        version=__version__,
        instructions=_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(agent: BuyerAgent) -> None:
    """Serve the agent's tools over stdio until the client closes stdin; then close the agent.

    While serving, the ``mcp`` transport points the process's stdout at stderr, so nothing but
    protocol messages reaches the client (the embedded sandbox's chatter included).
    """
    server = build_server(agent)
    from mcp.server.stdio import stdio_server

    async with agent, stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
