"""The ``lvm`` agent: HA-LVM with exclusive activation by tags.

This is rgmanager's "tagging" variant (lvm_by_vg.sh / lvm_by_lv.sh): the
node that runs the service puts its node name as an LVM tag on the volume
group (or on the one logical volume) before activating it, and refuses to
start while another node's tag is there.  Activation itself is done with
``volume_list = ["@NODE"]`` so LVM only activates what carries our tag.

Choices worth knowing:

* A missing VG/LV makes start fail with OCF_ERR_GENERIC (1), not 6: on a
  cluster the PVs may simply not be visible on this node, and another node
  may well succeed.  status answers 7 and stop 0 (gone is stopped).
* Any tag on the VG (VG mode) or LV (LV mode) that is not our node name is
  taken as another node's ownership, as rgmanager does.  We cannot ask the
  cluster whether that node is dead, so we refuse and log; an operator
  removes the stale tag (``vgchange --deltag NODE VG``).
* ``self_fence`` reboots only when the environment says
  RGMANAGER_ALLOW_SELF_FENCE=1; otherwise the failed stop is just reported.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import syscmd
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_INSTALLED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    Action,
    AgentError,
    AgentSpec,
    Param,
    Params,
    run,
    standard_actions,
    stop_then_start,
)

log = logging.getLogger(__name__)

DEACTIVATE_TRIES = 3

SPEC = AgentSpec(
    name="lvm",
    shortdesc="LVM failover script (HA-LVM, exclusive activation by tags).",
    longdesc=(
        "Activates a volume group, or one logical volume, on one node at a time. The owner "
        "is recorded as an LVM tag holding the node name; start refuses while another node's "
        "tag is present, stop deactivates and removes our tag."
    ),
    params=(
        Param("name", "Descriptive name of this resource", primary=True, unique=True,
              required=True),
        Param("vg_name", "Volume group name", required=True),
        Param("lv_name", "Logical volume name (optional; default: the whole volume group)"),
        Param("self_fence", "Reboot this node if deactivation fails on stop "
              "(only when RGMANAGER_ALLOW_SELF_FENCE=1 is in the environment)", "boolean",
              default="0"),
        Param("nfslock", "NFS lock workarounds of the service (accepted, no effect here)",
              "boolean", inherit="service%nfslock"),
    ),
    actions=(*standard_actions(status_interval=60, status_timeout=30, start_timeout=120,
                               stop_timeout=120, depths=((0, 60), (10, 60))),
             Action("recover", 120)),
    maxinstances=1,
)


def node_name() -> str:
    """The tag that marks this node as the owner."""
    return os.uname().nodename


def _lvm_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LVM_SUPPRESS_FD_WARNINGS"] = "1"
    return env


def lvm(argv: Sequence[str], timeout: float = 60.0) -> syscmd.Result:
    """Run one LVM command (argv list) with fd-leak warnings silenced."""
    return syscmd.run(argv, timeout=timeout, env=_lvm_env())


def _errtext(p: syscmd.Result) -> str:
    lines = [ln.strip() for ln in p.said().splitlines() if ln.strip()]
    return "; ".join(lines[-3:]) or f"rc {p.rc}"


def activation_config() -> str:
    """--config for activation: only tagged volumes, and no udev if none runs.

    Without a udev daemon LVM would otherwise wait for udev cookies; with
    udev_rules=0 libdevmapper creates the /dev nodes itself.
    """
    parts = [f'volume_list = [ "@{node_name()}" ]']
    if not os.path.exists("/run/udev/control"):
        parts += ["udev_sync = 0", "udev_rules = 0"]
    return "activation { " + " ".join(parts) + " }"


@dataclass(frozen=True)
class LV:
    name: str
    attr: str
    tags: tuple[str, ...]
    dm_path: str
    path: str

    @property
    def active(self) -> bool:
        return len(self.attr) > 4 and self.attr[4] == "a"


def _tags(field: str) -> tuple[str, ...]:
    return tuple(t for t in (x.strip() for x in field.split(",")) if t)


def vg_tags(vg: str) -> tuple[str, ...] | None:
    """The VG's tags, or None when the VG is not visible on this node."""
    p = lvm(["vgs", "--noheadings", "-o", "vg_tags", "--", vg])
    if p.rc != 0:
        log.debug("vgs %s: %s", vg, _errtext(p))
        return None
    return _tags(p.stdout.strip())


