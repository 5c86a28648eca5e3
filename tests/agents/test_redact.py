"""Credentials in mount options never reach agent messages, logs or exceptions."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from rgmanager.agentlib import ocf, redact
from rgmanager.agentlib.redact import (
    MASK,
    redact_argv,
    redact_options,
    redact_text,
    secret_values,
)
from rgmanager.agentlib.syscmd import run as command
from rgmanager.executor import SANE_PATH

from .conftest import AGENT_DIR, agent_env

SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(("options", "expected"), [
    (f"username=bob,password={SECRET},vers=3.0", f"username=bob,password={MASK},vers=3.0"),
    (f"user=bob,pass={SECRET}", f"user=bob,pass={MASK}"),
    (f"PASSWORD={SECRET}", f"PASSWORD={MASK}"),
    (f"password2={SECRET},domain=W", f"password2={MASK},domain=W"),
    ("credentials=/etc/cifs/web.cred,uid=33", f"credentials={MASK},uid=33"),
    (f"name=admin,secret={SECRET}", f"name=admin,secret={MASK}"),
    (f"username=bob%{SECRET},sec=ntlmssp", f"username=bob%{MASK},sec=ntlmssp"),
    ("pass,,word=x,sec=krb5p,rw", "pass,,word=x,sec=krb5p,rw"),  # not a key of ours
    (f"password=a,,b{SECRET},ro", f"password={MASK},ro"),  # ",," is an escaped comma
    ("rw,hard,timeo=600", "rw,hard,timeo=600"),
])
def test_redact_options(options: str, expected: str) -> None:
    assert redact_options(options) == expected


def test_secret_values_and_free_text() -> None:
    assert secret_values(f"username=bob,password={SECRET}") == [SECRET]
    assert secret_values("username=bob%x,,yz") == ["x,,yz", "x,yz"]
    assert secret_values("rw,username=bob") == []
    argv = ["mount", "-t", "cifs", "-o", f"username=bob,password={SECRET}", "//h/s", "/mnt"]
    assert SECRET not in " ".join(redact_argv(argv))
    assert "username=bob" in " ".join(redact_argv(argv))
    text = f"mount failed: 'password={SECRET}' rejected; server said {SECRET}x"
    out = redact_text(text, [SECRET])
    assert SECRET not in out and f"password={MASK}" in out


def test_log_filter_masks_messages_and_exceptions() -> None:
    logger = logging.getLogger("rgmanager.test.redact")
    logger.propagate = False
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    logger.addHandler(handler)
    try:
        redact.install([SECRET], logger=logger)
        redact.install([SECRET], logger=logger)  # idempotent: one filter
        assert sum(isinstance(f, redact.RedactingFilter) for f in handler.filters) == 1
        logger.error("running %s", ["mount", "-o", f"password={SECRET}"])
        logger.warning("the server echoed %s back", SECRET)
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert SECRET not in text
    assert text.count(MASK) >= 3


def test_ocf_run_masks_parameter_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever an agent logs or raises, a secret from its parameters is masked."""
    spec = ocf.AgentSpec("t", "t", "t", (ocf.Param("options", "o"),), ())

    def boom(params: ocf.Params) -> int:
        raise RuntimeError(f"cannot use {params.get('options')}")

    def fail(params: ocf.Params) -> int:
        raise ocf.AgentError(ocf.OCF_ERR_GENERIC, f"helper said {SECRET}")

    env = {"OCF_RESKEY_options": f"username=bob,password={SECRET}"}
    caplog.set_level(logging.INFO)
    assert ocf.run(spec, {"start": boom}, ["t", "start"], env) == ocf.OCF_ERR_GENERIC
    assert ocf.run(spec, {"start": fail}, ["t", "start"], env) == ocf.OCF_ERR_GENERIC
    assert "cannot use" in caplog.text and "helper said" in caplog.text
    assert SECRET not in caplog.text
    assert "username=bob" in caplog.text


def test_command_error_text_is_redacted(tmp_path: Path) -> None:
    fail = tmp_path / "fail"
    fail.write_text('#!/bin/sh\necho "bad: $*" >&2\nexit 32\n')
    fail.chmod(0o755)
    with pytest.raises(ocf.AgentError) as err:
        command([str(fail), "-o", f"user=bob,password={SECRET}"], check=True)
    assert SECRET not in str(err.value)
    assert f"password={MASK}" in str(err.value) and "user=bob" in str(err.value)


def test_netfs_cifs_password_never_in_agent_output(tmp_path: Path, rsctmp: Path) -> None:
    """The real netfs agent (with OCF_TRACE debug logging): a failing CIFS mount whose
    helper echoes its arguments must not print the password anywhere."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("mount", "mount.cifs"):
        fake = bindir / name
        fake.write_text('#!/bin/sh\necho "mount error(13): Permission denied: $*" >&2\nexit 32\n')
        fake.chmod(0o755)
    params = {"name": "share", "mountpoint": str(tmp_path / "mnt"), "host": "fileserver",
              "export": "data", "fstype": "cifs",
              "options": f"username=bob,password={SECRET},vers=3.0"}
    env = agent_env(rsctmp, params, OCF_TRACE="1", OCF_RESOURCE_INSTANCE="netfs:share",
                    PATH=f"{bindir}:{SANE_PATH}")
    p = subprocess.run([str(AGENT_DIR / "netfs"), "start"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "Permission denied" in p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert "username=bob" in p.stderr and f"password={MASK}" in p.stderr
