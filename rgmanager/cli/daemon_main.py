"""rgmanager: the resource group manager daemon (foreground; systemd runs it)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..daemon import DEFAULT_CONF, Daemon, Options, StartupError


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rgmanager", description=__doc__)
    p.add_argument("-c", "--config", default=None,
                   help=f"cluster.conf (default $RGMANAGER_CONF or {DEFAULT_CONF})")
    p.add_argument("--node", help="this node's name in cluster.conf (default: the only node, "
                   "or the host name)")
    p.add_argument("--backend", default="local", choices=["local"],
                   help="cluster backend (default: local, the embedded single node)")
    p.add_argument("--socket", help="control socket path (default /var/run/cluster/"
                   "rgmanager.sock or $RGMANAGER_SOCKET)")
    p.add_argument("--agent-dir", action="append", default=[], help="extra agent directory")
    p.add_argument("-N", dest="no_stop", action="store_true",
                   help="do not stop services at startup (rgmanager's -N)")
    p.add_argument("-f", "--foreground", action="store_true",
                   help="accepted for compatibility; the daemon always runs in the foreground")
    args = p.parse_args(argv)
    conf = args.config or os.environ.get("RGMANAGER_CONF") or DEFAULT_CONF
    try:
        daemon = Daemon(Options(conf=conf, node=args.node, backend=args.backend,
                                socket=args.socket, agent_dirs=args.agent_dir,
                                stop_at_startup=not args.no_stop))
    except StartupError as err:
        print(f"rgmanager: {err}", file=sys.stderr)
        return 2
    daemon.install_signals()
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