def list_lvs(vg: str, lv: str | None) -> list[LV] | None:
    """Logical volumes of the VG (or just ``lv``); None when not found."""
    target = f"{vg}/{lv}" if lv else vg
    p = lvm(["lvs", "--noheadings", "--separator", "|",
             "-o", "lv_name,lv_attr,lv_tags,lv_dm_path,lv_path", "--", target])
    if p.rc != 0:
        log.debug("lvs %s: %s", target, _errtext(p))
        return None
    out = []
    for line in p.stdout.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 5 and fields[0]:
            out.append(LV(fields[0], fields[1], _tags(fields[2]), fields[3], fields[4]))
    return out


class Target:
    """What this resource owns: the whole VG, or one LV in it."""

    def __init__(self, params: Params) -> None:
        self.vg = params.str("vg_name").strip()
        self.lv = (params.get("lv_name") or "").strip() or None
        for value, what in ((self.vg, "vg_name"), (self.lv or "x", "lv_name")):
            if "/" in value or value.startswith("-") or any(c.isspace() for c in value):
                raise AgentError(OCF_ERR_CONFIGURED, f"{what} {value!r} is not a valid name")
        self.label = f"{self.vg}/{self.lv}" if self.lv else self.vg

    def exists(self) -> bool:
        if self.lv:
            lvs = list_lvs(self.vg, self.lv)
            return bool(lvs)
        return vg_tags(self.vg) is not None

    def tags(self) -> tuple[str, ...]:
        """Tags on the owned object (VG in VG mode, LV in LV mode)."""
        if self.lv:
            lvs = list_lvs(self.vg, self.lv) or []
            return lvs[0].tags if lvs else ()
        return vg_tags(self.vg) or ()

    def lvs(self) -> list[LV]:
        return list_lvs(self.vg, self.lv) or []

    def look(self) -> tuple[tuple[str, ...], list[LV]] | None:
        """(owner tags, logical volumes) in as few LVM runs as possible, or None
        when not found: one ``lvs`` in LV mode, ``vgs`` and ``lvs`` in VG mode
        (each run of an LVM tool costs tens of milliseconds)."""
        if self.lv:
            lvs = list_lvs(self.vg, self.lv)
            return (lvs[0].tags, lvs) if lvs else None
        tags = vg_tags(self.vg)
        return None if tags is None else (tags, self.lvs())

    def _change(self, *args: str) -> syscmd.Result:
        tool = "lvchange" if self.lv else "vgchange"
        target = f"{self.vg}/{self.lv}" if self.lv else self.vg
        return lvm([tool, *args, "--", target], timeout=120)

    def add_tag(self, tag: str) -> None:
        p = self._change("--addtag", tag)
        if p.rc != 0:
            raise AgentError(OCF_ERR_GENERIC, f"cannot tag {self.label} with {tag}: "
                             f"{_errtext(p)}")

    def del_tag(self, tag: str) -> None:
        if tag not in self.tags():
            return
        p = self._change("--deltag", tag)
        if p.rc != 0:
            raise AgentError(OCF_ERR_GENERIC, f"cannot remove tag {tag} from {self.label}: "
                             f"{_errtext(p)}")

    def activate(self) -> syscmd.Result:
        return self._change("--config", activation_config(), "-ay")

    def deactivate(self) -> syscmd.Result:
        return self._change("--config", activation_config(), "-an")


def foreign_owners(target: Target) -> list[str]:
    me = node_name()
    return [t for t in target.tags() if t != me]


