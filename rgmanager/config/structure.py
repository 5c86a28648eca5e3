"""Linear, exact checks of cluster.conf's fixed structure, read from ``etc/cluster.rng``.

libxml2 validates RelaxNG by backtracking: its time grows with the square of
an element's children and multiplies with every optional attribute, and its
messages are vague ("Element cluster failed to validate attributes"). So the
structure the grammar describes is checked here first, in one iterative
pass, with messages that name the element, the attribute or child, and the
line; every problem is reported, not just the first. The grammar stays the
single description: this module interprets the simple subset ``cluster.rng``
is written in (element, attribute, optional, zeroOrMore, oneOrMore,
interleave, group, choice, ref, data, value, text, anyName/except) as
"unordered content with counts", which is what the file expresses.

Resource elements (``ref name="RESOURCE"``) are not checked here: the parser
checks them against the agents' rules (see :mod:`.parser`).

Also here, because they must run before any recursive code: the nesting
limit (:func:`check_depth`) and the bounds on numbers (:func:`integer_error`,
:func:`time_error`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lxml import etree

from ..agents.rules import expand_time
from ..errors import Reporter, Source

RNG_NS = "http://relaxng.org/ns/structure/1.0"
BASE_SCHEMA = Path(__file__).resolve().parents[2] / "etc" / "cluster.rng"

#: Deepest element allowed in a file (``<cluster>`` is level 1, a service 3):
#: far beyond any real resource tree, and low enough that no recursive code
#: (tree build, rendering, JSON) ever nears Python's recursion limit.
MAX_DEPTH = 100
#: Largest integer accepted anywhere (a signed 64-bit value).
MAX_INT = 2**63 - 1
#: Longest time accepted (timeouts, intervals, expiry windows): ten years.
MAX_SECONDS = 10 * 365 * 86400

_INTEGER = re.compile(r"\s*([+-]?)([0-9]+)\s*", re.ASCII)
_TIME = re.compile(r"\s*(?:[0-9]+[smhdwy]?)+\s*", re.ASCII | re.IGNORECASE)

_TYPE_WORDS = {
    "integer": "an integer",
    "nonNegativeInteger": "a non-negative integer",
    "positiveInteger": "a positive integer",
}


def integer_error(value: str, kind: str = "integer") -> str | None:
    """Why ``value`` is not an acceptable ``kind`` (XSD integer type), or None."""
    m = _INTEGER.fullmatch(value)
    if m is None:
        return f"{_shorten(value)} is not {_TYPE_WORDS.get(kind, 'an integer')}"
    digits = m.group(2).lstrip("0")
    if len(digits) > 19 or int(digits or "0") > MAX_INT:
        return f"{_shorten(value)} is too large (at most {MAX_INT})"
    n = int(m.group(1) + (digits or "0"))
    if kind == "nonNegativeInteger" and n < 0 or kind == "positiveInteger" and n < 1:
        return f"{_shorten(value)} is not {_TYPE_WORDS[kind]}"
    return None


def time_error(value: str) -> str | None:
    """Why ``value`` is not a time (``30``, ``5m``, ``1h30m``) within bounds, or None."""
    if _TIME.fullmatch(value) is None:
        return f"{_shorten(value)} is not a time (seconds, or e.g. 30s, 5m, 1h30m)"
    if expand_time(value) > MAX_SECONDS:  # saturates, never converts a huge number
        return f"{_shorten(value)} is too long (at most {MAX_SECONDS} seconds, ten years)"
    return None


def _shorten(value: str, limit: int = 40) -> str:
    text = value if len(value) <= limit else value[:limit] + f"... ({len(value)} characters)"
    return repr(text)


def _line(el: etree._Element) -> int | None:
    line = el.sourceline
    return line if isinstance(line, int) else None


def check_depth(path: str, root: etree._Element, r: Reporter) -> bool:
    """Report the first element nested deeper than :data:`MAX_DEPTH`; False if any.

    Iterative (lxml's own walk), so it is safe on any depth lxml could parse.
    """
    depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth > MAX_DEPTH:
            tag = el.tag if isinstance(el.tag, str) else "node"
            r.error("E_TOO_DEEP", f"element nested {depth} levels deep; at most {MAX_DEPTH} "
                    "levels are allowed (resource trees this deep are a mistake)",
                    Source(path, _line(el), str(tag)))
            return False
    return True


# -- the grammar, compiled to per-element specs -------------------------------------
@dataclass
class AttrSpec:
    required: bool
    datatype: str | None = None  # XSD type name
    values: tuple[str, ...] = ()  # allowed values (a choice of <value>)


@dataclass
class ElementSpec:
    name: str | None  # None: any name (anyName)
    excluded: frozenset[str] = frozenset()  # anyName/except names
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    any_attrs: bool = False
    any_attrs_except: frozenset[str] = frozenset()
    children: dict[str, tuple[int, float, ElementSpec]] = field(default_factory=dict)
    any_child: ElementSpec | None = None
    resources: bool = False  # resource elements (checked by the parser) may appear
    text: bool = False


def _q(tag: str) -> str:
    return f"{{{RNG_NS}}}{tag}"


class _Compiler:
    def __init__(self, grammar: etree._Element) -> None:
        self.defines: dict[str, etree._Element] = {}
        for d in grammar.iter(_q("define")):
            self.defines.setdefault(str(d.get("name")), d)
        # Keyed by the element itself: keeping the proxy alive keeps it unique
        # (an id() of a transient lxml proxy can be reused).
        self.memo: dict[etree._Element, ElementSpec] = {}
        self.resolving: list[str] = []

    def element(self, el: etree._Element) -> ElementSpec:
        if el in self.memo:
            return self.memo[el]
        name = el.get("name")
        spec = ElementSpec(name)
        self.memo[el] = spec
        body = list(_patterns(el))
        if name is None and body:
            name_class = body.pop(0)
            spec.excluded = _except_names(name_class)
        for p in body:
            self.content(spec, p, 1, 1)
        return spec

    def content(self, spec: ElementSpec, p: etree._Element, lo: int, hi: float) -> None:
        tag = etree.QName(p).localname
        kids = list(_patterns(p))
        if tag in ("optional",):
            for k in kids:
                self.content(spec, k, 0, hi)
        elif tag == "zeroOrMore":
            for k in kids:
                self.content(spec, k, 0, float("inf"))
        elif tag == "oneOrMore":
            for k in kids:
                self.content(spec, k, lo, float("inf"))
        elif tag in ("interleave", "group", "mixed"):
            if tag == "mixed":
                spec.text = True
            for k in kids:
                self.content(spec, k, lo, hi)
        elif tag == "choice":
            for k in kids:
                self.content(spec, k, 0, hi)
        elif tag == "ref":
            name = str(p.get("name"))
            if name == "RESOURCE":
                spec.resources = True
            elif name in self.defines and name not in self.resolving:
                self.resolving.append(name)
                for k in _patterns(self.defines[name]):
                    self.content(spec, k, lo, hi)
                self.resolving.pop()
        elif tag == "text":
            spec.text = True
        elif tag == "attribute":
            self.attribute(spec, p, lo)
        elif tag == "element":
            child = self.element(p)
            if child.name is None:
                spec.any_child = child
            else:
                old = spec.children.get(child.name)
                if old is not None:
                    lo, hi = old[0] + lo, old[1] + hi
                spec.children[child.name] = (lo, hi, child)
        # empty, notAllowed, data/value outside attributes: nothing to record

    def attribute(self, spec: ElementSpec, p: etree._Element, lo: int) -> None:
        name = p.get("name")
        kids = list(_patterns(p))
        if name is None:
            spec.any_attrs = True
            spec.any_attrs_except = _except_names(kids[0]) if kids else frozenset()
            return
        a = AttrSpec(required=lo >= 1)
        for k in kids:
            self.datatype(a, k)
        spec.attrs[name] = a

    def datatype(self, a: AttrSpec, p: etree._Element) -> None:
        tag = etree.QName(p).localname
        if tag == "data":
            a.datatype = p.get("type")
        elif tag == "value":
            a.values += ((p.text or "").strip(),)
        elif tag == "ref" and str(p.get("name")) in self.defines:
            for k in _patterns(self.defines[str(p.get("name"))]):
                self.datatype(a, k)
        elif tag == "choice":
            for k in _patterns(p):
                self.datatype(a, k)


def _patterns(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and c.tag.startswith(f"{{{RNG_NS}}}")]


def _except_names(name_class: etree._Element) -> frozenset[str]:
    return frozenset((n.text or "").strip() for n in name_class.iter(_q("name")))


@lru_cache(maxsize=4)
def structure(base: Path = BASE_SCHEMA) -> ElementSpec:
    """The spec of ``<cluster>`` as ``base`` (the fixed grammar) describes it."""
    grammar = etree.parse(str(base), etree.XMLParser(resolve_entities=False, no_network=True,
                                                     remove_blank_text=True)).getroot()
    start = grammar.find(f"{_q('start')}/{_q('element')}")
    if start is None:
        raise ValueError(f"{base}: no <start><element>")
    return _Compiler(grammar).element(start)


# -- checking a document ----------------------------------------------------------
def _where(path: str, el: etree._Element) -> Source:
    return Source(path, _line(el), str(el.tag))


def _plural(n: float) -> str:
    return "once" if n == 1 else f"{int(n)} times"


def check_structure(path: str, root: etree._Element, r: Reporter,
                    spec: ElementSpec | None = None) -> list[etree._Element]:
    """Report every structural problem; return the resource elements met on the way.

    Linear in the size of the document: each element is visited once and
    its attributes and children are looked up in dictionaries.
    """
    found: list[tuple[int, str, etree._Element]] = []

    def schema(msg: str, el: etree._Element) -> None:
        found.append((_line(el) or 0, msg, el))

    resources: list[etree._Element] = []
    stack: list[tuple[etree._Element, ElementSpec]] = [(root, spec or structure())]
    while stack:
        el, es = stack.pop()
        tag = str(el.tag)
        for raw_name, raw_value in el.attrib.items():
            name, value = str(raw_name), str(raw_value)
            a = es.attrs.get(name)
            if a is None:
                if not es.any_attrs or name in es.any_attrs_except:
                    allowed = ", ".join(sorted(es.attrs)) or "none"
                    schema(f"unexpected attribute '{name}' on <{tag}> (allowed: {allowed})", el)
                continue
            problem = None
            if a.values and value.strip() not in a.values:
                problem = f"{_shorten(value)} is not one of {', '.join(a.values)}"
            elif a.datatype in ("integer", "nonNegativeInteger", "positiveInteger"):
                problem = integer_error(value, a.datatype)
            if problem:
                schema(f"attribute {name}: {problem}", el)
        for name, a in es.attrs.items():
            if a.required and el.get(name) is None:
                schema(f"<{tag}> is missing required attribute '{name}'", el)
        if not es.text and el.text and el.text.strip():
            schema(f"unexpected text {_shorten(el.text.strip())} in <{tag}>", el)
        counts: dict[str, list[etree._Element]] = {}
        for child in el:
            if not es.text and child.tail and child.tail.strip():
                schema(f"unexpected text {_shorten(child.tail.strip())} in <{tag}>", el)
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions, entity references
            ctag = child.tag
            known = es.children.get(ctag)
            if known is not None:
                counts.setdefault(ctag, []).append(child)
                stack.append((child, known[2]))
            elif es.resources and "{" not in ctag:
                resources.append(child)
            elif es.any_child is not None and ctag not in es.any_child.excluded:
                stack.append((child, es.any_child))
            else:
                names = sorted(es.children)
                hint = f" (allowed: {', '.join(names)})" if names else ""
                schema(f"unexpected element <{ctag}> in <{tag}>{hint}", child)
        for ctag, (lo, hi, _) in es.children.items():
            seen = counts.get(ctag, [])
            if len(seen) < lo:
                schema(f"<{tag}> is missing required element <{ctag}>", el)
            elif len(seen) > hi:
                first = _line(seen[0])
                schema(f"<{ctag}> may appear only {_plural(hi)} in <{tag}> "
                       f"(first at line {first if first is not None else '?'})",
                       seen[int(hi)])
    for _, msg, el in sorted(found, key=lambda f: f[0]):  # file order (stable per line)
        r.error("E_SCHEMA", f"does not match the schema: {msg}", _where(path, el))
    return resources
