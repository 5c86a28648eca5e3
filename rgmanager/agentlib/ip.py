"""The ``ip`` agent: a floating IPv4/IPv6 address that moves with its service.

The address is added with netlink (pyroute2) to the interface that already
sits on the address's network, so clients on that network can reach it
without routing changes; after adding, the new owner announces itself
(gratuitous ARP / unsolicited neighbour advertisement) so that neighbours
drop the stale MAC of the previous owner at once instead of after their
cache times out.  Announcing is best effort: a failed announcement only
delays failover for clients, it does not make the address unusable.

Status codes: address absent -> 7 (not running; the resource is simply not
there, recovery restarts it); address present but the link has no carrier
with ``monitor_link`` on -> 1 (the resource exists but cannot serve).

Reading state (status, and what start and stop look at) goes through
:mod:`.netlink`, one kept-open rtnetlink socket: a status costs tens of
microseconds in the agent host and never imports pyroute2, which only
adds and removes the address.

``nfslock`` is accepted (inherited from the service) but the NFS lock
reclaim it triggered in rgmanager is not implemented here; ``disable_rdisc``
is accepted and ignored (no router discovery daemon is managed).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from . import netlink
from .ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_INSTALLED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
    AgentError,
    AgentSpec,
    Child,
    Param,
    Params,
    run,
    standard_actions,
)

log = logging.getLogger(__name__)

IFF_UP = 0x1
IFF_RUNNING = 0x40
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40

#: How long start waits for IPv6 duplicate address detection to finish.
DAD_WAIT = 5.0

SPEC = AgentSpec(
    name="ip",
    shortdesc="This is an IP address.",
    longdesc=(
        "A floating IPv4 or IPv6 address. It is added to the interface that already "
        "has an address on the same network (or to prefer_interface), and announced "
        "with gratuitous ARP or an unsolicited neighbour advertisement."
    ),
    params=(
        Param("address", "IP address", primary=True, unique=True, required=True,
              longdesc="IPv4 or IPv6 address, optionally with /prefix. Without a prefix "
                       "the prefix of the interface's matching network is used."),
        Param("family", "Family: auto, inet or inet6", default="auto"),
        Param("monitor_link", "Monitor NIC link", "boolean", default="1",
              longdesc="If set, status fails when the interface has no carrier."),
        Param("nfslock", "Enable NFS lock workarounds", "boolean", inherit="service%nfslock"),
        Param("sleeptime", "Seconds to sleep after adding or removing the address",
              "integer", default="0"),
        Param("prefer_interface", "Network interface to use",
              longdesc="Use this interface instead of the one on the address's network."),
        Param("disable_rdisc", "Disable updating of routing using RDISC protocol",
              "boolean", default="0",
              longdesc="Accepted for compatibility; no router discovery is managed."),
    ),
    actions=standard_actions(start_timeout=20, stop_timeout=20, recover_timeout=20,
                             depths=((0, 10, 10), (10, 20, 20))),
    children=(Child("nfsclient", forbid=True), Child("nfsexport", forbid=True)),
    maxinstances=1,
)


@dataclass(frozen=True)
class Target:
    """The address as configured: value, family, and prefix if one was given."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefix: int | None

    @property
    def family(self) -> int:
        return socket.AF_INET if self.address.version == 4 else socket.AF_INET6


@dataclass(frozen=True)
class Present:
    """Where an address currently is: interface index and prefix length, IFA_F_* flags."""

    index: int
    prefix: int
    flags: int


def parse_target(params: Params) -> Target:
    """Parse ``address`` and check it against ``family``; config errors are rc 6."""
    raw = params.str("address").strip()
    try:
        if "/" in raw:
            iface = ipaddress.ip_interface(raw)
            target = Target(iface.ip, iface.network.prefixlen)
        else:
            target = Target(ipaddress.ip_address(raw), None)
    except ValueError as err:
        raise AgentError(OCF_ERR_CONFIGURED, f"address {raw!r} is not valid: {err}") from err
    family = (params.get("family") or "auto").strip().lower()
    if family not in ("auto", "inet", "inet6"):
        raise AgentError(OCF_ERR_CONFIGURED, f"family {family!r} is not auto, inet or inet6")
    if (family == "inet" and target.address.version != 4) or (
            family == "inet6" and target.address.version != 6):
        raise AgentError(OCF_ERR_CONFIGURED, f"address {raw} does not belong to family {family}")
    return target


