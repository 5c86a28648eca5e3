"""rgmanager: the resource group manager daemon (foreground; systemd runs it).

Exit codes: 0 stopped cleanly (SIGTERM/SIGINT); 2 cannot start (configuration
rejected, unknown node, lock file or control socket unusable); 3 another
rgmanager already holds the lock file (nothing was touched).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..cluster import registry
from ..daemon import DEFAULT_CONF, Daemon, Options, StartupError
from ..pidlock import DEFAULT_LOCK, LOCK_ENV, AlreadyRunning

#: Exit code when another rgmanager holds the lock (rgmanager's own message, no traceback).
EXIT_ALREADY_RUNNING = 3
#: Exit code when the daemon cannot start (rejected configuration, unusable paths).
EXIT_STARTUP = 2


def write_corosync_conf(conf: str, out: str, key: str | None, agent_dirs: Sequence[str]
                        ) -> int:
    """cluster.conf -> corosync.conf; errors are one located line each."""
    from ..agents.discovery import default_agent_dirs, load_rules
    from ..corosync_conf import CorosyncConfError, render
    from ..errors import ConfigError
    from ..loader import load
    try:
        text = render(load(conf, load_rules(default_agent_dirs(agent_dirs))).config,
                      crypto_key_file=key)
    except ConfigError as err:
        for r in err.reports:
            print(r, file=sys.stderr)
        return EXIT_STARTUP
    except (CorosyncConfError, OSError) as err:
        print(f"rgmanager: {err}", file=sys.stderr)
        return EXIT_STARTUP
    if out == "-":
        sys.stdout.write(text)
        return 0
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        print(f"rgmanager: cannot write {out}: {err}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rgmanager", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=None,
                   help=f"cluster.conf (default $RGMANAGER_CONF or {DEFAULT_CONF})")
    p.add_argument("--node", help="this node's name in cluster.conf (default: the only node, "
                   "or the host name)")
    p.add_argument("--backend", default="local", choices=registry.names(),
                   help="cluster backend (default: local, the embedded single node; "
                   "corosync: join the rgmanager CPG group of the running corosync)")
    p.add_argument("--socket", help="control socket path (default /var/run/cluster/"
                   "rgmanager.sock or $RGMANAGER_SOCKET)")
    p.add_argument("--lock-file", metavar="PATH",
                   help=f"one-daemon-per-node lock/pid file (default ${LOCK_ENV} or "
                   f"{DEFAULT_LOCK}); a second rgmanager exits {EXIT_ALREADY_RUNNING} "
                   "without touching anything")
    p.add_argument("--agent-dir", action="append", default=[], help="extra agent directory")
    p.add_argument("-N", dest="no_stop", action="store_true",
                   help="do not stop services at startup (rgmanager's -N)")
    p.add_argument("-f", "--foreground", action="store_true",
                   help="accepted for compatibility; the daemon always runs in the foreground")
    p.add_argument("--write-corosync-conf", metavar="PATH",
                   help="write the corosync.conf for this cluster.conf to PATH ('-': "
                   "standard output) and exit, as cman did; 0 written, 2 rejected")
    p.add_argument("--corosync-key", metavar="FILE",
                   help="with --write-corosync-conf: enable crypto with this key file")
    args = p.parse_args(argv)
    conf = args.config or os.environ.get("RGMANAGER_CONF") or DEFAULT_CONF
    if args.write_corosync_conf:
        return write_corosync_conf(conf, args.write_corosync_conf, args.corosync_key,
                                   args.agent_dir)
    lock_file = args.lock_file or os.environ.get(LOCK_ENV) or DEFAULT_LOCK
    try:
        daemon = Daemon(Options(conf=conf, node=args.node, backend=args.backend,
                                socket=args.socket, agent_dirs=args.agent_dir,
                                stop_at_startup=not args.no_stop, lock_file=lock_file))
    except AlreadyRunning as err:
        print(err, file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except StartupError as err:
        print(f"rgmanager: {err}", file=sys.stderr)
        return EXIT_STARTUP
    daemon.install_signals()
    try:
        return daemon.run()
    except StartupError as err:
        print(f"rgmanager: {err}", file=sys.stderr)
        return EXIT_STARTUP


if __name__ == "__main__":
    sys.exit(main())
