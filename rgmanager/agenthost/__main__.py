"""``python -m rgmanager.agenthost FD``: one agent host worker (started by the pool)."""

from .worker import main

main()
