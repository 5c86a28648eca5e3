"""The ip agent's kept rtnetlink socket (agentlib/netlink.py) against the real kernel."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from rgmanager.agentlib import netlink

from .conftest import REPO


def _pyroute2_view() -> tuple[set[tuple[int, int, str]], set[tuple[int, str, int]]]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        addrs = {(m["index"], m["prefixlen"], m.get("IFA_LOCAL") or m.get("IFA_ADDRESS"))
                 for m in ipr.get_addr()}
        links = {(m["index"], m.get("IFLA_IFNAME"), m["flags"]) for m in ipr.get_links()}
    return addrs, links


def _our_view() -> tuple[set[tuple[int, int, str]], set[tuple[int, str, int]]]:
    import ipaddress

    addrs = {(a.index, a.prefixlen, str(ipaddress.ip_address(a.address)))
             for a in netlink.addresses()}
    links = {(link.index, link.name, link.flags) for link in netlink.links()}
    return addrs, links


def test_same_view_as_pyroute2() -> None:
    ours, theirs = _our_view(), _pyroute2_view()
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    lo = netlink.link(1)
    assert lo is not None and lo.name == "lo"
    assert netlink.link(2**31 - 1) is None  # ENODEV is an answer, not an error


def test_family_filter() -> None:
    v4 = netlink.addresses(socket.AF_INET)
    assert v4 and all(len(a.address) == 4 for a in v4)
    assert all(len(a.address) == 16 for a in netlink.addresses(socket.AF_INET6))


def test_reopens_after_an_error() -> None:
    netlink.addresses(socket.AF_INET)
    kept = netlink._channel.sock
    assert kept is not None
    kept.sock.close()  # broken behind its back
    assert netlink.addresses(socket.AF_INET)
    assert netlink._channel.sock is not kept


def test_forked_child_opens_its_own_socket() -> None:
    netlink.addresses(socket.AF_INET)
    parent_sock = netlink._channel.sock
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not use (or close) the parent's socket
        ok = netlink._channel.sock is None and bool(netlink.addresses(socket.AF_INET))
        os.write(w, b"1" if ok and netlink._channel.sock is not parent_sock else b"0")
        os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1"
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert netlink._channel.sock is parent_sock
    assert netlink.addresses(socket.AF_INET)  # the parent's socket still works


def test_status_never_imports_pyroute2_and_is_cheap() -> None:
    """In a long-lived process a status check is a dump and a request, not an import."""
    code = textwrap.dedent("""
        import sys, time
        from rgmanager.agentlib import ip, ocf
        env = {"OCF_RESKEY_address": "127.0.0.1", "OCF_RESKEY_monitor_link": "0"}
        params = ocf.Params(ip.SPEC, env)
        assert ip.status(params) == 0
        n = 500
        start = time.process_time()
        for _ in range(n):
            ip.status(params)
        per_call = (time.process_time() - start) / n
        assert "pyroute2" not in sys.modules, "status imported pyroute2"
        print(per_call)
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert float(p.stdout) < 0.0003  # measured ~0.04 ms; pyroute2 kept open was ~0.5 ms


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_a_socket_is_never_reused_across_namespaces(netns: str) -> None:
    """One process, two namespaces: each answers for its own (the key is the netns inode)."""
    subprocess.run(["ip", "-n", netns, "link", "add", "rgt0", "type", "veth", "peer", "name",
                    "rgt1"], check=True)
    subprocess.run(["ip", "-n", netns, "addr", "add", "192.0.2.77/24", "dev", "rgt0"],
                   check=True)
    code = textwrap.dedent(f"""
        import ctypes, os, socket
        from rgmanager.agentlib import netlink
        def v4():
            return {{bytes(a.address) for a in netlink.addresses(socket.AF_INET)}}
        here = v4()
        assert bytes([192, 0, 2, 77]) not in here
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/run/netns/{netns}", os.O_RDONLY)
        assert libc.setns(fd, 0x40000000) == 0, os.strerror(ctypes.get_errno())
        there = v4()
        assert bytes([192, 0, 2, 77]) in there, there
        assert bytes([127, 0, 0, 1]) in there and there != here
        assert {{link.name for link in netlink.links()}} == {{"lo", "rgt0", "rgt1"}}
        print("ok")
    """)
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"
    assert time.monotonic() - started < 60
