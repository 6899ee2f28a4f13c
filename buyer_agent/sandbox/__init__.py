"""buyer_agent.sandbox."""

__all__: list[str] = []
