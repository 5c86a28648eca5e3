"""Run system programs (mount, umount, fuser, exportfs, lvm, blkid, fsck, ...) for the agents.

This is the one place where agent code starts a program.  It goes through
the ``sh`` package (argument lists, never a shell; exit codes as exceptions;
timeouts that kill the program) and gives the agents one small, typed
surface: :func:`run` returns a :class:`Result` or raises :class:`CommandError`.
Programs whose output goes to a file (``to_file``: init scripts, daemons)
are started with :mod:`subprocess` instead, for cost (see :func:`run`).

:class:`CommandError` is an :class:`~.ocf.AgentError`, so an agent that lets
it through ends its action with the right OCF code: a missing program is
OCF_ERR_INSTALLED (5), a timeout or a failure OCF_ERR_GENERIC (1).

Every argv is logged at DEBUG and every error text is built with
:mod:`.redact` applied, because mount options may carry credentials.

Nothing here keeps state between calls and ``sh`` is imported on first use
(it pulls in asyncio, ~40 ms), so an agent whose status runs no program
through it (all but ``lvm``) does not pay for it when started as a process,
and an agent host pays it once.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .ocf import OCF_ERR_GENERIC, OCF_ERR_INSTALLED, AgentError
from .redact import redact_argv, redact_text

log = logging.getLogger(__name__)
# sh traces every command at DEBUG (argv and output chunks, unredacted, ~20
# lines per run); the redacted DEBUG line of run() is the one that counts.
logging.getLogger("sh").setLevel(logging.WARNING)

#: Seconds a program may run unless the caller says otherwise.
DEFAULT_TIMEOUT = 60.0
#: How much of a program's output ``to_file`` mode keeps (bytes).
FILE_OUTPUT_LIMIT = 65536


@dataclass(frozen=True)
class Result:
    """What a program said: exit status and decoded output."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def said(self) -> str:
        """Its error text (stderr, else stdout), stripped but not yet redacted."""
        return (self.stderr or self.stdout).strip()


class CommandError(AgentError):
    """A program is missing, could not be started, timed out, or (with ``check``) failed.

    The message is already redacted.  ``result`` is set when the program ran
    to its end.
    """

    def __init__(self, rc: int, message: str, result: Result | None = None) -> None:
        super().__init__(rc, message)
        self.result = result


def shown(argv: Sequence[str]) -> str:
    """The command line as it may appear in a log or an error (credentials masked)."""
    return " ".join(redact_argv(argv))


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def run(argv: Sequence[str], *, timeout: float | None = DEFAULT_TIMEOUT, check: bool = False,
        ok_codes: Iterable[int] = (0,), env: Mapping[str, str] | None = None,
        to_file: bool = False, secrets: Iterable[str] = ()) -> Result:
    """Run ``argv`` (no shell) and return its :class:`Result`.

    ``timeout`` (seconds, None for none) kills the program and raises
    :class:`CommandError`.  With ``check`` an exit status outside
    ``ok_codes`` raises :class:`CommandError` too; without it any exit status
    is returned for the caller to judge.  ``env`` replaces the environment
    (and its ``PATH`` finds the program); by default the process environment
    of this moment is inherited.  ``secrets`` are extra literal strings to
    mask in error texts.

    ``to_file`` sends stdout and stderr to an anonymous file instead of pipes
    (read back into ``Result.stdout``): a program that leaves a daemon behind
    (an init script, ``rpc.mountd``) would otherwise keep us waiting for the
    pipe's end.  With no pipes to pump, this mode starts the program with
    :mod:`subprocess` (vfork+exec in C) rather than ``sh`` (a fork of the
    whole interpreter, Python code in the child, three I/O threads): measured
    in-process on a trivial LSB status, 1.3 ms CPU against 5.3 ms, and the
    ``script`` agent pays it on every status check.
    """
    args = [str(a) for a in argv]
    line = shown(args)
    log.debug("running %s", line)
    program = shutil.which(args[0], path=(env or os.environ).get("PATH", os.defpath))
    if program is None:
        raise CommandError(OCF_ERR_INSTALLED, f"{args[0]} is not installed")
    codes = set(ok_codes) if check else set(range(256))
    try:
        if to_file:
            result = _run_to_file(program, args, timeout, env)
        else:
            result = _run_sh(program, args, timeout, env, codes)
    except _Timeout:
        raise CommandError(OCF_ERR_GENERIC, f"{line} timed out after {timeout:g}s") from None
    except _CannotRun as err:
        raise CommandError(OCF_ERR_GENERIC,
                           f"cannot run {args[0]}: {redact_text(str(err), secrets)}") from None
    if result.rc != 0:
        log.debug("%s exited %d: %s", args[0], result.rc, redact_text(result.said(), secrets))
    if check and result.rc not in codes:
        raise CommandError(OCF_ERR_GENERIC, f"{line} failed (rc {result.rc}): "
                                            f"{redact_text(result.said(), secrets)}", result)
    return result


class _Timeout(Exception):
    pass


class _CannotRun(Exception):
    """The program exists but could not be executed (e.g. a bad interpreter line)."""


def _run_sh(program: str, args: list[str], timeout: float | None,
            env: Mapping[str, str] | None, codes: set[int]) -> Result:
    """Through ``sh``: output captured from pipes, exit status outside ``codes``
    reported by ``sh`` as ErrorReturnCode (death by signal N as rc -N)."""
    import sh  # lazily: see the module docstring

    options: dict[str, Any] = {
        "_ok_code": sorted(codes),
        "_timeout": timeout,
        "_tty_out": False,  # sh's default is a pseudo-terminal; programs would see a tty
        "_return_cmd": True,
        "_truncate_exc": False,
    }
    if env is not None:
        options["_env"] = dict(env)
    with open(os.devnull, "rb") as stdin:
        try:
            done = sh.Command(program)(*args[1:], _in=stdin, **options)
        except sh.TimeoutException:
            raise _Timeout() from None
        except sh.ErrorReturnCode as err:
            return Result(tuple(args), err.exit_code, _decode(err.stdout), _decode(err.stderr))
        except sh.ForkException as err:
            lines = str(err).strip().splitlines()
            raise _CannotRun(lines[-1].strip() if lines else "exec failed") from None
    return Result(tuple(args), done.exit_code, _decode(done.stdout), _decode(done.stderr))


def _run_to_file(program: str, args: list[str], timeout: float | None,
                 env: Mapping[str, str] | None) -> Result:
    """Output (stdout and stderr) to an anonymous file, read back afterwards."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run([program, *args[1:]], stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout,
                                  env=None if env is None else dict(env), check=False)
        except subprocess.TimeoutExpired:
            raise _Timeout() from None
        except OSError as err:
            raise _CannotRun(str(err)) from None
        out.seek(0)
        return Result(tuple(args), proc.returncode, _decode(out.read(FILE_OUTPUT_LIMIT)), "")
