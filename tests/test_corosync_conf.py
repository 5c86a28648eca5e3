"""rgmanager.corosync_conf.render: what it writes passes ``corosync -t``.

``corosync -t`` insists that one nodelist address is local, so the checks run
inside a private network namespace holding 10.77.0.1 on its loopback (no
traffic is sent: ``-t`` only parses and exits).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rgmanager.agents.discovery import RuleSet
from rgmanager.config.model import ClusterConfig
from rgmanager.config.parser import load_config
from rgmanager.corosync_conf import CorosyncConfError, render

ADDR = {"node1": "10.77.0.1", "node2": "10.77.0.2", "node3": "10.77.0.3"}


def conf(tmp_path: Path, body: str, nodes: int = 3, name: str = "alpha") -> ClusterConfig:
    clusternodes = "\n".join(f'    <clusternode name="node{i}" nodeid="{i}"/>'
                             for i in range(1, nodes + 1))
    path = tmp_path / f"cluster-{abs(hash(body))}.conf"
    path.write_text(f"""<?xml version="1.0"?>
<cluster name="{name}" config_version="3">
  {body}
  <clusternodes>
{clusternodes}
  </clusternodes>
  <rm/>
</cluster>
""")
    config, _ = load_config(path, RuleSet())
    return config


Check = Callable[[str], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def corosync_t(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Check]:
    """check(text) -> ``corosync -t`` of that text, run in a throwaway netns."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace for corosync -t)")
    if shutil.which("corosync", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        pytest.skip("corosync not installed")
    ns = f"rgmconf{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"ip netns unavailable: {r.stderr.strip()}")
    d = tmp_path_factory.mktemp("corosync-t")
    counter = [0]
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)

        def check(text: str) -> subprocess.CompletedProcess[str]:
            counter[0] += 1
            f = d / f"corosync{counter[0]}.conf"
            f.write_text(text)
            return subprocess.run(["ip", "netns", "exec", ns, "corosync", "-t", "-c", str(f)],
                                  capture_output=True, text=True, timeout=30)

        yield check
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def accepted(check: Check, text: str) -> None:
    r = check(text)
    assert r.returncode == 0, f"corosync -t rejected:\n{text}\n{r.stdout}{r.stderr}"


def test_three_nodes(tmp_path: Path, corosync_t: Check) -> None:
    text = render(conf(tmp_path, ""), addresses=ADDR)
    accepted(corosync_t, text)
    assert "cluster_name: alpha" in text
    assert "transport: knet" in text and "crypto_cipher: none" in text
    for i in (1, 2, 3):
        assert f"ring0_addr: 10.77.0.{i}\n        name: node{i}\n        nodeid: {i}" in text
    assert "two_node" not in text and "expected_votes" not in text


def test_two_node(tmp_path: Path, corosync_t: Check) -> None:
    config = conf(tmp_path, '<cman two_node="1" expected_votes="1"/>', nodes=2)
    text = render(config, addresses={"node1": ADDR["node1"], "node2": ADDR["node2"]})
    accepted(corosync_t, text)
    assert "two_node: 1" in text
    assert "expected_votes" not in text  # cman's expected_votes="1" is votequorum's job


def test_totem_attributes_and_votes(tmp_path: Path, corosync_t: Check) -> None:
    config = conf(tmp_path, '<cman expected_votes="3"/>\n  <totem token="5000" '
                  'token_coefficient="0" consensus="6000" join="100" '
                  'token_retransmits_before_loss_const="10" rrp_mode="passive" secauth="off"/>')
    text = render(config, addresses=ADDR)
    accepted(corosync_t, text)
    for line in ("token: 5000", "token_coefficient: 0", "consensus: 6000", "join: 100",
                 "token_retransmits_before_loss_const: 10", "link_mode: passive",
                 "expected_votes: 3"):
        assert f"    {line}\n" in text, line
    assert "secauth" not in text and "rrp_mode" not in text


