"""Mutation fuzzer: no cluster.conf may crash or stall the tools.

Run: .venv/bin/python -m benchmarks.fuzz_config [--cases N] [--seed S] [--jobs J]
                                                [--timeout SECS] [--save DIR]

Mutants of the repository's example configurations (etc/cluster.conf,
tests/scenarios/configs/*.conf, a rich built-in one, a generated 600-resource
one) go through every entry point: load + validate, tree build, text and
``--json`` rendering (serialised), the delta between the original and the
mutant, and ``rgmanager.planner.dryrun`` (initial placement, then a node going down
and a service failing). Mutations: drop, duplicate, swap, move and rename
elements; random, huge, negative, unicode and empty attribute values; unknown
attributes; stray text; deep nesting; many children; truncation; internal
entities and XXE (external entities must never be read: a secret file's
content must never appear in any output).

Each case runs in a worker process with a per-case timeout (default 5 s): a
case that takes longer is a hang, counted (the worker is killed and
replaced), never waited on forever. Prints cases, accepted, clean errors
(every error located: code, file, line, element), tracebacks (must be 0),
unlocated errors, hangs (must be 0) and the slowest case. ``case N`` is
reproducible: ``--seed S --only N --save DIR`` writes it. Exit 1 if anything
must be fixed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
SECRET = "FUZZ-SECRET-0xC0FFEE"

RICH = """<?xml version="1.0"?>
<cluster name="rich" config_version="7" alias="r">
  <cman expected_votes="3" two_node="0"/>
  <totem token="10000"/>
  <logging debug="off"><logging_daemon name="rgmanager" debug="on"/></logging>
  <clusternodes>
    <clusternode name="node1" nodeid="1" votes="1">
      <fence><method name="1"><device name="ipmi1" port="1"/></method></fence>
    </clusternode>
    <clusternode name="node2" nodeid="2"/>
    <clusternode name="node3" nodeid="3"/>
  </clusternodes>
  <fencedevices><fencedevice name="ipmi1" agent="fence_ipmilan" passwd="x"/></fencedevices>
  <rm log_level="5" status_poll_interval="10" central_processing="0">
    <failoverdomains>
      <failoverdomain name="d1" ordered="1" restricted="1" nofailback="0">
        <failoverdomainnode name="node1" priority="1"/>
        <failoverdomainnode name="node2" priority="2"/>
      </failoverdomain>
      <failoverdomain name="d2"><failoverdomainnode name="node3"/></failoverdomain>
    </failoverdomains>
    <resource-defaults><fs force_unmount="1"/><service recovery="relocate"/></resource-defaults>
    <resources>
      <ip address="10.0.0.10" monitor_link="1"/>
      <fs name="data" mountpoint="/srv/data" device="/dev/vg0/data" fstype="ext4"/>
      <nfsexport name="exports"/>
      <script name="app" file="/etc/init.d/app"/>
    </resources>
    <service name="nfs" domain="d1" autostart="1" exclusive="0" recovery="restart"
             max_restarts="2" restart_expire_time="600" nfslock="1">
      <lvm name="vg0" vg_name="vg0"/>
      <fs ref="data">
        <nfsexport ref="exports">
          <nfsclient name="c1" target="10.1.0.0/16" options="rw"/>
          <nfsclient name="c2" target="10.2.0.0/16" options="ro" __independent_subtree="2"/>
        </nfsexport>
        <action name="status" depth="20" interval="1m" timeout="30s"/>
      </fs>
      <ip ref="10.0.0.10"/>
      <script ref="app" __independent_subtree="1" __max_restarts="2"
              __restart_expire_time="300"/>
    </service>
    <service name="web" domain="d2" depend="service:nfs" depend_mode="soft">
      <ip address="10.0.0.11"><script name="web" file="/etc/init.d/web"/></ip>
      <action name="status" depth="*" interval="30"/>
    </service>
    <service name="idle" autostart="0" __failure_expire_time="5m" __max_failures="3"/>
  </rm>
