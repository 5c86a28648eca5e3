"""The ip agent inside a private network namespace with a veth pair.

v0 carries 10.200.0.1/24 and fd00:200::1/64; the agent must put new
addresses on v0 by network match.  Announcements are captured on the peer
(v1) in the same namespace, so no packet ever leaves it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunAgent, ocf_tester

# Waits (bound to v1, inside the namespace) for an ARP with sender ADDR or an
# ICMPv6 neighbour advertisement for target ADDR; prints "ready", then "got".
CAPTURE = r"""
import ipaddress, select, socket, sys, time
ifname, addr = sys.argv[1], ipaddress.ip_address(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
print("ready", flush=True)
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    if not select.select([s], [], [], 0.2)[0]:
        continue
    f = s.recv(2048)
    etype = int.from_bytes(f[12:14], "big")
    if addr.version == 4 and etype == 0x0806 and f[28:32] == addr.packed \
            and f[38:42] == addr.packed:
        print("got", flush=True); break
    if addr.version == 6 and etype == 0x86DD and f[20] == 58 and f[54] == 136 \
            and f[62:78] == addr.packed and f[21] == 255:
        print("got", flush=True); break
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def addrs(ns: str, dev: str) -> list[str]:
    """Addresses (with prefix) on ``dev`` in namespace ``ns``."""
    out = sh("ip", "-n", ns, "-o", "addr", "show", "dev", dev)
    return [line.split()[3] for line in out.splitlines()]


@pytest.fixture
def vns(netns: str) -> Iterator[str]:
    """The namespace, with v0<->v1 up and v0 on 10.200.0.0/24 and fd00:200::/64."""
    sh("ip", "-n", netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    sh("ip", "-n", netns, "link", "set", "v0", "up")
    sh("ip", "-n", netns, "link", "set", "v1", "up")
    sh("ip", "-n", netns, "addr", "add", "10.200.0.1/24", "dev", "v0")
    sh("ip", "-n", netns, "addr", "add", "fd00:200::1/64", "dev", "v0", "nodad")
    yield netns  # the netns fixture deletes the namespace and the veth pair with it


def test_ip4_lifecycle(vns: str, run_agent: RunAgent) -> None:
    a = {"address": "10.200.0.50"}
    assert run_agent("ip", "status", netns=vns, **a).rc == 7
    r = run_agent("ip", "start", netns=vns, **a)
    assert r.rc == 0, r.stderr
    assert "10.200.0.50/24" in addrs(vns, "v0")  # prefix from v0's network
    assert run_agent("ip", "start", netns=vns, **a).rc == 0  # idempotent
    assert addrs(vns, "v0").count("10.200.0.50/24") == 1
    assert run_agent("ip", "status", netns=vns, **a).rc == 0
    assert run_agent("ip", "status", netns=vns, check_level=10, **a).rc == 0
    assert run_agent("ip", "monitor", netns=vns, **a).rc == 0
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0
    assert "10.200.0.50/24" not in addrs(vns, "v0")
    assert "10.200.0.1/24" in addrs(vns, "v0")  # the base address is untouched
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0  # idempotent
    assert run_agent("ip", "status", netns=vns, **a).rc == 7


def test_ip6_lifecycle(vns: str, run_agent: RunAgent) -> None:
    a = {"address": "fd00:200::50"}
    assert run_agent("ip", "status", netns=vns, **a).rc == 7
    r = run_agent("ip", "start", netns=vns, **a)
    assert r.rc == 0, r.stderr
    assert "fd00:200::50/64" in addrs(vns, "v0")
    assert run_agent("ip", "start", netns=vns, **a).rc == 0
    assert run_agent("ip", "status", netns=vns, check_level=10, **a).rc == 0
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0
    assert run_agent("ip", "status", netns=vns, **a).rc == 7
    assert "fd00:200::50/64" not in addrs(vns, "v0")


def test_ip_explicit_prefix_and_prefer_interface(vns: str, run_agent: RunAgent) -> None:
    a = {"address": "10.201.0.5/28", "prefer_interface": "v1"}
    assert run_agent("ip", "start", netns=vns, **a).rc == 0
    assert "10.201.0.5/28" in addrs(vns, "v1")
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0
    assert not [x for x in addrs(vns, "v1") if x.startswith("10.201")]


@pytest.mark.parametrize("address", ["10.200.0.60", "fd00:200::60"])
def test_ip_removed_behind_its_back(vns: str, run_agent: RunAgent, address: str) -> None:
    """A vanished address is "not running" (7), so recovery simply re-adds it."""
    assert run_agent("ip", "start", netns=vns, address=address).rc == 0
    prefix = 24 if ":" not in address else 64
    sh("ip", "-n", vns, "addr", "del", f"{address}/{prefix}", "dev", "v0")
    assert run_agent("ip", "status", netns=vns, address=address).rc == 7
    assert run_agent("ip", "recover", netns=vns, address=address).rc == 0
    assert run_agent("ip", "status", netns=vns, address=address).rc == 0


def test_ip_monitor_link(vns: str, run_agent: RunAgent) -> None:
    a = {"address": "10.200.0.51"}
    assert run_agent("ip", "start", netns=vns, **a).rc == 0
    sh("ip", "-n", vns, "link", "set", "v1", "down")  # v0 loses carrier
    for level in (0, 10):
        r = run_agent("ip", "status", netns=vns, check_level=level, **a)
        assert r.rc == 1 and "link on v0 is down" in r.stderr
    assert run_agent("ip", "status", netns=vns, monitor_link="0", **a).rc == 0
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0
    assert run_agent("ip", "start", netns=vns, **a).rc == 1  # no carrier: refuse
    assert run_agent("ip", "start", netns=vns, monitor_link="no", **a).rc == 0
    sh("ip", "-n", vns, "link", "set", "v1", "up")
    assert run_agent("ip", "stop", netns=vns, **a).rc == 0


def test_ip_config_errors(vns: str, run_agent: RunAgent) -> None:
    r = run_agent("ip", "start", netns=vns, address="10.99.0.1")
    assert r.rc == 6 and "no IPv4 network" in r.stderr
    assert run_agent("ip", "start", netns=vns, address="fd99::1").rc == 6
    assert run_agent("ip", "start", netns=vns, address="10.200.0.9", family="inet6").rc == 6
    assert run_agent("ip", "validate-all", netns=vns, address="10.200.0.300").rc == 6
    assert run_agent("ip", "start", netns=vns, address="10.200.0.9",
                     prefer_interface="nope0").rc == 6
    assert run_agent("ip", "validate-all", netns=vns, address="10.200.0.9",
                     monitor_link="maybe").rc == 6
    assert not [a for a in addrs(vns, "v0") if a.startswith(("10.99", "10.200.0.9/"))]


@pytest.mark.parametrize("address", ["10.200.0.70", "fd00:200::70"])
def test_ip_announces_on_the_link(vns: str, run_agent: RunAgent, address: str) -> None:
    """Gratuitous ARP / unsolicited NA for the new address reaches the peer v1."""
    cap = subprocess.Popen(["ip", "netns", "exec", vns, sys.executable, "-c", CAPTURE, "v1",
                            address], stdout=subprocess.PIPE, text=True)
    try:
        assert cap.stdout is not None and cap.stdout.readline().strip() == "ready"
        r = run_agent("ip", "start", netns=vns, address=address)
        assert r.rc == 0, r.stderr
        assert "could not announce" not in r.stderr
        out, _ = cap.communicate(timeout=15)
        assert out.strip() == "got"
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()


def test_ip_metadata(run_agent: RunAgent, rsctmp: Path) -> None:
    out = run_agent("ip", "meta-data").stdout
    assert '<parameter name="address" primary="1" unique="1" required="1">' in out
    assert 'inherit="service%nfslock"' in out
    assert '<attributes maxinstances="1"/>' in out
    assert '<child type="nfsclient" forbid="1"/>' in out
    assert '<child type="nfsexport" forbid="1"/>' in out
    assert '<action name="status" timeout="10" interval="10" depth="0"/>' in out
    assert 'name="status" timeout="20" interval="20" depth="10"' in out


def test_ip_ocf_tester(vns: str, rsctmp: Path) -> None:
    r = ocf_tester("ip", {"address": "10.200.0.80"}, rsctmp, netns=vns)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout
    r = ocf_tester("ip", {"address": "fd00:200::80"}, rsctmp, netns=vns)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "10.200.0.80/24" not in addrs(vns, "v0")
