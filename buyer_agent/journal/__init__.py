"""buyer_agent.journal."""

__all__: list[str] = []
