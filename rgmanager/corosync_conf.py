"""corosync.conf from our cluster.conf model, as cman used to generate it.

``render(config, addresses=None, crypto_key_file=None) -> str``:

- ``totem``: version 2, ``cluster_name`` = ``<cluster name>``, transport knet
  (or ``<cman transport="udpu|udp|knet">``), every ``<totem>`` attribute
  corosync knows (``token``, ``token_coefficient``, ``consensus``, ``join``,
  ... validated as unsigned integers), cman's ``rrp_mode`` as knet's
  ``link_mode``; crypto ``aes256``/``sha256`` with ``keyfile`` when a key
  file is given (``crypto_key_file``, else ``<totem keyfile>`` or
  ``<cman keyfile>``), ``none``/``none`` otherwise; ``<totem secauth="on">``
  without a key file is an error.
- ``nodelist``: one ``node`` per ``<clusternode>`` with ``name``, ``nodeid``,
  ``quorum_votes`` (when not 1) and ``ring0_addr`` = ``addresses[name]``, else
  the node's ``ring0_addr`` if the model carries one, else its name (a host
  name corosync resolves).
- ``quorum``: ``corosync_votequorum``, ``<cman expected_votes>``,
  ``<cman two_node="1">`` (needs exactly two nodes; cman's customary
  ``expected_votes="1"`` next to it is dropped, votequorum derives it).

Anything that would give corosync a wrong or unparsable file raises
``CorosyncConfError`` naming the element and attribute, e.g.
``cluster.conf: <totem token="abc">: must be an unsigned integer``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .config.model import ClusterConfig

#: Numeric totem options of corosync 3 (exec/totemconfig.c), all uint32.
TOTEM_UINT = frozenset({
    "token", "token_coefficient", "token_retransmit", "token_warning", "hold",
    "token_retransmits_before_loss_const", "join", "send_join", "consensus", "merge",
    "downcheck", "fail_recv_const", "seqno_unchanged_const", "heartbeat_failures_allowed",
    "max_network_delay", "window_size", "max_messages", "miss_count_const", "netmtu",
    "knet_mtu", "knet_pmtud_interval",
})
#: cman's <totem> attributes handled specially (not copied as such).
TOTEM_SPECIAL = frozenset({"secauth", "keyfile", "rrp_mode"})
#: <cman> attributes that have no meaning for corosync 3 (accepted, unused).
CMAN_IGNORED = frozenset({"cluster_id", "port", "upgrading", "broadcast", "disallowed",
                          "quorum_dev_poll", "shutdown_timeout", "nodename"})
CMAN_KNOWN = frozenset({"expected_votes", "two_node", "transport", "keyfile"}) | CMAN_IGNORED
RRP_TO_LINK_MODE = {"none": None, "passive": "passive", "active": "active"}
TRANSPORTS = ("knet", "udpu", "udp")
_UINT32_MAX = 2**32 - 1
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f{}#]")


class CorosyncConfError(ValueError):
    """cluster.conf holds something corosync.conf cannot carry."""


def render(config: ClusterConfig, *, addresses: Mapping[str, str] | None = None,
           crypto_key_file: str | None = None) -> str:
    """The text of corosync.conf for ``config`` (see the module doc)."""
    where = config.path or "cluster.conf"

    def fail(element: str, attr: str | None, value: str | None, why: str) -> None:
        at = f'<{element} {attr}="{value}">' if attr is not None else f"<{element}>"
        raise CorosyncConfError(f"{where}: {at}: {why}")

    def text(element: str, attr: str, value: str) -> str:
        if not value.strip() or _BAD_CHARS.search(value):
            fail(element, attr, value, "must be non-empty, without control characters, "
                 "braces or '#'")
        return value.strip()

    def uint(element: str, attr: str, value: str, *, minimum: int = 0) -> int:
        if not re.fullmatch(r"\s*\d+\s*", value) or not minimum <= int(value) <= _UINT32_MAX:
            fail(element, attr, value, f"must be an unsigned integer >= {minimum}")
        return int(value)

    if not config.nodes:
        fail("clusternodes", None, None, "no <clusternode>: corosync needs a nodelist")
    addresses = dict(addresses or {})
    unknown = sorted(set(addresses) - {n.name for n in config.nodes})
    if unknown:
        raise CorosyncConfError(f"{where}: addresses given for unknown nodes: {unknown}")

    cman = dict(config.cman)
    totem_attrs = dict(config.totem)
    for attr in cman:
        if attr not in CMAN_KNOWN:
            fail("cman", attr, cman[attr], "not an option rgmanager can carry to corosync")
    for attr in totem_attrs:
        if attr not in TOTEM_UINT and attr not in TOTEM_SPECIAL:
            fail("totem", attr, totem_attrs[attr],
                 "unknown totem option (corosync 3 knows: "
                 + ", ".join(sorted(TOTEM_UINT | TOTEM_SPECIAL)) + ")")

    totem: list[tuple[str, str]] = [("version", "2"),
                                    ("cluster_name", text("cluster", "name", config.name))]
    transport = cman.get("transport", "knet")
    if transport not in TRANSPORTS:
        fail("cman", "transport", transport, f"must be one of {', '.join(TRANSPORTS)}")
    totem.append(("transport", transport))

    secauth = totem_attrs.get("secauth", "off")
    if secauth not in ("on", "off", "1", "0", "yes", "no"):
        fail("totem", "secauth", secauth, "must be on or off")
    key = crypto_key_file or totem_attrs.get("keyfile") or cman.get("keyfile")
    if key is None and secauth in ("on", "1", "yes"):
        fail("totem", "secauth", secauth, "needs a key file (pass crypto_key_file, or set "
             "<totem keyfile>)")
    if key is not None:
        key_attr = ("keyfile", "totem") if crypto_key_file is None and "keyfile" in totem_attrs \
            else ("keyfile", "cman")
        key = text(key_attr[1], key_attr[0], key)
        if not key.startswith("/"):
            fail(key_attr[1], key_attr[0], key, "the key file must be an absolute path")
        if transport != "knet":
            fail("cman", "transport", transport, "encryption needs the knet transport")
        totem += [("crypto_cipher", "aes256"), ("crypto_hash", "sha256"), ("keyfile", key)]
    else:
        totem += [("crypto_cipher", "none"), ("crypto_hash", "none")]
    if "rrp_mode" in totem_attrs:
        mode = totem_attrs["rrp_mode"]
        if mode not in RRP_TO_LINK_MODE:
            fail("totem", "rrp_mode", mode, "must be none, passive or active")
        if RRP_TO_LINK_MODE[mode]:
            totem.append(("link_mode", str(RRP_TO_LINK_MODE[mode])))
    for attr in sorted(totem_attrs):
        if attr in TOTEM_UINT:
            minimum = 1 if attr not in ("token_coefficient", "miss_count_const",
                                        "max_network_delay") else 0
            totem.append((attr, str(uint("totem", attr, totem_attrs[attr], minimum=minimum))))

    quorum: list[tuple[str, str]] = [("provider", "corosync_votequorum")]
    two_node = cman.get("two_node", "0")
    if two_node not in ("0", "1"):
        fail("cman", "two_node", two_node, "must be 0 or 1")
    expected = cman.get("expected_votes")
    if expected is not None:
        uint("cman", "expected_votes", expected, minimum=1)
    if two_node == "1":
        if len(config.nodes) != 2:
            fail("cman", "two_node", two_node,
                 f"needs exactly two <clusternode>s, there are {len(config.nodes)}")
        quorum.append(("two_node", "1"))
        if expected not in (None, "1", "2"):
            fail("cman", "expected_votes", expected, "must be 1 or 2 with two_node=\"1\"")
        expected = None  # cman's expected_votes="1": votequorum works it out
    if expected is not None:
        quorum.append(("expected_votes", str(int(expected))))

    nodes: list[list[tuple[str, str]]] = []
    for node in sorted(config.nodes, key=lambda n: n.nodeid):
        name = text("clusternode", "name", node.name)
        if not 1 <= node.nodeid <= _UINT32_MAX:
            fail("clusternode", "nodeid", str(node.nodeid), "must be a positive integer")
        if node.votes < 0:
            fail("clusternode", "votes", str(node.votes), "must not be negative")
        addr = addresses.get(node.name) or getattr(node, "ring0_addr", None) or node.name
        entry = [("ring0_addr", text("clusternode", "ring0_addr", str(addr))),
                 ("name", name), ("nodeid", str(node.nodeid))]
        if node.votes != 1:
            entry.append(("quorum_votes", str(node.votes)))
        nodes.append(entry)

    out = [f"# Generated by rgmanager from {where} (config_version "
           f"{config.config_version}); edit cluster.conf, not this file.", ""]
    out += _section("totem", totem)
    out += ["nodelist {"]
    for entry in nodes:
        out += ["    node {"] + [f"        {k}: {v}" for k, v in entry] + ["    }"]
    out += ["}", ""]
    out += _section("quorum", quorum)
    out += _section("logging", [("to_syslog", "yes"), ("to_logfile", "no"),
                                ("timestamp", "on")])
    return "\n".join(out)


def _section(name: str, items: list[tuple[str, str]]) -> list[str]:
    return [f"{name} {{"] + [f"    {k}: {v}" for k, v in items] + ["}", ""]


__all__ = ["CorosyncConfError", "render"]
