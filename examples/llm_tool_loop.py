"""BuyerAgent inside an LLM tool loop, in the OpenAI chat-completions tool-calling format.

The model proposes, the framework decides: the model sees the buyer's tools (search, list the
candidates, choose, order, pay, execute, confirm or dispute) and calls them; the budget, the
payee, the amount, the token and the rail come from the task file, the quote and the payment
intent, never from the model. A refused call comes back as ``{"error": {...}}`` the model reads.

    python examples/llm_tool_loop.py                       # offline: a scripted model, embedded sandbox
    OPENAI_API_KEY=sk-... python examples/llm_tool_loop.py --model gpt-4o-mini   # a real model

Offline, a scripted stand-in emits the tool calls a model would (including one it gets refused
for, to show the recovery). With ``OPENAI_API_KEY`` set and the ``openai`` package installed, a
real model drives the same loop. Exit code 0 when the order ends ``confirmed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from buyer_agent import BuyerAgent, load_task

HERE = Path(__file__).resolve().parent
SYSTEM = (
    "You are the purchasing agent of a machine. Buy the service the user asks for on the market with "
    "the tools: search_market, list_candidates, choose_quote, place_order, pay_order, execute_order, "
    "then confirm_order if the outcome is right (dispute_order otherwise). Every tool result lists the "
    "tools allowed next. You never set prices, amounts or payees: the framework does."
)
USER = "Hash the text in the task's input with SHA-256, within the configured budget."


class ChatModel(Protocol):
    """Anything that answers a chat-completions request with one assistant message (a dict)."""

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The next assistant message: ``content`` and/or ``tool_calls``."""
        ...


def _tool_call(n: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{n}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }


class ScriptedModel:
    """A stand-in for a model: reads the last tool result and emits the call a model would make next.

    It also tries once to set the amount itself, as a prompt-injected model might, and recovers
    from the refusal.
    """

    def __init__(self) -> None:
        self.turn = 0
        self.tried_injection = False

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The next assistant message, decided from the conversation so far."""
        self.turn += 1
        last_call, result = _last_exchange(messages)
        if last_call is None:
            return _tool_call(self.turn, "search_market", {})
        name = last_call["function"]["name"]
        order_id = result.get("order_id") or json.loads(last_call["function"]["arguments"]).get("order_id")
        if "error" in result:
            error = result["error"]
            if error["code"] == "ARGUMENT_REFUSED" and order_id:
                # Read the refusal, drop the field the framework owns, call again.
                return _tool_call(self.turn, name, {"order_id": order_id})
            return {"role": "assistant", "content": f"I stopped: {error['code']}: {error['message']}"}
        if name == "search_market":
            return _tool_call(self.turn, "list_candidates", {"order_id": order_id})
        if name == "list_candidates":
            if not result.get("recommended"):
                return {
                    "role": "assistant",
                    "content": "No eligible quote within the budget; nothing bought.",
                }
            return _tool_call(
                self.turn, "choose_quote", {"order_id": order_id, "quote_id": result["recommended"]}
            )
        if name == "choose_quote" and not self.tried_injection:
            self.tried_injection = True
            return _tool_call(self.turn, "place_order", {"order_id": order_id, "amount": "0.01"})
        state = result.get("state")
        if state == "executed":
            outcome = result.get("outcome") or {}
            if outcome.get("status") == "completed":
                return _tool_call(self.turn, "confirm_order", {"order_id": order_id})
            return _tool_call(self.turn, "dispute_order", {"order_id": order_id, "reason": "not completed"})
        for step in ("place_order", "pay_order", "execute_order"):
            if step in result.get("next", ()):
                return _tool_call(self.turn, step, {"order_id": order_id})
        payment = result.get("payment") or {}
        return {
            "role": "assistant",
            "content": f"Order {order_id} is {state}; paid {payment.get('amount')} {payment.get('currency')} "
            f"(tx {payment.get('tx')}).",
        }


def _last_exchange(messages: Sequence[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The last tool call and its (parsed) result, or ``(None, {})`` before any."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if msg["role"] == "tool":
            for prev in reversed(messages[:i]):
                for call in prev.get("tool_calls") or ():
                    if call["id"] == msg["tool_call_id"]:
                        return call, json.loads(msg["content"])
    return None, {}


class OpenAIModel:
    """A real model through the ``openai`` package (chat completions with tools)."""

    def __init__(self, model: str) -> None:
        import openai  # type: ignore[import-not-found, unused-ignore]  # only for a real model

        self.client = openai.AsyncOpenAI()
        self.model = model

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """One chat-completions call; the assistant message as a dict."""
        response = await self.client.chat.completions.create(model=self.model, messages=messages, tools=tools)
        message: dict[str, Any] = response.choices[0].message.model_dump(exclude_none=True)
        return message


async def run_loop(agent: BuyerAgent, model: ChatModel, request: str, *, max_turns: int = 20) -> str:
    """Let ``model`` buy through ``agent``'s tools until it answers in words; return the answer."""
    tools = agent.tools("openai")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": request},
    ]
    for _ in range(max_turns):
        message = await model.complete(messages, tools)
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            return str(message.get("content") or "")
        for call in calls:
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            # Never raises: a refused or failed call is a result the model reads.
            result = await agent.call_tool(name, arguments)
            shown = result["error"]["code"] if "error" in result else result.get("state", "ok")
            print(f"  {name}({arguments}) -> {shown}", file=sys.stderr)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)})
    return "stopped: too many turns"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one purchase through the loop; 0 when the order ends confirmed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--task", default=str(HERE / "task.yaml"), help="the task file (budget, rail, …)")
    parser.add_argument("--state-dir", default=None, help="where the journal lives")
    parser.add_argument("--model", default="gpt-4o-mini", help="the OpenAI model, when OPENAI_API_KEY is set")
    args = parser.parse_args(argv)

    model: ChatModel = ScriptedModel()
    if os.environ.get("OPENAI_API_KEY"):
        try:
            model = OpenAIModel(args.model)
        except ImportError:
            print(
                "OPENAI_API_KEY is set but openai is not installed; using the scripted model", file=sys.stderr
            )

    async def go() -> int:
        async with BuyerAgent.from_task(load_task(args.task), state_dir=args.state_dir) as agent:
            before = {o.order_id for o in agent.orders()}
            answer = await run_loop(agent, model, USER)
            print(answer)
            placed = [o for o in agent.orders() if o.order_id not in before]
            return 0 if any(o.state.value == "confirmed" for o in placed) else 1

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
