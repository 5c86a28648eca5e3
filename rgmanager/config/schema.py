"""The cluster.conf RelaxNG grammar: ``etc/cluster.rng`` plus generated resources.

As rgmanager's tools did, the resource part is built from the agents'
meta-data, so a new agent is valid in cluster.conf the moment it is
installed and the schema is never written twice.

The resource grammar is shaped for libxml2's validator, whose time grows with
the square of an element's children and multiplies with each
``<optional><attribute>``: a resource's attributes are one repeated
attribute pattern over a choice of the allowed names, and its children an
``<interleave>`` of resources and actions. Required attributes and value
types are not in the grammar; the parser checks them with the agents' rules
(with exact messages) before libxml2 runs, and hands libxml2 the document
with the resource subtrees already checked and cut off (see
:mod:`.parser`), so validation is linear.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from lxml import etree

from ..agents.rules import ResourceRule

BASE_SCHEMA = Path(__file__).resolve().parents[2] / "etc" / "cluster.rng"
RNG_NS = "http://relaxng.org/ns/structure/1.0"

#: Per-reference attributes rgmanager reads on every resource element.
SPECIAL_ATTRS = (
    "__independent_subtree",
    "__enforce_timeouts",
    "__max_failures",
    "__failure_expire_time",
    "__max_restarts",
    "__restart_expire_time",
)


def _el(tag: str, parent: etree._Element | None = None, **attrs: str) -> etree._Element:
    if parent is None:
        nsmap: dict[str | None, str] = {None: RNG_NS}
        # lxml-stubs types nsmap keys as str, but None (default namespace) is valid.
        el = etree.Element(f"{{{RNG_NS}}}{tag}", nsmap=nsmap)  # type: ignore[arg-type]
    else:
        el = etree.SubElement(parent, f"{{{RNG_NS}}}{tag}")
    for k, v in attrs.items():
        el.set(k, v)
    return el


def generate_grammar(rules: Iterable[ResourceRule], base: Path = BASE_SCHEMA) -> str:
    """The complete grammar text: the base file with RESOURCE defined by ``rules``."""
    grammar = _el("grammar")
    grammar.set("datatypeLibrary", "http://www.w3.org/2001/XMLSchema-datatypes")
    include = _el("include", grammar, href=base.resolve().as_uri())
    define = _el("define", include, name="RESOURCE")
    choice = _el("choice", define)
    rule_list = sorted(rules, key=lambda r: r.type)
    if not rule_list:
        _el("notAllowed", choice)
    for rule in rule_list:
        element = _el("element", choice, name=rule.type)
        names = ["ref", *SPECIAL_ATTRS]
        names += [p.name for p in rule.params if p.name not in names]
        allowed = _el("choice", _el("attribute", _el("zeroOrMore", element)))
        for name in names:
            _el("name", allowed).text = name
        inner = _el("interleave", element)
        _el("ref", _el("zeroOrMore", inner), name="RESOURCE")
        _el("ref", _el("zeroOrMore", inner), name="ACTION")
    return etree.tostring(grammar, pretty_print=True, encoding="unicode")


@lru_cache(maxsize=8)
def _compiled(grammar_text: str) -> etree.RelaxNG:
    return etree.RelaxNG(etree.fromstring(grammar_text.encode()))


def relaxng_for(rules: Iterable[ResourceRule]) -> etree.RelaxNG:
    return _compiled(generate_grammar(rules))
