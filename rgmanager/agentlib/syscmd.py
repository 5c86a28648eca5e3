"""Run system programs (mount, umount, fuser, exportfs, lvm, blkid, fsck, ...) for the agents.

This is the one place where agent code starts a program.  It goes through
the ``sh`` package (argument lists, never a shell; exit codes as exceptions;
timeouts that kill the program) and gives the agents one small, typed
surface: :func:`run` returns a :class:`Result` or raises :class:`CommandError`.

:class:`CommandError` is an :class:`~.ocf.AgentError`, so an agent that lets
it through ends its action with the right OCF code: a missing program is
OCF_ERR_INSTALLED (5), a timeout or a failure OCF_ERR_GENERIC (1).

Every argv is logged at DEBUG and every error text is built with
:mod:`.redact` applied, because mount options may carry credentials.

Nothing here keeps state between calls and ``sh`` is imported on first use
(it pulls in asyncio, ~40 ms), so agents whose status never runs a program
(``fs`` depth 0, ``ip``, ``service``) do not pay for it when started as a
process, and an agent host that imports this once pays it once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

from .ocf import OCF_ERR_GENERIC, OCF_ERR_INSTALLED, AgentError
from .redact import redact_argv, redact_text

log = logging.getLogger(__name__)

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
    of this moment is inherited.  ``to_file`` sends stdout and stderr to an
    anonymous file instead of pipes (read back into ``Result.stdout``): a
    program that leaves a daemon behind (an init script, ``rpc.mountd``)
    would otherwise keep us waiting for the pipe's end.  ``secrets`` are
    extra literal strings to mask in error texts.
    """
    import sh  # lazily: see the module docstring

    args = [str(a) for a in argv]
    line = shown(args)
    log.debug("running %s", line)
    path_env = (env or os.environ).get("PATH", os.defpath)
    try:
        program = sh.Command(args[0], search_paths=path_env.split(os.pathsep))
    except sh.CommandNotFound:
        raise CommandError(OCF_ERR_INSTALLED, f"{args[0]} is not installed") from None
    codes = sorted(set(ok_codes)) if check else list(range(256))
    options: dict[str, Any] = {
        "_ok_code": codes,
        "_timeout": timeout,
        "_tty_out": False,
        "_return_cmd": True,
        "_truncate_exc": False,
    }
    if env is not None:
        options["_env"] = dict(env)
    with open(os.devnull, "rb") as stdin, _output(to_file) as out:
        options["_in"] = stdin
        if out is not None:
            options["_out"] = out
            options["_err_to_out"] = True
        try:
            done = program(*args[1:], **options)
            result = Result(tuple(args), done.exit_code, _decode(done.stdout),
                            _decode(done.stderr))
        except sh.TimeoutException:
            raise CommandError(OCF_ERR_GENERIC, f"{line} timed out after {timeout:g}s") from None
        except sh.ErrorReturnCode as err:  # rc not in _ok_code, or killed by signal N (rc -N)
            result = Result(tuple(args), err.exit_code, _decode(err.stdout),
                            _decode(err.stderr))
        except sh.ForkException as err:  # the program could not be executed
            lines = str(err).strip().splitlines()
            reason = lines[-1].strip() if lines else "exec failed"
            raise CommandError(OCF_ERR_GENERIC,
                               f"cannot run {args[0]}: {redact_text(reason)}") from None
        if out is not None:
            out.seek(0)
            result = Result(result.argv, result.rc,
                            _decode(out.read(FILE_OUTPUT_LIMIT)), "")
    if result.rc != 0:
        log.debug("%s exited %d: %s", args[0], result.rc, redact_text(result.said(), secrets))
    if check and result.rc not in codes:
        raise CommandError(OCF_ERR_GENERIC, f"{line} failed (rc {result.rc}): "
                                            f"{redact_text(result.said(), secrets)}", result)
    return result


def _output(to_file: bool) -> AbstractContextManager[IO[bytes] | None]:
    """An anonymous file for ``to_file`` mode, else nothing (output goes to pipes)."""
    return tempfile.TemporaryFile() if to_file else nullcontext()
