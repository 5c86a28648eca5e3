"""Find agents, run ``meta-data`` once per agent version, and cache it.

Running dozens of agents at every config load is what made rgmanager's
tools slow; the cache is keyed by the agent file's identity (and, for our
own Python agents, by the helper library they are built from), so an edited
agent is re-read and an unchanged one is never run again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..executor import ActionRequest, OcfRc, describe_rc, run_action
from .rules import MetadataError, ResourceRule, parse_metadata

log = logging.getLogger(__name__)

PROJECT_AGENT_DIR = Path(__file__).resolve().parents[2] / "resource-agents"
AGENTLIB_DIR = Path(__file__).resolve().parents[1] / "agentlib"
METADATA_TIMEOUT = 15.0
CACHE_FORMAT = 1


class AgentLoadError(Exception):
    pass


def default_agent_dirs(extra: Sequence[str] = ()) -> list[str]:
    """Project agents first, then ``extra`` (option) and ``RGMANAGER_AGENT_PATH``."""
    dirs = [str(PROJECT_AGENT_DIR)] if PROJECT_AGENT_DIR.is_dir() else []
    dirs += list(extra)
    env = os.environ.get("RGMANAGER_AGENT_PATH", "")
    dirs += [d for d in env.split(":") if d]
    seen: list[str] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def default_cache_path() -> Path:
    env = os.environ.get("RGMANAGER_CACHE_DIR")
    if env:
        return Path(env) / "metadata.json"
    if os.geteuid() == 0:
        return Path("/var/lib/rgmanager/cache/metadata.json")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "rgmanager-py" / "metadata.json"


def ocf_root_for(agent_dir: str) -> str:
    """OCF_ROOT per decision 10 in docs/decisions.md: /usr/lib/ocf for resource.d agents."""
    parts = Path(agent_dir).resolve().parts
    if "resource.d" in parts:
        return str(Path(*parts[: parts.index("resource.d")]))
    return str(Path(agent_dir).resolve())


def _candidates(agent_dir: str) -> Iterator[Path]:
    try:
        names = sorted(os.listdir(agent_dir))
    except OSError as err:
        log.warning("cannot read agent directory %s: %s", agent_dir, err)
        return
    for name in names:
        if name.endswith("~") or name.startswith("."):
            continue
        ext = os.path.splitext(name)[1]
        if ext.startswith(".rpm") or ext in (".py", ".pyc", ".md", ".txt", ".xml"):
            continue
        path = Path(agent_dir) / name
        if path.is_dir() or not os.access(path, os.X_OK):
            continue
        yield path


def _agentlib_stamp() -> str:
    try:
        return str(max(p.stat().st_mtime_ns for p in AGENTLIB_DIR.glob("*.py")))
    except ValueError:
        return "0"


def _identity(path: Path, lib_stamp: str) -> str:
    st = path.stat()
    own = path.resolve().is_relative_to(PROJECT_AGENT_DIR)
    return f"{st.st_mtime_ns}:{st.st_size}:{lib_stamp if own else ''}"


def _run_metadata(path: Path) -> bytes:
    """``AGENT meta-data`` through the executor, the one place agents start
    (own process group killed on timeout, the agents' PATH); stdout only, so
    an agent's warnings on stderr cannot spoil the XML."""
    ocf_root = ocf_root_for(str(path.parent))
    res = run_action(ActionRequest(
        agent=str(path), action="meta-data", params={}, resource_type=path.name,
        instance=path.name, ocf_root=ocf_root, timeout=METADATA_TIMEOUT, merge_stderr=False))
    if res.timed_out or res.raw_rc < 0 or res.rc == OcfRc.ERR_INSTALLED:
        log.warning("meta-data of %s failed: %s", path,
                    res.output.strip() or describe_rc(res.raw_rc))
        return b""
    return res.output.encode()


@dataclass
class RuleSet:
    """The loaded rules by type, plus what was skipped and why."""

    rules: dict[str, ResourceRule] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ran_metadata: int = 0

    def __contains__(self, type_: object) -> bool:
        return type_ in self.rules

    def __getitem__(self, type_: str) -> ResourceRule:
        return self.rules[type_]

    def get(self, type_: str) -> ResourceRule | None:
        return self.rules.get(type_)

    def __iter__(self) -> Iterator[ResourceRule]:
        return iter(sorted(self.rules.values(), key=lambda r: r.type.lower()))

    def __len__(self) -> int:
        return len(self.rules)

    @classmethod
    def from_rules(cls, rules: Iterable[ResourceRule]) -> RuleSet:
        return cls(rules={r.type: r for r in rules})


class MetadataCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, str]] = {}
        self.dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text())
                if data.get("format") == CACHE_FORMAT:
                    self.entries = data.get("agents", {})
            except (OSError, ValueError):
                pass

    def get(self, key: str, identity: str) -> bytes | None:
        e = self.entries.get(key)
        if e and e.get("identity") == identity:
            return e["xml"].encode()
        return None

    def put(self, key: str, identity: str, xml: bytes) -> None:
        self.entries[key] = {"identity": identity, "xml": xml.decode(errors="replace")}
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"format": CACHE_FORMAT, "agents": self.entries}))
            os.replace(tmp, self.path)
        except OSError as err:
            log.warning("cannot write meta-data cache %s: %s", self.path, err)


def load_rules(dirs: Sequence[str] | None = None, cache_path: Path | None | bool = True,
               overrides: Mapping[str, str] | None = None) -> RuleSet:
    """Load one rule per agent type; the first directory that provides a type wins."""
    dirs = list(dirs) if dirs is not None else default_agent_dirs()
    cache = MetadataCache(default_cache_path() if cache_path is True
                          else (cache_path or None))
    lib_stamp = _agentlib_stamp()
    ruleset = RuleSet(dirs=dirs)
    todo: list[tuple[str, Path, str]] = []
    found: list[tuple[str, Path, str, bytes | None]] = []
    for d in dirs:
        for path in _candidates(d):
            key = str(path.resolve())
            identity = _identity(path, lib_stamp)
            xml = cache.get(key, identity)
            found.append((key, path, identity, xml))
            if xml is None:
                todo.append((key, path, identity))
    if todo:
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            outputs = dict(zip([t[0] for t in todo],
                               pool.map(lambda t: _safe_metadata(t[1]), todo), strict=True))
        ruleset.ran_metadata = len(todo)
    else:
        outputs = {}
    for key, path, identity, xml in found:
        if xml is None:
            xml = outputs.get(key) or b""
            if xml:
                cache.put(key, identity, xml)
        try:
            rule = parse_metadata(xml, str(path), ocf_root_for(str(path.parent)))
        except MetadataError as err:
            ruleset.skipped.append(f"{path}: {err}")
            log.debug("skipping agent %s: %s", path, err)
            continue
        if rule.type in ruleset.rules:
            ruleset.skipped.append(f"{path}: duplicate type {rule.type} "
                                   f"(using {ruleset.rules[rule.type].agent})")
            continue
        ruleset.rules[rule.type] = rule
    cache.save()
    return ruleset


def _safe_metadata(path: Path) -> bytes:
    """Never raises: a broken agent is skipped with its reason, not a failed load."""
    try:
        return _run_metadata(path)
    except OSError as err:
        log.warning("meta-data of %s failed: %s", path, err)
        return b""