</cluster>
"""

VALUES = ["", " ", "0", "1", "-1", "2", "yes", "no", "maybe", "on", "off", "true", "*",
          "deep", "10", "30s", "1h30m", "5x", "1e3", "0x10", "1_000", "+5", " 7 ", "NaN",
          "9" * 20, "9" * 5000, "1" * 4301, "\u0661\u0662", "\u00b2", "\u00e9t\u00e9",
          "\U0001f525", "node1", "node9", "service:nfs", "service:ghost", "d1", "nowhere",
          "restart", "relocate", "disable", "restart-disable", "reboot", "hard", "soft",
          "non-critical", "10.0.0.10", "/dev/vg0/data", "/srv/data", "x" * 5000,
          "a\tb\nc", "&amp;", "<", "\"'", "%s%n", "../../etc/passwd"]
ATTR_NAMES = ["name", "ref", "address", "mountpoint", "device", "file", "domain", "autostart",
              "exclusive", "recovery", "max_restarts", "restart_expire_time", "depend",
              "depend_mode", "depth", "interval", "timeout", "nodeid", "votes", "priority",
              "ordered", "restricted", "nofailback", "config_version", "expected_votes",
              "two_node", "status_poll_interval", "log_level", "central_processing",
              "__independent_subtree", "__enforce_timeouts", "__max_restarts",
              "__restart_expire_time", "__max_failures", "__failure_expire_time",
              "monitor_link", "vg_name", "target", "options", "bogus", "autostrt", "x:y"]
TAGS = ["service", "ip", "fs", "nfsexport", "nfsclient", "script", "lvm", "clusterfs",
        "netfs", "nfsserver", "action", "resources", "rm", "cluster", "clusternode",
        "clusternodes", "failoverdomain", "failoverdomainnode", "failoverdomains",
        "resource-defaults", "events", "cman", "fss", "foo", "event"]
DEPTHS = [50, 97, 98, 99, 100, 150, 500, 990, 3000]


def seed_texts() -> list[tuple[str, str]]:
    """(name, text) of every example configuration the fuzzer starts from."""
    out: list[tuple[str, str]] = []
    for p in [ROOT / "etc" / "cluster.conf", *sorted((ROOT / "tests" / "scenarios" /
                                                      "configs").glob("*.conf"))]:
        if p.is_file():
            out.append((str(p.relative_to(ROOT)), p.read_text()))
    out.append(("rich", RICH))
    from benchmarks.bench_rg_test import generate
    out.append(("generated-600", generate(600)))
    return out


# -- mutations --------------------------------------------------------------------
def _elements(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str)]


def _pick(rng: random.Random, root: etree._Element, skip_root: bool = True
          ) -> etree._Element | None:
    els = _elements(root)[1 if skip_root else 0:]
    return rng.choice(els) if els else None


def m_drop(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root)
    if el is None or el.getparent() is None:
        return "drop: nothing"
    el.getparent().remove(el)  # type: ignore[union-attr]
    return f"drop <{el.tag}>"


def m_duplicate(rng: random.Random, root: etree._Element) -> str:
    import copy
    el = _pick(rng, root)
    if el is None:
        return "duplicate: nothing"
    el.addnext(copy.deepcopy(el))
    return f"duplicate <{el.tag}>"


def m_swap(rng: random.Random, root: etree._Element) -> str:
    a, b = _pick(rng, root), _pick(rng, root)
    if a is None or b is None or a is b or a in b.iterancestors() or b in a.iterancestors():
        return "swap: nothing"
    pa, pb = a.getparent(), b.getparent()
    if pa is None or pb is None:
        return "swap: nothing"
    ia, ib = pa.index(a), pb.index(b)
    pa.remove(a)
    if pa is pb and ib > ia:
        ib -= 1
    pb.remove(b)
    pb.insert(ib, a)
    pa.insert(min(ia, len(pa)), b)
    return f"swap <{a.tag}> <{b.tag}>"


def m_move(rng: random.Random, root: etree._Element) -> str:
    el, target = _pick(rng, root), _pick(rng, root, skip_root=False)
    if el is None or target is None or target is el or el in target.iterancestors():
        return "move: nothing"
    parent = el.getparent()
    if parent is None:
        return "move: nothing"
    parent.remove(el)
    target.append(el)
    return f"move <{el.tag}> into <{target.tag}>"


def m_rename(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root, skip_root=False)
    if el is None:
        return "rename: nothing"
    old, el.tag = el.tag, rng.choice(TAGS)
    return f"rename <{old}> to <{el.tag}>"


def m_value(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root, skip_root=False)
    if el is None:
        return "value: nothing"
    names = list(el.attrib) or ATTR_NAMES[:-1]
    name, value = str(rng.choice(names)), rng.choice(VALUES)
    el.set(name, value)
    return f"<{el.tag}> {name}={value[:20]!r}{'...' if len(value) > 20 else ''}"


def m_new_attr(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root, skip_root=False)
    if el is None:
        return "attr: nothing"
    name, value = rng.choice(ATTR_NAMES), rng.choice(VALUES)
    if name == "x:y":
        name = "{urn:x}y"
    el.set(name, value)
    return f"<{el.tag}> +{name}={value[:20]!r}"


def m_del_attr(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root, skip_root=False)
    if el is None or not el.attrib:
        return "del attr: nothing"
    name = rng.choice(list(el.attrib))
    del el.attrib[name]
    return f"<{el.tag}> -{name}"


def m_text(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root, skip_root=False)
    if el is None:
        return "text: nothing"
    el.text = rng.choice(["oops", "  ", "\u00e9", "1", "x" * 1000])
    return f"text in <{el.tag}>"


def m_nest(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root)
    if el is None:
        return "nest: nothing"
    depth = rng.choice(DEPTHS)
    tag = rng.choice(["script", "ip", "service", "fs", str(el.tag)])
    unique = rng.random() < 0.5
    inner = el
    for i in range(depth):
        child = etree.SubElement(inner, tag)
        child.set("name", f"n{i}" if unique else "n")
        if tag == "script":
            child.set("file", f"/bin/n{i}")
        inner = child
    return f"nest {depth} x <{tag}> under <{el.tag}>"


def m_many(rng: random.Random, root: etree._Element) -> str:
    el = _pick(rng, root)
    if el is None:
        return "many: nothing"
    n = rng.choice([50, 100, 300])
    tag = rng.choice(["nfsclient", "script", "action", "ip"])
    for i in range(n):
        c = etree.SubElement(el, tag)
        c.set("name", f"m{i}" if tag != "action" else rng.choice(["status", "start"]))
        if tag == "nfsclient":
            c.set("target", f"10.9.{i // 250}.{i % 250}")
        elif tag == "script":
            c.set("file", f"/bin/m{i}")
        elif tag == "ip":
            c.attrib.pop("name")
            c.set("address", f"10.8.{i // 250}.{i % 250}")
        for _ in range(rng.randrange(3)):
            c.set(rng.choice(ATTR_NAMES).replace(":", "_"), rng.choice(VALUES[:30]))
    return f"{n} x <{tag}> under <{el.tag}>"


TREE_MUTATIONS: list[Callable[[random.Random, etree._Element], str]] = [
    m_drop, m_duplicate, m_swap, m_move, m_rename, m_value, m_value, m_new_attr, m_del_attr,
    m_text, m_nest, m_many]


def t_truncate(rng: random.Random, text: str) -> tuple[str, str]:
    cut = rng.randrange(len(text))
    return text[:cut], f"truncate at {cut}"


def t_entities(rng: random.Random, text: str, secret_path: str) -> tuple[str, str]:
    kind = rng.choice(["xxe-attr", "xxe-text", "internal", "laughs", "param", "dtd-default"])
    decls = {
        "xxe-attr": f'<!ENTITY s SYSTEM "file://{secret_path}">',
        "xxe-text": f'<!ENTITY s SYSTEM "file://{secret_path}">',
        "internal": '<!ENTITY s "node1">',
        "laughs": '<!ENTITY l0 "lol">' + "".join(
            f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 9))
        + '<!ENTITY s "&l8;">',
        "param": f'<!ENTITY % p SYSTEM "file://{secret_path}">%p;<!ENTITY s "x">',
        "dtd-default": '<!ATTLIST service autostart CDATA "maybe"><!ENTITY s "y">',
    }[kind]
    body = text.split("?>", 1)[-1]
    doctype = f"<!DOCTYPE cluster [{decls}]>"
    if kind == "xxe-text":
        body = body.replace("</rm>", "<service name=\"x\">&s;</service></rm>", 1)
    else:
        body = body.replace('name="', 'name="&s;', 1 + rng.randrange(3))
    return '<?xml version="1.0"?>\n' + doctype + body, f"entities: {kind}"


def t_bytes(rng: random.Random, text: str) -> tuple[str, str]:
    pos = rng.randrange(len(text))
    junk = rng.choice(["\x00", "\ufffe", "\U0001f525", "]]>", "<!--", "<?pi x?>", "&#0;",
                       "&#x110000;", "\u202e", "<![CDATA[x]]>", "&nosuch;"])
    return text[:pos] + junk + text[pos:], f"insert {junk!r} at {pos}"


def mutate(seeds: list[tuple[str, str]], case: int, seed: int, secret_path: str
           ) -> tuple[str, str, str]:
    """(seed name, mutant text, what was done) for case number ``case``."""
    rng = random.Random(seed * 1_000_003 + case)
    name, text = seeds[case % len(seeds)]
    steps: list[str] = []
    r = rng.random()
    if r < 0.8:
        root = etree.fromstring(text.encode(), etree.XMLParser(resolve_entities=False))
        for _ in range(1 + int(rng.expovariate(0.8))):
            steps.append(rng.choice(TREE_MUTATIONS)(rng, root))
        text = etree.tostring(root, encoding="unicode")
        if rng.random() < 0.1:
            text, what = t_entities(rng, text, secret_path)
            steps.append(what)
    elif r < 0.88:
        text, what = t_truncate(rng, text)
        steps.append(what)
    elif r < 0.95:
        text, what = t_entities(rng, text, secret_path)
        steps.append(what)
    else:
        text, what = t_bytes(rng, text)
        steps.append(what)
    return name, text, "; ".join(steps)


# -- one case through every entry point --------------------------------------------
class Pipeline:
    """Everything a worker keeps between cases: rules and the parsed seeds."""

    def __init__(self, workdir: str) -> None:
        from rgmanager.agents.discovery import load_rules
        from rgmanager.loader import load
        self.workdir = workdir
        self.secret = os.path.join(workdir, "secret")
        with open(self.secret, "w") as f:
            f.write(SECRET)
        self.rules = load_rules()
        self.seeds = seed_texts()
        self.originals: dict[str, Any] = {}
        for name, text in self.seeds:
            path = os.path.join(workdir, "seed.conf")
            Path(path).write_text(text)
            self.originals[name] = load(path, self.rules)

    def run(self, name: str, text: str) -> tuple[str, str]:
        """("accepted"|"error"|"unlocated"|"leak"|"traceback", detail)."""
        from rgmanager.cli.render import test_json, test_text
        from rgmanager.errors import EXIT_ERRORS, ConfigError, exit_code
        from rgmanager.loader import load
        from rgmanager.tree.delta import diff

        path = os.path.join(self.workdir, "case.conf")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        stage = "load"
        try:
            try:
                loaded = load(path, self.rules)
            except ConfigError as err:
                out = str(err)
                if SECRET in out:
                    return "leak", "secret file content in the error output"
                bad = [r for r in err.reports if r.source is None or r.source.line is None
                       and r.code != "E_FILE"]
                if exit_code(err.reports) != EXIT_ERRORS or not err.reports or bad:
                    return "unlocated", "; ".join(str(r) for r in (bad or err.reports))[:300]
                return "error", err.reports[0].code
            stage = "render"
            out = test_text(loaded.config, loaded.forest)
            out += json.dumps(test_json(loaded.config, loaded.forest))
            if SECRET in out:
                return "leak", "secret file content in the rendered output"
            stage = "delta"
            old = self.originals[name]
            json.dumps(diff(old.forest, loaded.forest).as_dict())
            json.dumps(diff(loaded.forest, old.forest).as_dict())
            stage = "simulate"
            self.simulate(loaded)
            return "accepted", ""
        except Exception as exc:  # noqa: BLE001 - that is what we are counting
            tb = traceback.extract_tb(exc.__traceback__)
            frame = tb[-1] if tb else None
            where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
            return "traceback", f"{stage} {where} {type(exc).__name__}: {str(exc)[:160]}"

    @staticmethod
    def simulate(loaded: Any) -> None:
        from rgmanager.cli.render import dry_run_json, dry_run_text
        from rgmanager.planner import dryrun
        model = loaded.plan_model(fencing=True)  # as rg_test simulate plans
        quorum = dryrun.Quorum.from_config(loaded.config)
        nodes = [n.name for n in loaded.config.nodes]
        table, members = dryrun.initial(model, nodes, quorum=quorum)
        events = []
        if nodes:
            events.append(f"node-down:{nodes[0]}")
        services = sorted(model.services)
        if services:
            events.append(f"fail:{services[0]}")
            events.append(f"enable:{services[-1]}")
        if nodes:
            events.append(f"node-up:{nodes[0]}")
        result = dryrun.dry_run(model, table, members, events, True, quorum=quorum,
                                clock=dryrun.START_TIME)
        dry_run_text(result)
        json.dumps(dry_run_json(result))


def _worker(conn: Connection, seed: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        pipe = Pipeline(d)
        conn.send(("ready", 0.0))
        while True:
            case = conn.recv()
            if case is None:
                return
            try:
                name, text, what = mutate(pipe.seeds, case, seed, pipe.secret)
            except Exception as exc:  # noqa: BLE001 - a bug of the fuzzer, not of the tools
                conn.send((case, "fuzzer-bug", repr(exc)[:200], 0.0, "mutation failed"))
                continue
            t0 = time.perf_counter()
            status, detail = pipe.run(name, text)
            conn.send((case, status, detail, time.perf_counter() - t0, f"{name}: {what}"))


# -- the driver ----------------------------------------------------------------------
class _Slot:
    def __init__(self, seed: int) -> None:
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_worker, args=(child, seed), daemon=True)
        self.proc.start()
        child.close()
        self.conn.recv()  # ready
        self.case: int | None = None
        self.since = 0.0

    def give(self, case: int) -> None:
        self.case, self.since = case, time.monotonic()
        self.conn.send(case)

    def kill(self) -> None:
        if self.proc.pid is not None and self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


def save_case(directory: str, seed: int, case: int, label: str) -> str:
    seeds = seed_texts()
    os.makedirs(directory, exist_ok=True)
    secret = os.path.join(directory, "secret")
    Path(secret).write_text(SECRET)
    _, text, what = mutate(seeds, case, seed, secret)
    path = os.path.join(directory, f"{label}-s{seed}-c{case}.conf")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(f"<!-- {what.replace('--', '- -')} -->\n" if not text.startswith("<?xml")
                else "")
        f.write(text)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)))
    ap.add_argument("--timeout", type=float, default=5.0, help="a slower case is a hang")
    ap.add_argument("--save", metavar="DIR", help="write every failing case here")
    ap.add_argument("--only", type=int, metavar="N", help="run case N only")
    args = ap.parse_args(argv)

    cases = [args.only] if args.only is not None else list(range(args.cases))
    pending = list(reversed(cases))
    slots = [_Slot(args.seed) for _ in range(min(args.jobs, len(cases)))]
    counts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    failures: dict[str, list[tuple[int, str]]] = {}
    slowest = (0.0, -1, "")
    t_start = time.monotonic()
    for s in slots:
        if pending:
            s.give(pending.pop())
    while any(s.case is not None for s in slots):
        busy = [s for s in slots if s.case is not None]
        ready = wait([s.conn for s in busy], timeout=0.2)
        now = time.monotonic()
        for s in busy:
            if s.conn in ready:
                try:
                    case, status, detail, elapsed, what = s.conn.recv()
                except EOFError:  # the worker died (a crash in C code, say)
                    case, status, detail, elapsed, what = (
                        s.case, "crash", f"worker exit code {s.proc.exitcode}", 0.0, "")
                    s.kill()
                    slots[slots.index(s)] = s = _Slot(args.seed)
                counts[status] += 1
                if status == "error":
                    codes[detail] += 1
                elif status != "accepted":
                    failures.setdefault(f"{status}: {detail}", []).append((case, what))
                if elapsed > slowest[0]:
                    slowest = (elapsed, case, what)
                s.case = None
            elif s.case is not None and now - s.since > args.timeout:
                counts["hang"] += 1
                failures.setdefault("hang", []).append((s.case, f"> {args.timeout:g} s"))
                s.kill()
                slots[slots.index(s)] = s = _Slot(args.seed)
            if s.case is None and pending:
                s.give(pending.pop())
    for s in slots:
        s.conn.send(None)
        s.proc.join(5)
        s.kill()
    elapsed = time.monotonic() - t_start

    print(f"seed {args.seed}: {len(cases)} cases in {elapsed:.1f} s ({args.jobs} workers)")
    print(f"  accepted (valid mutants):  {counts['accepted']}")
    print(f"  clean errors (rejected):   {counts['error']}"
          f"  [{', '.join(f'{c} {n}' for c, n in codes.most_common(8))}]")
    print(f"  tracebacks:                {counts['traceback']}  (must be 0)")
    print(f"  unlocated errors:          {counts['unlocated']}  (must be 0)")
    print(f"  secret leaked (XXE):       {counts['leak']}  (must be 0)")
    print(f"  hangs (> {args.timeout:g} s):            {counts['hang']}  (must be 0)")
    print(f"  worker crashes:            {counts['crash']}  (must be 0)")
    if counts["fuzzer-bug"]:
        print(f"  (fuzzer's own mutation failures, not counted: {counts['fuzzer-bug']})")
    print(f"  slowest case:              {slowest[0]:.3f} s (case {slowest[1]}: "
          f"{slowest[2][:100]})")
    for key, where in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(where):5d} x {key}")
        for case, what in where[:3]:
            print(f"          case {case}: {what[:150]}")
            if args.save:
                saved = save_case(args.save, args.seed, case, key.split(":")[0])
                print(f"          saved: {saved}")
    bad = sum(counts[k] for k in ("traceback", "unlocated", "leak", "hang", "crash"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
