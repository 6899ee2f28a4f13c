"""buyer_agent.rails."""

__all__: list[str] = []
