"""buyer_agent.testing."""

__all__: list[str] = []