def _iproute() -> Any:
    """pyroute2's IPRoute, to change addresses (start and stop only); imported
    lazily so that meta-data and status work without it."""
    try:
        from pyroute2 import IPRoute
    except ImportError as err:
        raise AgentError(OCF_ERR_INSTALLED, "python module pyroute2 is not installed") from err
    return IPRoute()


def _ip(addr: netlink.Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(addr.address)
    except ValueError:  # neither 4 nor 16 bytes
        return None


def ifname(index: int) -> str:
    found = netlink.link(index)
    return found.name if found is not None and found.name else "?"


def find_present(target: Target) -> Present | None:
    """Where the address is configured now, if anywhere."""
    packed = target.address.packed
    for addr in netlink.addresses(target.family):
        if addr.address == packed:
            return Present(addr.index, addr.prefixlen, addr.flags)
    return None


def choose_interface(target: Target, prefer: str | None) -> tuple[int, str, int]:
    """Pick (index, name, prefix) for a new address, as rgmanager's ip.sh does.

    The interface is ``prefer`` if given, else the one with an address of the
    same family whose network contains the new address; the prefix is the
    configured one, else that network's.  Nothing matching is a configuration
    error: adding the address anywhere else would make it unreachable.
    """
    names = {link.index: link.name for link in netlink.links()}
    index: int | None = None
    if prefer:
        matches = [i for i, n in names.items() if n == prefer]
        if not matches:
            raise AgentError(OCF_ERR_CONFIGURED, f"prefer_interface {prefer} does not exist")
        index = matches[0]
    for msg in netlink.addresses(target.family):
        if index is not None and msg.index != index:
            continue
        addr = _ip(msg)
        if addr is None:
            continue
        net = ipaddress.ip_interface(f"{addr}/{msg.prefixlen}").network
        if target.address in net and net.prefixlen < net.max_prefixlen:
            prefix = target.prefix if target.prefix is not None else net.prefixlen
            return msg.index, names.get(msg.index, "?"), prefix
    if index is not None and prefer and target.prefix is not None:
        return index, prefer, target.prefix
    where = f"on {prefer}" if prefer else "on any interface"
    raise AgentError(OCF_ERR_CONFIGURED,
                     f"no IPv{target.address.version} network {where} contains {target.address}"
                     + ("" if prefer else "; set prefer_interface and a /prefix to force one"))


def is_up(link: netlink.Link | None) -> bool:
    """Administratively up and running (has carrier): IFF_UP and IFF_RUNNING."""
    return link is not None and bool(link.flags & IFF_UP) and bool(link.flags & IFF_RUNNING)


def link_up(index: int) -> bool:
    return is_up(netlink.link(index))


def _mac(index: int) -> bytes | None:
    found = netlink.link(index)
    raw = found.mac if found is not None else None
    return raw if raw is not None and len(raw) == 6 and raw != bytes(6) else None


def send_gratuitous_arp(ifname: str, mac: bytes, addr: ipaddress.IPv4Address) -> None:
    """Broadcast one gratuitous ARP request (sender = target = addr), like ``arping -U``.

    Sent on a raw AF_PACKET socket bound to the interface, so it never leaves
    through any other link and needs no external program.
    """
    eth = b"\xff" * 6 + mac + struct.pack("!H", 0x0806)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + addr.packed + b"\x00" * 6 + addr.packed
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as sock:
        sock.bind((ifname, 0))
        sock.send(eth + arp)


def send_unsolicited_na(index: int, mac: bytes, addr: ipaddress.IPv6Address) -> None:
    """Send one unsolicited neighbour advertisement for ``addr`` to all-nodes (ff02::1).

    Override flag set so neighbours replace their cached MAC; hop limit 255
    as RFC 4861 requires; the kernel fills in the ICMPv6 checksum.
    """
    na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + addr.packed
    na += struct.pack("!BB", 2, 1) + mac  # target link-layer address option
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.sendto(na, ("ff02::1", 0, 0, index))


def _wait_dad(target: Target) -> Present | None:
    """Wait for IPv6 duplicate address detection; the address is unusable until it ends."""
    deadline = time.monotonic() + DAD_WAIT
    while True:
        present = find_present(target)
        if present is None or not present.flags & IFA_F_TENTATIVE:
            return present
        if present.flags & IFA_F_DADFAILED or time.monotonic() > deadline:
            return present
        time.sleep(0.1)


def _announce(target: Target, index: int, ifname: str) -> None:
    mac = _mac(index)
    if mac is None:
        log.info("%s has no hardware address; not announcing %s", ifname, target.address)
        return
    try:
        if isinstance(target.address, ipaddress.IPv4Address):
            send_gratuitous_arp(ifname, mac, target.address)
        else:
            send_unsolicited_na(index, mac, target.address)
    except OSError as err:
        log.warning("could not announce %s on %s: %s", target.address, ifname, err)


def _sleep(params: Params) -> None:
    seconds = params.int("sleeptime")
    if seconds > 0:
        time.sleep(seconds)


def _change(action: str, index: int, target: Target, prefix: int) -> None:
    """Add or delete the address (pyroute2; raises its NetlinkError)."""
    with _iproute() as ipr:
        ipr.addr(action, index=index, address=str(target.address), prefixlen=prefix)


def start(params: Params) -> int:
    target = parse_target(params)
    monitor = params.bool("monitor_link")
    present = find_present(target)
    if present is not None:
        if monitor and not link_up(present.index):
            raise AgentError(OCF_ERR_GENERIC, f"{target.address} is on "
                                              f"{ifname(present.index)}, whose link is down")
        log.info("%s already present on %s", target.address, ifname(present.index))
        return OCF_SUCCESS
    index, name, prefix = choose_interface(target, params.get("prefer_interface"))
    if monitor and not link_up(index):
        raise AgentError(OCF_ERR_GENERIC, f"link on {name} is down; not adding {target.address}")
    log.info("adding %s/%d to %s", target.address, prefix, name)
    try:
        _change("add", index, target, prefix)
    except AgentError:
        raise
    except Exception as err:  # NetlinkError; pyroute2 is imported lazily
        if getattr(err, "code", None) != errno.EEXIST:
            raise AgentError(OCF_ERR_GENERIC,
                             f"adding {target.address} to {name} failed: {err}") from err
    if target.address.version == 6:
        present = _wait_dad(target)
        if present is not None and present.flags & IFA_F_DADFAILED:
            _change("del", index, target, prefix)
            raise AgentError(OCF_ERR_GENERIC,
                             f"{target.address} is already in use on the network "
                             "(duplicate address detection failed)")
        if present is not None and present.flags & IFA_F_TENTATIVE:
            log.warning("%s still tentative on %s; not announcing", target.address, name)
            _sleep(params)
            return OCF_SUCCESS
    _announce(target, index, name)
    _sleep(params)
    return OCF_SUCCESS


def stop(params: Params) -> int:
    target = parse_target(params)
    present = find_present(target)
    if present is None:
        log.info("%s is not configured; nothing to stop", target.address)
        return OCF_SUCCESS
    log.info("removing %s/%d from %s", target.address, present.prefix, ifname(present.index))
    try:
        _change("del", present.index, target, present.prefix)
    except AgentError:
        raise
    except Exception as err:  # NetlinkError
        if getattr(err, "code", None) != errno.EADDRNOTAVAIL:
            raise AgentError(OCF_ERR_GENERIC, f"removing {target.address} failed: {err}") from err
    if find_present(target) is not None:
        raise AgentError(OCF_ERR_GENERIC, f"{target.address} is still configured")
    _sleep(params)
    return OCF_SUCCESS


def status(params: Params) -> int:
    """One address dump and, with monitor_link, one link request (no pyroute2)."""
    target = parse_target(params)
    present = find_present(target)
    if present is None:
        raise AgentError(OCF_NOT_RUNNING, f"{target.address} is not configured")
    if present.flags & IFA_F_DADFAILED:
        raise AgentError(OCF_ERR_GENERIC, f"{target.address} failed duplicate detection")
    if params.bool("monitor_link"):
        link = netlink.link(present.index)
        if not is_up(link):
            name = link.name if link is not None else "?"
            raise AgentError(OCF_ERR_GENERIC, f"link on {name} is down "
                                              f"(no carrier) for {target.address}")
    return OCF_SUCCESS


def validate(params: Params) -> int:
    parse_target(params)
    params.int("sleeptime")
    if not os.path.isdir("/proc/sys/net"):
        raise AgentError(OCF_ERR_INSTALLED, "no network stack (/proc/sys/net missing)")
    return OCF_SUCCESS


def main() -> int:
    return run(SPEC, {"start": start, "stop": stop, "status": status, "recover": start,
                      "validate-all": validate})
