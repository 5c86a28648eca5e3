"""nfsclient, nfsexport and nfsserver against the host's exportfs and kernel NFS server.

nfsclient only needs ``exportfs`` (which maintains /var/lib/nfs/etab even
without a running nfsd), so its tests run wherever nfs-kernel-server is
installed.  nfsexport/nfsserver need the kernel NFS server; where the kernel
has none the lifecycle tests skip with the probed reason and the failure-path
tests check that the agents say so (OCF_ERR_INSTALLED) instead of pretending.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgmanager.agentlib import nfsexport, nfsserver, nfsutil
from rgmanager.agentlib.nfsutil import Export, parse_exportfs
from rgmanager.agentlib.ocf import Params

from ._nfs_helpers import (  # noqa: F401  (nfs_server_fixture provides nfs_server)
    NfsServer,
    kernel_nfsd_reason,
    nfs_server_fixture,
    nfsd_threads,
    pids_of,
    sh,
    unexport_under,
)
from .conftest import RunAgent, needs_root, ocf_tester

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("exportfs") is None,
                       reason="exportfs (nfs-kernel-server) is not installed"),
]


@pytest.fixture
def export_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory to export; every export below tmp_path is removed afterwards."""
    d = tmp_path / "export"
    d.mkdir()
    try:
        yield d
    finally:
        unexport_under(tmp_path)


def exported(path: Path, client: str) -> Export | None:
    for e in parse_exportfs(sh("exportfs", "-v").stdout):
        if e.path == str(path) and e.client == client:
            return e
    return None


# --- exportfs -v parsing (pure) ---------------------------------------------

def test_parse_exportfs_plain_wrapped_and_world() -> None:
    text = (
        "/srv/a        \t127.0.0.1(sync,wdelay,fsid=7,rw)\n"
        "/srv/a very long directory name for export/x\n"
        "\t\t10.0.0.0/8(ro,root_squash)\n"
        "/srv/b        \t<world>(ro)\n"
        "/srv/b        \t@ng(ro)\n"
    )
    assert parse_exportfs(text) == [
        Export("/srv/a", "127.0.0.1", "sync,wdelay,fsid=7,rw"),
        Export("/srv/a very long directory name for export/x", "10.0.0.0/8", "ro,root_squash"),
        Export("/srv/b", "<world>", "ro"),
        Export("/srv/b", "@ng", "ro"),
    ]


# --- nfsclient ---------------------------------------------------------------

def test_nfsclient_lifecycle(run_agent: RunAgent, export_dir: Path) -> None:
    p = dict(name="c1", target="127.0.0.1", path=str(export_dir), fsid="4711",
             options="rw,no_root_squash")
    assert run_agent("nfsclient", "status", **p).rc == 7
    assert run_agent("nfsclient", "start", **p).rc == 0
    e = exported(export_dir, "127.0.0.1")
    assert e is not None
    assert "fsid=4711" in e.options and "rw" in e.options.split(",")
    assert "no_root_squash" in e.options.split(",")
    assert run_agent("nfsclient", "start", **p).rc == 0  # already exported
    assert run_agent("nfsclient", "status", **p).rc == 0
    assert run_agent("nfsclient", "monitor", **p).rc == 0
    assert run_agent("nfsclient", "stop", **p).rc == 0
    assert exported(export_dir, "127.0.0.1") is None
    assert run_agent("nfsclient", "stop", **p).rc == 0  # already gone
    assert run_agent("nfsclient", "status", **p).rc == 7


def test_nfsclient_long_path_world_and_netgroup(run_agent: RunAgent, export_dir: Path) -> None:
    """Long paths wrap in exportfs -v; '*' shows as <world>; two targets, one path."""
    long_dir = export_dir / "a rather long directory name that makes exportfs wrap"
    long_dir.mkdir()
    world = dict(name="w", target="*", path=str(long_dir), options="ro")
    net = dict(name="n", target="127.0.0.0/8", path=str(long_dir))
    assert run_agent("nfsclient", "start", **world).rc == 0
    assert run_agent("nfsclient", "start", **net).rc == 0
    assert exported(long_dir, "<world>") is not None
    assert run_agent("nfsclient", "status", **world).rc == 0
    assert run_agent("nfsclient", "status", **net).rc == 0
    assert run_agent("nfsclient", "stop", **world).rc == 0
    assert run_agent("nfsclient", "status", **world).rc == 7
    assert run_agent("nfsclient", "status", **net).rc == 0  # the other target is untouched
    assert run_agent("nfsclient", "stop", **net).rc == 0
    assert run_agent("nfsclient", "status", **net).rc == 7


