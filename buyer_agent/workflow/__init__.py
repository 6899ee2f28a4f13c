"""buyer_agent.workflow."""

__all__: list[str] = []
