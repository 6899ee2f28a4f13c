"""``python -m buyer_agent``: the command line."""

from buyer_agent.cli import main

raise SystemExit(main())