def test_nfsclient_unexported_behind_its_back(run_agent: RunAgent, export_dir: Path) -> None:
    p = dict(name="c2", target="127.0.0.1", path=str(export_dir), options="rw")
    assert run_agent("nfsclient", "start", **p).rc == 0
    sh("exportfs", "-u", f"127.0.0.1:{export_dir}").check_returncode()
    assert run_agent("nfsclient", "status", **p).rc == 7
    assert run_agent("nfsclient", "recover", **p).rc == 0  # allow_recover defaults to 1
    assert run_agent("nfsclient", "status", **p).rc == 0
    assert run_agent("nfsclient", "recover", allow_recover="0", **p).rc == 1
    assert run_agent("nfsclient", "stop", **p).rc == 0


def test_nfsclient_failures(run_agent: RunAgent, tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    r = run_agent("nfsclient", "start", name="c3", target="127.0.0.1", path=str(missing))
    assert r.rc == 1 and "not a directory" in r.stderr
    assert exported(missing, "127.0.0.1") is None
    assert run_agent("nfsclient", "validate-all", name="c3", target="a b", path="/x").rc == 6
    assert run_agent("nfsclient", "validate-all", name="c3", target="h", path="rel").rc == 6
    r = run_agent("nfsclient", "start", name="c3", target="127.0.0.1")
    assert r.rc == 6 and "path" in r.stderr


def test_nfsclient_ocf_tester(rsctmp: Path, export_dir: Path) -> None:
    r = ocf_tester("nfsclient", {"name": "t", "target": "127.0.0.1", "path": str(export_dir),
                                 "fsid": "4712", "options": "rw"}, rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout


# --- nfsexport / nfsserver: kernel NFS server absent ---------------------------

def test_nfs_server_agents_report_missing_kernel_server(run_agent: RunAgent,
                                                        tmp_path: Path) -> None:
    reason = kernel_nfsd_reason()
    if reason is None:
        pytest.skip("this kernel has an NFS server; the absent-server path is not testable")
    r = run_agent("nfsexport", "start", name="e1", path=str(tmp_path))
    assert r.rc == 5, r.stderr
    assert "kernel NFS server unavailable" in r.stderr
    assert run_agent("nfsexport", "status", name="e1", path=str(tmp_path)).rc == 7
    assert run_agent("nfsexport", "stop", name="e1", path=str(tmp_path)).rc == 0
    r = run_agent("nfsserver", "start", name="s1", path=str(tmp_path))
    assert r.rc == 5, r.stderr
    assert run_agent("nfsserver", "status", name="s1", path=str(tmp_path)).rc == 7
    assert run_agent("nfsserver", "stop", name="s1", path=str(tmp_path)).rc == 0
    assert run_agent("nfsserver", "validate-all", name="s1").rc == 6  # no path


# --- nfsexport / nfsserver: real kernel NFS server ------------------------------

def test_nfsexport_lifecycle(run_agent: RunAgent, nfs_server: NfsServer,
                             tmp_path: Path) -> None:
    p = dict(name="e1", path=str(tmp_path), fsid="99")
    assert run_agent("nfsexport", "status", **p).rc == 7
    assert run_agent("nfsexport", "start", **p).rc == 0
    assert run_agent("nfsexport", "start", **p).rc == 0
    assert run_agent("nfsexport", "status", **p).rc == 0
    assert nfsd_threads() > 0 and pids_of("rpc.mountd")
    assert run_agent("nfsexport", "stop", **p).rc == 0
    assert run_agent("nfsexport", "stop", **p).rc == 0
    assert run_agent("nfsexport", "status", **p).rc == 7
    assert nfsd_threads() > 0  # the shared server keeps running


def test_nfsexport_ocf_tester(rsctmp: Path, nfs_server: NfsServer, tmp_path: Path) -> None:
    r = ocf_tester("nfsexport", {"name": "t", "path": str(tmp_path)}, rsctmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed all tests" in r.stdout


def test_nfsserver_lifecycle(run_agent: RunAgent, nfs_server: NfsServer,
                             tmp_path: Path) -> None:
    fsroot = tmp_path / "fs"
    fsroot.mkdir()
    p = dict(name="s1", path=str(fsroot))
    try:
        # Start from a stopped server so that the agent owns what it starts.
        assert run_agent("nfsserver", "stop", **p).rc == 0
        assert run_agent("nfsserver", "status", **p).rc == 7
        assert run_agent("nfsserver", "start", **p).rc == 0
        for sub in ("statd/sm", "statd/sm.bak", "v4recovery"):
            assert (fsroot / ".clumanager/nfs" / sub).is_dir()
        assert run_agent("nfsserver", "start", **p).rc == 0
        assert run_agent("nfsserver", "status", **p).rc == 0
        assert nfsd_threads() > 0
        # nfsd stopped behind its back: status must notice.
        sh("rpc.nfsd", "0")
        assert run_agent("nfsserver", "status", **p).rc == 7
        assert run_agent("nfsserver", "recover", **p).rc == 0
        assert run_agent("nfsserver", "status", **p).rc == 0
        assert run_agent("nfsserver", "stop", **p).rc == 0
        assert run_agent("nfsserver", "stop", **p).rc == 0
        assert run_agent("nfsserver", "status", **p).rc == 7
        assert nfsd_threads() == 0
    finally:
        run_agent("nfsserver", "stop", **p)
        nfs_server.ensure()


def test_nfsserver_ocf_tester(rsctmp: Path, nfs_server: NfsServer, tmp_path: Path) -> None:
    try:
        r = ocf_tester("nfsserver", {"name": "t", "path": str(tmp_path)}, rsctmp)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "passed all tests" in r.stdout
    finally:
        nfs_server.ensure()


# --- control flow with stand-in daemons (runs everywhere) -------------------------

STANDIN_DAEMON = """#!/bin/sh
# Stand-in for a self-daemonizing NFS daemon: a background copy of sleep named like it.
{binary} 300 </dev/null >/dev/null 2>&1 &
"""


def test_nfsserver_nfsexport_ownership_with_standin_daemons(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which daemons nfsserver records and kills, checked without a kernel NFS server.

    Stand-ins: rpc.nfsd writes its argument to a fake threads file; rpc.mountd
    and rpc.statd start a copy of sleep with that name.  The real-server tests
    above cover the same paths against nfsd where the kernel allows.
    """
    if pids_of("rpc.mountd") or pids_of("rpc.statd"):
        pytest.skip("real rpc.mountd/rpc.statd are running; stand-ins would be confused")
    bindir, daemons, nfsd = tmp_path / "bin", tmp_path / "daemons", tmp_path / "nfsd"
    for d in (bindir, daemons, nfsd):
        d.mkdir()
    (nfsd / "threads").write_text("0\n")
    (bindir / "rpc.nfsd").write_text(f'#!/bin/sh\necho "$1" > {nfsd}/threads\n')
    for name in ("rpc.mountd", "rpc.statd"):
        shutil.copy("/bin/sleep", daemons / name)
        (bindir / name).write_text(STANDIN_DAEMON.format(binary=daemons / name))
    for f in bindir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("HA_RSCTMP", str(tmp_path / "rsctmp"))
    monkeypatch.setattr(nfsutil, "NFSD_FS", str(nfsd))
    monkeypatch.setattr(nfsutil, "nfsd_fs_mounted", lambda: True)
    monkeypatch.setattr(nfsutil, "ensure_rpcbind", lambda: None)

    fsroot = tmp_path / "fs"
    fsroot.mkdir()
    server = Params(nfsserver.SPEC, {"OCF_RESKEY_name": "s1", "OCF_RESKEY_path": str(fsroot)})
    export = Params(nfsexport.SPEC, {"OCF_RESKEY_name": "e1", "OCF_RESKEY_path": str(fsroot)})
    try:
        assert nfsserver.status(server) == 7
        assert nfsserver.start(server) == 0
        record = nfsutil.Record("nfsserver", "s1").load()
        assert record is not None
        assert record["mountd"] in nfsutil.pids_of("rpc.mountd")
        assert record["statd"] in nfsutil.pids_of("rpc.statd")
        assert (fsroot / ".clumanager/nfs/statd/sm").is_dir()
        assert nfsserver.start(server) == 0
        assert nfsutil.Record("nfsserver", "s1").load() == record  # nothing new started
        assert nfsserver.status(server) == 0
        assert nfsexport.status(export) == 7
        assert nfsexport.start(export) == 0 and nfsexport.status(export) == 0
        assert nfsexport.stop(export) == 0 and nfsexport.status(export) == 7
        assert nfsutil.nfsd_threads() == 8  # nfsexport leaves the shared server alone
        assert nfsserver.stop(server) == 0
        assert nfsutil.nfsd_threads() == 0
        assert not nfsutil.pids_of("rpc.mountd") and not nfsutil.pids_of("rpc.statd")
        assert nfsserver.status(server) == 7
        assert nfsserver.stop(server) == 0
    finally:
        for name in ("rpc.mountd", "rpc.statd"):
            for pid in nfsutil.pids_of(name):
                nfsutil.kill_pid(pid, name)