def validate(params: Params) -> int:
    Target(params)
    params.bool("self_fence")
    for prog in ("vgs", "lvs", "vgchange", "lvchange"):
        if shutil.which(prog) is None:
            raise AgentError(OCF_ERR_INSTALLED, f"{prog} is not installed (lvm2)")
    return OCF_SUCCESS


def _health(target: Target, check_level: int) -> str:
    """Why the resource is not running here, or "" when it is."""
    seen = target.look()
    if seen is None:
        return f"{target.label} not found"
    tags, lvs = seen
    me = node_name()
    if me not in tags:
        owners = [t for t in tags if t != me]
        return (f"{target.label} is owned by {', '.join(owners)}" if owners
                else f"{target.label} does not carry our tag {me}")
    inactive = [lv.name for lv in lvs if not lv.active]
    if inactive:
        return f"inactive logical volume(s) in {target.vg}: {', '.join(inactive)}"
    if check_level >= 10:
        missing = [lv.name for lv in lvs
                   if not any(p and os.path.exists(p) for p in (lv.dm_path, lv.path))]
        if missing:
            return f"no device node for {', '.join(missing)} in {target.vg}"
    return ""


def status(params: Params) -> int:
    target = Target(params)
    why = _health(target, params.check_level)
    if why:
        log.info("%s", why)
        return OCF_NOT_RUNNING
    return OCF_SUCCESS


def start(params: Params) -> int:
    validate(params)
    target = Target(params)
    me = node_name()
    if not target.exists():
        raise AgentError(OCF_ERR_GENERIC, f"{target.label} not found on this node")
    owners = foreign_owners(target)
    if owners:
        raise AgentError(OCF_ERR_GENERIC, f"{target.label} is owned by {', '.join(owners)}; "
                         f"refusing to activate (remove the stale tag if that node is dead)")
    if not _health(target, 0):
        return OCF_SUCCESS
    had_tag = me in target.tags()
    if not had_tag:
        target.add_tag(me)
    p = target.activate()
    why = _health(target, 0)
    if p.rc != 0 or why:
        reason = _errtext(p) if p.rc != 0 else why
        # Leave nothing half-done: no active LVs and no claim on the volume.
        target.deactivate()
        try:
            target.del_tag(me)
        except AgentError as err:
            log.error("%s", err)
        raise AgentError(OCF_ERR_GENERIC, f"cannot activate {target.label}: {reason}")
    log.info("activated %s, tagged %s", target.label, me)
    return OCF_SUCCESS


def _self_fence(label: str) -> None:
    if os.environ.get("RGMANAGER_ALLOW_SELF_FENCE") != "1":
        log.error("self_fence is set but RGMANAGER_ALLOW_SELF_FENCE is not 1: not rebooting "
                  "although %s could not be deactivated", label)
        return
    log.critical("cannot deactivate %s: self-fencing (reboot -fn)", label)
    syscmd.run(["reboot", "-fn"])


def stop(params: Params) -> int:
    target = Target(params)
    me = node_name()
    if not target.exists():
        return OCF_SUCCESS
    owners = foreign_owners(target)
    active = [lv.name for lv in target.lvs() if lv.active]
    if owners and not active:
        # Another node owns it and nothing is active here: nothing of ours to stop.
        return OCF_SUCCESS
    error = ""
    for attempt in range(DEACTIVATE_TRIES):
        p = target.deactivate()
        if not [lv for lv in target.lvs() if lv.active]:
            error = ""
            break
        error = _errtext(p)
        log.warning("deactivating %s failed (attempt %d): %s", target.label, attempt + 1, error)
        time.sleep(1)
    if error:
        if params.bool("self_fence"):
            _self_fence(target.label)
        raise AgentError(OCF_ERR_GENERIC, f"cannot deactivate {target.label}: {error}")
    target.del_tag(me)
    log.info("deactivated %s, removed tag %s", target.label, me)
    return OCF_SUCCESS


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status,
                      "recover": stop_then_start(stop, start), "validate-all": validate})
