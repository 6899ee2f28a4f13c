"""buyer_agent.market."""

__all__: list[str] = []
