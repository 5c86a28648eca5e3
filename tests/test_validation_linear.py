"""Validation is linear: no grammar shape that makes libxml2 backtrack, big files finish.

Speed is measured by ``python -m benchmarks.bench_validate``; the bounds here
are only generous enough to catch the old behaviour (a service with 11
attributes and 100 children took 77 s to validate).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from lxml import etree

from benchmarks.bench_validate import generate
from rgmanager.agents.discovery import RuleSet
from rgmanager.config.parser import load_config
from rgmanager.config.schema import RNG_NS, generate_grammar, relaxng_for
from rgmanager.errors import ConfigError

from .conftest import HEADER, WriteConf

HANG_S = 60
ROOT = Path(__file__).resolve().parents[1]


def _hang(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"validation took more than {HANG_S} s")


@pytest.fixture
def alarm() -> Iterator[None]:
    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(HANG_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_generated_grammar_has_no_optional_attribute_runs(rules: RuleSet) -> None:
    grammar = etree.fromstring(generate_grammar(rules).encode())
    ns = {"r": RNG_NS}
    resources = grammar.find("r:include/r:define[@name='RESOURCE']", ns)
    assert resources is not None
    assert resources.findall(".//r:optional/r:attribute", ns) == []
    fs = resources.find("r:choice/r:element[@name='fs']", ns)
    assert fs is not None
    names = [n.text for n in fs.findall("r:zeroOrMore/r:attribute/r:choice/r:name", ns)]
    assert {"ref", "name", "mountpoint", "device", "__independent_subtree"} <= set(names)


def test_rg_test_schema_grammar_still_validates(rules: RuleSet, write_conf: WriteConf) -> None:
    schema = relaxng_for(rules)
    good = etree.parse(str(write_conf("""<service name="a">
      <fs name="d" mountpoint="/srv" device="/dev/sdb1"><action name="status" depth="*"/></fs>
    </service>""")))
    assert schema.validate(good), schema.error_log
    bad = etree.parse(str(write_conf('<service name="a"><fs name="d" mountpint="/"/></service>')))
    assert not schema.validate(bad)


def test_service_with_many_children_finishes(tmp_path: Path) -> None:
    # In a child process: libxml2 cannot be interrupted by a signal, and the
    # old grammar took hours here (77 s for 100 children).
    path = tmp_path / "big.conf"
    path.write_text(generate(2_000))  # the project's agents, 11 service attributes
    code = ("import sys; from pathlib import Path; "
            "from rgmanager.agents.discovery import load_rules; "
            "from rgmanager.config.parser import load_config; "
            "rules = load_rules(cache_path=Path(sys.argv[2])); "
            "c, _ = load_config(sys.argv[1], rules); "
            "print(len(c.rm.services[0].children))")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(path),
                              str(tmp_path / "metadata.json")], cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=HANG_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"validating 2,000 children took more than {HANG_S} s")
    assert out.stdout.strip() == "2000"


@pytest.mark.usefixtures("alarm")
def test_misspelt_attribute_among_many_children_is_fast_and_exact(
        rules: RuleSet, write_conf: WriteConf) -> None:
    clients = "\n".join(f'<nfsclient name="c{i}" target="10.0.{i // 250}.{i % 250}"/>'
                        for i in range(1_000))
    path = write_conf(f"""<service name="a" autostrat="1">
      <fs name="d" mountpoint="/srv" device="/dev/sdb1"><nfsexport name="e">
{clients}
      </nfsexport></fs>
    </service>""")
    with pytest.raises(ConfigError) as info:
        load_config(path, rules)
    (report,) = info.value.reports
    assert report.code == "E_UNKNOWN_ATTR" and "autostrat" in report.message
    assert report.source is not None and report.source.line == 9


def test_structure_error_and_resource_error_both_reported(rules: RuleSet,
                                                         write_conf: WriteConf) -> None:
    path = write_conf(full=HEADER.replace('name="test" ', "") + """  <rm>
    <service name="a"><fss name="x"/></service>
  </rm>
</cluster>
""")
    with pytest.raises(ConfigError) as info:
        load_config(path, rules)
    assert sorted(r.code for r in info.value.reports) == ["E_SCHEMA", "E_UNKNOWN_TYPE"]


# -- rg_test at 50,000 resources: no full collections walking the model ----------
def test_load_runs_no_cyclic_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cyclic collector's full passes made rg_test slower than linear past
    10,000 resources (issue 12); a load now runs none, whatever its size, and
    leaves the collector as it found it. (Times: benchmarks/bench_rg_test.py.)"""
    import gc

    from benchmarks.bench_rg_test import generate as generate_big
    from rgmanager.agents.discovery import default_agent_dirs, load_rules
    from rgmanager.loader import load

    monkeypatch.setenv("RGMANAGER_CACHE_DIR", str(tmp_path))
    rules = load_rules(default_agent_dirs([]))
    conf = tmp_path / "big.conf"
    conf.write_text(generate_big(5_000))
    assert gc.isenabled()
    before = [s["collections"] for s in gc.get_stats()]
    loaded = load(conf, rules)
    after = [s["collections"] for s in gc.get_stats()]
    assert len(loaded.forest.resources) > 4_000
    assert after[2] == before[2]  # no full pass (a young one may follow the load)
    assert gc.isenabled()
    gc.disable()
    try:
        load(conf, rules)
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_rg_test_freezes_what_it_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import gc

    from rgmanager.cli import rg_test

    monkeypatch.setenv("RGMANAGER_CACHE_DIR", str(tmp_path))
    conf = tmp_path / "c.conf"
    conf.write_text(HEADER + '<rm><service name="a"/></rm></cluster>\n')
    try:
        assert rg_test.main(["test", str(conf)]) == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert "service" in capsys.readouterr().out
