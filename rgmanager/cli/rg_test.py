"""rg_test: try a configuration without a cluster (rgmanager-compatible).

    rg_test [AGENTDIR] rules
    rg_test test CONF [start|stop|status TYPE NAME]
    rg_test noop CONF start|stop|status TYPE NAME
    rg_test delta CONF1 CONF2
    rg_test simulate CONF [--state FILE] [--event E]... [--explain] [--save-state FILE]
                          [--no-auto-fence] [--no-fencing]
    rg_test schema

Common options (--json, --debug) go before or after the subcommand.

A configuration fragment in the style of rgmanager's own test files (a
bare <cluster> without name, config_version or clusternodes) is accepted
here, with a W_FRAGMENT warning naming what is missing; the daemon still
requires them.

simulate plans as the cluster does with fencing: a node lost while it runs
a service is fenced before the service starts elsewhere. The dry run
assumes every fence succeeds right after the loss (printing "NODE fenced
(dry run: fencing assumed to succeed)"), in a partition with quorum;
--no-auto-fence turns that off, so the services stay "recovering" (reason
"awaiting fence of NODE") until an event fenced:NODE says the node is off,
as a fence agent or 'clusvcadm --fence-ack NODE' would in a cluster. A
lost node that rejoins before it is fenced is still waited for (it may never
have stopped what it ran); fencing it reboots it. --no-fencing plans without
fencing: a lost node counts as fenced at once.

Exit codes: 0 fine; 1 the configuration loaded with warnings, e.g. a
fragment (for "test CONF", which prints it; an operation exits with the
operation's outcome), or a status check failed; 2 it was rejected
(errors); 64 bad command line (a missing or unknown argument, a bad
--event, an agent directory that does not exist);
65 a simulate --state/--save-state file cannot be used (unreadable, not a
saved state, or saved from a configuration with other nodes); 70 internal
error (a bug: one line on stderr, no traceback); 255 an operation failed or
the named resource does not exist (as rgmanager).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..agents.discovery import RuleSet, default_agent_dirs, load_rules
from ..cluster.base import Membership
from ..config.schema import generate_grammar
from ..errors import EXIT_ERRORS, ConfigError, exit_code
from ..loader import Loaded, load
from ..state import Table
from ..tree.delta import diff
from ..tree.model import Node as TreeNode
from ..tree.order import start_order, stop_order
from .common import dump_json, print_reports
from .render import (
    changed_attr_text,
    dry_run_json,
    dry_run_text,
    redact_changes,
    rule_json,
    rules_text,
    test_json,
    test_text,
)

EXIT_OP_FAILED = 255
#: Bad command line (sysexits EX_USAGE): not 2, which means "configuration rejected".
EXIT_USAGE = 64
#: A simulate --state/--save-state file cannot be used (sysexits EX_DATAERR).
EXIT_DATA = 65
#: An unexpected exception, i.e. a bug (sysexits EX_SOFTWARE): not 1, which means "warnings".
EXIT_INTERNAL = 70
OPS = ("start", "stop", "status")
COMMANDS = ("rules", "schema", "test", "noop", "delta", "simulate")


class UsageError(Exception):
    """A bad command line: one message on stderr, exit :data:`EXIT_USAGE`."""


class DataError(Exception):
    """A --state/--save-state file that cannot be used: exit :data:`EXIT_DATA`."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad command line; 2 means "configuration rejected" here."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser, top: bool) -> None:
    """Options accepted before and after the subcommand (``rg_test test CONF --json``).

    On subcommands the default is SUPPRESS so that an option given before the
    subcommand is not reset by the subcommand's own default.
    """
    default: Any = False if top else argparse.SUPPRESS
    p.add_argument("--json", action="store_true", default=default,
                   help="machine-readable output")
    p.add_argument("--debug", action="store_true", default=default, help="log agent calls")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rg_test", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent-dir", action="append", default=[],
                   help="extra agent directory (after the project's resource-agents/)")
    _common(p, top=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rules", help="print the loaded resource rules")
    _common(r, top=False)
    g = sub.add_parser("schema", help="print the generated RelaxNG grammar "
                       "(--json: {\"format\": \"relaxng\", \"grammar\": TEXT})")
    _common(g, top=False)
    t = sub.add_parser("test", help="print resources and trees, or run an operation")
    _common(t, top=False)
    t.add_argument("conf")
    t.add_argument("op", nargs="?", choices=OPS)
    t.add_argument("type", nargs="?")
    t.add_argument("name", nargs="?")
    t.add_argument("--depth", type=int, default=0, help="status depth (OCF_CHECK_LEVEL)")
    n = sub.add_parser("noop", help="print the operations an action would run")
    _common(n, top=False)
    n.add_argument("conf")
    n.add_argument("op", choices=OPS)
    n.add_argument("type")
    n.add_argument("name")
    d = sub.add_parser("delta", help="what changes between two configurations")
    _common(d, top=False)
    d.add_argument("conf1")
    d.add_argument("conf2")
    s = sub.add_parser("simulate", help="what the cluster would do on events (touches nothing)")
    _common(s, top=False)
    s.add_argument("conf")
    s.add_argument("--state", help="starting state (JSON, as written by --save-state); "
                   "default: all nodes online, autostart services placed")
    s.add_argument("--event", action="append", default=[], metavar="E",
                   help="repeatable, applied in order: node-down:N node-up:N fenced:N fail:RES "
                   "wait:SECS enable:S[:N|:-F] disable:S relocate:S[:N] migrate:S[:N] "
                   "restart:S stop:S "
                   "freeze:S unfreeze:S convalesce:S start-fail:S:N stop-fail:S:N")
    s.add_argument("--no-auto-fence", dest="auto_fence", action="store_false",
                   help="do not fence a lost node automatically: its services wait "
                   "(recovering) until an event fenced:N")
    s.add_argument("--no-fencing", dest="fencing", action="store_false",
                   help="plan without fencing (a lost node counts as fenced at once)")
    s.add_argument("--explain", action="store_true",
                   help="show every candidate node and why it was chosen or not")
    s.add_argument("--save-state", metavar="FILE", help="write the final state here")
    return p


def _split_agentdir(argv: list[str]) -> tuple[list[str], list[str]]:
    """rgmanager allowed ``rg_test AGENTDIR rules``; keep that working.

    The first word is an agent directory when it is not a subcommand and a
    subcommand follows it, so a directory called ``test`` (or ``rules``...) in
    the current directory never shadows the subcommand, and a mistyped
    directory is reported as such instead of as an unknown subcommand.
    """
    if (len(argv) >= 2 and not argv[0].startswith("-") and argv[0] not in COMMANDS
            and argv[1] in COMMANDS):
        _check_agent_dir(argv[0])
        return [os.path.abspath(argv[0])], argv[1:]
    return [], argv


def _check_agent_dir(path: str) -> None:
    if not os.path.exists(path):
        raise UsageError(f"agent directory {path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"agent directory {path} is not a directory")


def _load_rules(args: argparse.Namespace) -> RuleSet:
    dirs = default_agent_dirs(args.agent_dir)
    print(f"Using {':'.join(dirs)} as resource agent path", file=sys.stderr)
    print("Running in test mode.", file=sys.stderr)
    rules = load_rules(dirs)
    print(f"Loaded {len(rules)} resource rules", file=sys.stderr)
    return rules


def _load(path: str, rules: RuleSet, as_json: bool) -> Loaded | int:
    """Load ``path`` (fragments allowed), then freeze what was loaded.

    The loaded model is millions of long-lived objects at 50,000 resources.
    The load itself runs with the cyclic collector paused (``loader``);
    ``gc.freeze()`` then moves what it built out of the collector's
    generations, so that the allocations that follow (rendering) do not
    trigger full collections that walk it again and again (what made rg_test
    slower than linear past 10,000 resources). rg_test keeps what it loaded
    until it exits, so nothing is lost by never collecting it. (The daemon
    does not freeze: a reload must free the configuration it replaces.)
    """
    try:
        loaded = load(path, rules, allow_fragment=True)
    except ConfigError as err:
        print_reports(err.reports, as_json)
        return EXIT_ERRORS
    gc.freeze()
    if loaded.reports and not as_json:
        print_reports(loaded.reports)
    return loaded


def _targets(loaded: Loaded, type_: str, name: str) -> list[TreeNode]:
    name = name.removeprefix(f"{type_}:")
    return loaded.forest.find(type_, name)


def _steps(targets: list[TreeNode], op: str) -> list[TreeNode]:
    out: list[TreeNode] = []
    for tree_node in targets:
        out += stop_order(tree_node) if op == "stop" else start_order(tree_node)
    return [t for t in out if t.rule.has_action(op)]


def cmd_noop(args: argparse.Namespace, rules: RuleSet) -> int:
    loaded = _load(args.conf, rules, args.json)
    if isinstance(loaded, int):
        return loaded
    targets = _targets(loaded, args.type, args.name)
    if not targets:
        print(f"No resource {args.name} of type {args.type} found", file=sys.stderr)
        return EXIT_OP_FAILED
    steps = _steps(targets, args.op)
    if args.json:
        dump_json({"resource": f"{args.type}:{args.name}", "operation": args.op,
                   "steps": [{"op": args.op, "resource": t.name, "path": t.path}
                             for t in steps]})
        return 0
    verb = {"start": ("Starting", "Start"), "stop": ("Stopping", "Stop"),
            "status": ("Checking status of", "Status check")}[args.op]
    print(f"{verb[0]} {args.name}...")
    for t in steps:
        print(f"[{args.op}] {t.name}")
    print(f"{verb[1]} of {args.name} complete")
    return 0


def cmd_op(args: argparse.Namespace, rules: RuleSet, loaded: Loaded) -> int:
    from ..treeops import TreeOps  # the executor is only needed here

    targets = _targets(loaded, args.type, args.name)
    if not targets:
        print(f"No resource {args.name} of type {args.type} found", file=sys.stderr)
        return EXIT_OP_FAILED
    ops = TreeOps(enforce_timeouts=loaded.config.rm.enforce_timeouts)
    name = args.name
    # rgmanager's progress lines; with --json stdout carries the JSON document only.
    say: Callable[[str], object] = (lambda _line: None) if args.json else print
    records = []
    ok = True
    if args.op == "start":
        say(f"Starting {name}...")
        for tree_node in targets:
            res = ops.start(tree_node)
            records += res.records
            ok = ok and res.ok
        say(f"Start of {name} complete" if ok else f"Failed to start {name}")
    elif args.op == "stop":
        say(f"Stopping {name}...")
        for tree_node in targets:
            res = ops.stop(tree_node)
            records += res.records
            ok = ok and res.ok
        if ok:
            say(f"Stop of {name} complete")
    else:
        say(f"Checking status of {name}...")
        for tree_node in targets:
            res = ops.status(tree_node, args.depth)
            records += res.records
            ok = ok and res.ok
        say(f"Status of {name} is good" if ok else f"Status check of {name} failed")
    if args.json:
        dump_json({"resource": f"{args.type}:{name}", "operation": args.op, "ok": ok,
                   "steps": [{"op": r.action, "resource": r.node.name,
                              "rc": None if r.result is None else r.result.rc}
                             for r in records]})
    if ok:
        return 0
    return 1 if args.op == "status" else EXIT_OP_FAILED


def cmd_test(args: argparse.Namespace, rules: RuleSet) -> int:
    loaded = _load(args.conf, rules, args.json)
    if isinstance(loaded, int):
        return loaded
    if args.op:
        if not (args.type and args.name):
            raise UsageError("rg_test test CONF OP TYPE NAME: TYPE and NAME are required")
        return cmd_op(args, rules, loaded)
    if args.json:
        data = test_json(loaded.config, loaded.forest)
        data["reports"] = [r.as_dict() for r in loaded.reports]
        dump_json(data)
    else:
        sys.stdout.write(test_text(loaded.config, loaded.forest))
    return exit_code(loaded.reports)


def cmd_delta(args: argparse.Namespace, rules: RuleSet) -> int:
    old = _load(args.conf1, rules, args.json)
    if isinstance(old, int):
        return old
    new = _load(args.conf2, rules, args.json)
    if isinstance(new, int):
        return new
    d = diff(old.forest, new.forest)
    if args.json:
        data = d.as_dict()
        data["resources"]["changed"] = redact_changes(d.resources_changed)  # type: ignore[index]
        dump_json(data)
        return 0
    def section(title: str, items: list[str]) -> None:
        print(f"=== {title} ===")
        for i in items:
            print(f"  {i}")
    section("Resources added", d.resources_added)
    section("Resources removed", d.resources_removed)
    print("=== Resources changed ===")
    for name, changes in d.resources_changed.items():
        for attr, (a, b) in changes.items():
            print(f"  {changed_attr_text(name, attr, a, b)}")
    section("Services added (need start)", d.services_added)
    section("Services removed (need stop)", d.services_removed)
    print("=== Services changed ===")
    for sd in d.services_changed:
        print(f"  {sd.name}")
        for n in sd.stop:
            print(f"    [stop] {n}")
        for n in sd.start:
            print(f"    [start] {n}")
        for n in sd.reconfig:
            print(f"    [reconfig] {n}")
    if d.empty:
        print("No changes")
    return 0


def _read_state(path: str, conf: str, loaded: Loaded
                ) -> tuple[Table, Membership, float | None]:
    """``--state``: the saved table, refused (:class:`DataError`, naming the file) if
    unreadable, not a saved state, or saved from a configuration with other nodes."""
    from ..planner.dryrun import state_from_json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise DataError(f"--state {path}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"--state {path}: not a saved state (not JSON: {err})") from None
    if not isinstance(data, dict):
        raise DataError(f"--state {path}: not a saved state (expected a JSON object, "
                        f"got {type(data).__name__})")
    try:
        table, members, clock = state_from_json(data)
    except ValueError as err:
        raise DataError(f"--state {path}: {err}") from None
    configured = [member.name for member in loaded.config.nodes]
    seen = set(members.members) | set(table.members)
    for ss in table:
        seen.update(n for n in (ss.owner, ss.last_owner, ss.target, ss.relocating_from,
                                ss.request_origin) if n)
        seen.update(ss.tried)
    unknown = sorted(seen - set(configured))
    if unknown:
        raise DataError(
            f"--state {path}: saved from another configuration: "
            f"node{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"{'are' if len(unknown) > 1 else 'is'} not in {conf} "
            f"(its nodes: {', '.join(configured) or 'none'})")
    return table, members, clock


def cmd_simulate(args: argparse.Namespace, rules: RuleSet) -> int:
    """A dry run through the same planner the daemon uses (rgmanager.planner.dryrun)."""
    from ..planner.dryrun import START_TIME, Quorum, dry_run, initial, state_to_json
    from ..planner.dryrun_lang import check_events, parse_event

    try:  # a bad --event is a command-line error: say so before loading anything
        events = [parse_event(e) for e in args.event]
    except ValueError as err:
        raise UsageError(str(err)) from None
    loaded = _load(args.conf, rules, args.json)
    if isinstance(loaded, int):
        return loaded
    model = loaded.plan_model(fencing=args.fencing)
    quorum = Quorum.from_config(loaded.config)
    try:
        check_events(model, events)
    except ValueError as err:
        raise UsageError(f"{err} (in {args.conf})") from None
    if args.state:
        table, members, clock = _read_state(args.state, args.conf, loaded)
    else:
        table, members = initial(model, [member.name for member in loaded.config.nodes],
                                 quorum=quorum)
        clock = None
    result = dry_run(model, table, members, events, args.explain, quorum=quorum,
                     clock=max(clock or 0.0, START_TIME), auto_fence=args.auto_fence)
    if args.save_state:
        try:
            with open(args.save_state, "w", encoding="utf-8") as f:
                json.dump(state_to_json(result.table, result.membership, result.clock),
                          f, indent=2)
                f.write("\n")
        except OSError as err:
            raise DataError(f"--save-state {args.save_state}: {err.strerror or err}") from None
    if args.json:
        dump_json(dry_run_json(result))
    else:
        sys.stdout.write(dry_run_text(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring).

    Usage errors exit 64, unusable state files 65; any other exception is a
    bug: one line naming the operation and the error, exit 70, no traceback
    (``--debug`` logs the traceback).
    """
    words = list(sys.argv[1:] if argv is None else argv)
    cmd = next((w for w in words if w in COMMANDS), "rg_test")
    try:
        return _main(words)
    except UsageError as err:
        print(f"rg_test: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DataError as err:
        print(f"rg_test {cmd}: {err}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print(f"rg_test {cmd}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug; never a traceback, never 1 ("warnings")
        logging.getLogger("rg_test").debug("internal error", exc_info=True)
        print(f"rg_test {cmd}: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_INTERNAL


def _main(words: list[str]) -> int:
    extra_dirs, rest = _split_agentdir(words)
    args = _parser().parse_args(rest)
    for d in args.agent_dir:
        _check_agent_dir(d)
    args.agent_dir = extra_dirs + args.agent_dir
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    rules = _load_rules(args)
    if args.cmd == "rules":
        if args.json:
            dump_json([rule_json(r) for r in rules])
        else:
            sys.stdout.write(rules_text(rules))
        return 0
    if args.cmd == "schema":
        if args.json:
            dump_json({"format": "relaxng", "grammar": generate_grammar(rules)})
        else:
            sys.stdout.write(generate_grammar(rules))
        return 0
    if args.cmd == "noop":
        return cmd_noop(args, rules)
    if args.cmd == "test":
        return cmd_test(args, rules)
    if args.cmd == "simulate":
        return cmd_simulate(args, rules)
    return cmd_delta(args, rules)


if __name__ == "__main__":
    sys.exit(main())