def test_crypto_with_key_file(tmp_path: Path, corosync_t: Check) -> None:
    key = tmp_path / "authkey"
    if shutil.which("corosync-keygen", path="/usr/sbin:/usr/bin") is not None:
        subprocess.run(["corosync-keygen", "-k", str(key)], check=True, capture_output=True)
    else:
        key.write_bytes(os.urandom(256))
    key.chmod(0o400)
    config = conf(tmp_path, '<totem secauth="on"/>')
    text = render(config, addresses=ADDR, crypto_key_file=str(key))
    accepted(corosync_t, text)
    assert "crypto_cipher: aes256" in text and "crypto_hash: sha256" in text
    assert f"keyfile: {key}" in text
    # corosync does read the key: a missing one is refused
    r = corosync_t(text.replace(str(key), str(tmp_path / "missing")))
    assert r.returncode != 0 and "missing" in (r.stdout + r.stderr)


def test_addresses_default_to_node_names(tmp_path: Path) -> None:
    text = render(conf(tmp_path, ""))
    assert "ring0_addr: node2\n" in text


@pytest.mark.parametrize("body, nodes, message", [
    ('<totem token="abc"/>', 3, '<totem token="abc">: must be an unsigned integer'),
    ('<totem token="0"/>', 3, '<totem token="0">: must be an unsigned integer >= 1'),
    ('<totem tokn="500"/>', 3, '<totem tokn="500">: unknown totem option'),
    ('<totem rrp_mode="sideways"/>', 3, '<totem rrp_mode="sideways">: must be none'),
    ('<totem secauth="on"/>', 3, '<totem secauth="on">: needs a key file'),
    ('<cman two_node="1"/>', 3, '<cman two_node="1">: needs exactly two <clusternode>s'),
    ('<cman two_node="2"/>', 2, '<cman two_node="2">: must be 0 or 1'),
    ('<cman transport="tcp"/>', 3, '<cman transport="tcp">: must be one of knet'),
    ('<cman quorum_threshold="2"/>', 3, '<cman quorum_threshold="2">: not an option'),
])
def test_bad_values_name_the_element(tmp_path: Path, body: str, nodes: int,
                                     message: str) -> None:
    config = conf(tmp_path, body, nodes=nodes)
    with pytest.raises(CorosyncConfError) as err:
        render(config, addresses={k: v for k, v in ADDR.items() if int(k[-1]) <= nodes})
    assert message in str(err.value)
    assert str(err.value).startswith(config.path + ": <")


def test_bad_address_and_unknown_node(tmp_path: Path) -> None:
    config = conf(tmp_path, "")
    with pytest.raises(CorosyncConfError, match=r'<clusternode ring0_addr="10.0.0.1 }">'):
        render(config, addresses={"node1": "10.0.0.1 }"})
    with pytest.raises(CorosyncConfError, match="unknown nodes: \\['node9'\\]"):
        render(config, addresses={"node9": "10.77.0.9"})


def test_corosync_t_rejects_what_we_would_refuse(tmp_path: Path, corosync_t: Check) -> None:
    """The check itself has teeth: a bad value slipped past render is refused."""
    text = render(conf(tmp_path, '<totem token="500"/>'), addresses=ADDR)
    r = corosync_t(text.replace("token: 500", "token: abc"))
    assert r.returncode != 0
    assert 'totem.token' in r.stdout + r.stderr


def test_rgmanager_write_corosync_conf_flag(tmp_path: Path) -> None:
    """`rgmanager --write-corosync-conf PATH` writes what render() gives and
    exits 0; a value corosync would refuse exits 2 naming the element."""
    import subprocess
    import sys
    good = tmp_path / "good.conf"
    good.write_text('<?xml version="1.0"?>\n<cluster name="beta" config_version="2">\n'
                    '  <totem token="500" token_coefficient="0"/>\n  <clusternodes>\n'
                    '    <clusternode name="node1" nodeid="1"/>\n'
                    '    <clusternode name="node2" nodeid="2"/>\n  </clusternodes>\n'
                    '  <cman two_node="1" expected_votes="1"/>\n  <rm/>\n</cluster>\n')
    out = tmp_path / "corosync.conf"
    cmd = [sys.executable, "-m", "rgmanager.cli.daemon_main", "-c"]
    r = subprocess.run([*cmd, str(good), "--write-corosync-conf", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "cluster_name: beta" in text and "two_node: 1" in text and "token: 500" in text
    bad = tmp_path / "bad.conf"
    bad.write_text(good.read_text().replace('two_node="1"', 'two_node="2"'))
    r = subprocess.run([*cmd, str(bad), "--write-corosync-conf", "-"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert '<cman two_node="2">' in r.stderr and "Traceback" not in r.stderr
