"""Rules as rgmanager's agents declare them (docs/rgmanager.md), independent of our agent files.

Ordering and validation tests use these so that they pin the documented
behaviour; tests/test_agent_rules.py checks our real agents declare the same.
"""

from __future__ import annotations

from rgmanager.agents.discovery import RuleSet
from rgmanager.agents.rules import ActionRule, ChildRule, ParamRule, ResourceRule

ACTIONS = (ActionRule("start", 20), ActionRule("stop", 20), ActionRule("status", 10, 30, 0),
           ActionRule("status", 20, 60, 10))


def P(name: str, **kw: object) -> ParamRule:  # noqa: N802
    return ParamRule(name, **kw)  # type: ignore[arg-type]


def rule(type_: str, params: tuple[ParamRule, ...], children: tuple[ChildRule, ...] = (),
         maxinstances: int = 0) -> ResourceRule:
    return ResourceRule(type_, f"/nonexistent/{type_}", "/nonexistent", params, ACTIONS,
                        children, maxinstances)


NAME = P("name", primary=True, unique=True, required=True)
FS_CHILDREN = (ChildRule("fs", 1, 3), ChildRule("clusterfs", 1, 3), ChildRule("nfsexport", 3, 1))

SEED = [
    rule("service", (NAME, P("domain"), P("autostart", type="boolean", default="1"),
                     P("exclusive", type="boolean", default="0"), P("recovery", default="restart"),
                     P("max_restarts", type="integer", default="0"),
                     P("restart_expire_time", default="0"), P("depend"), P("depend_mode"),
                     P("nfslock", type="boolean", default="0")),
         (ChildRule("lvm", 1, 9), ChildRule("fs", 2, 8), ChildRule("clusterfs", 3, 7),
          ChildRule("netfs", 4, 6), ChildRule("nfsexport", 5, 5), ChildRule("nfsclient", 6, 4),
          ChildRule("ip", 7, 2), ChildRule("smb", 8, 3), ChildRule("script", 9, 1)), 1),
    rule("lvm", (NAME, P("vg_name", required=True), P("lv_name")), (), 1),
    rule("fs", (NAME, P("mountpoint", unique=True, required=True),
                P("device", unique=True, required=True), P("fstype"),
                P("force_unmount", type="boolean", default="0"),
                P("nfslock", inherit="service%nfslock")), FS_CHILDREN, 1),
    rule("clusterfs", (NAME, P("mountpoint", unique=True, required=True),
                       P("device", required=True), P("fstype")), FS_CHILDREN),
    rule("netfs", (NAME, P("mountpoint", unique=True, required=True), P("host", required=True),
                   P("export", required=True)),
         (ChildRule("nfsexport", forbid=True), ChildRule("nfsclient", forbid=True))),
    rule("nfsserver", (NAME, P("path", inherit="mountpoint")),
         (ChildRule("nfsclient", 1, 2), ChildRule("ip", 2, 1),
          ChildRule("nfsexport", forbid=True), ChildRule("nfsserver", forbid=True)), 1),
    rule("nfsexport", (NAME, P("device", inherit="device"), P("path", inherit="mountpoint")),
         (ChildRule("nfsclient"), ChildRule("nfsexport", forbid=True))),
    rule("nfsclient", (NAME, P("target", required=True), P("path", inherit="path"),
                       P("options"), P("service_name", inherit="service%name"))),
    rule("ip", (P("address", primary=True, unique=True, required=True),
                P("monitor_link", type="boolean", default="1"),
                P("nfslock", inherit="service%nfslock")),
         (ChildRule("nfsclient", forbid=True), ChildRule("nfsexport", forbid=True)), 1),
    rule("smb", (NAME, P("workgroup"))),
    rule("script", (NAME, P("file", unique=True, required=True))),
    # Types the service rule does not list ("untyped" children).
    rule("apache", (NAME, P("config_file"))),
    rule("mysql", (NAME, P("config_file"))),
]


def seed_rules() -> RuleSet:
    return RuleSet.from_rules(SEED)
