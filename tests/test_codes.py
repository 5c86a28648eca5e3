"""Reply codes: rgmanager's numbers, names and texts (include/resgroup.h, rg_strings.c)."""

from __future__ import annotations

import pytest

from rgmanager import codes, control

#: resgroup.h, RG_ prefix dropped: name -> (number, rg_strerror text).
RESGROUP_H = {
    "ESUCCESS": (0, "Success"),
    "EFAIL": (-1, "Failure"),
    "EABORT": (-2, "Aborted; service failed"),
    "EFORWARD": (-3, "Service not mastered locally"),
    "ENOSERVICE": (-4, "Service does not exist"),
    "EDEADLCK": (-5, "Operation would cause a deadlock"),
    "EAGAIN": (-6, "Temporary failure; try again"),
    "EDEPEND": (-7, "Operation violates dependency rule"),
    "EINVAL": (-8, "Invalid operation for resource"),
    "EQUORUM": (-9, "Operation requires quorum"),
    "ERUN": (-10, "Service is already running"),
    "EFROZEN": (-11, "Failure: Service is frozen"),
    "ENODE": (-12, "Target node dead / nonexistent"),
    "EFENCE": (-13, "Fencing operation pending; try again later"),
    "ESCRIPT": (-14, "S/Lang Script Error"),
    "EDOMAIN": (-15, "Service not runnable"),
    "EEXCL": (-16, "Service not runnable: cannot run exclusive"),
    "ERELO": (-17, "Failed; service running on original owner"),
    "EPERM": (-18, "Permissing denied"),
}


@pytest.mark.parametrize(("name", "number", "text"),
                         [(n, num, t) for n, (num, t) in RESGROUP_H.items()])
def test_numbers_names_and_texts_are_rgmanagers(name: str, number: int, text: str) -> None:
    assert getattr(codes, name) == number
    assert codes.NAMES[number] == name
    assert codes.strerror(number) == text
    assert codes.is_known_code(number)


def test_no_other_codes() -> None:
    assert sorted(codes.NAMES) == list(range(-18, 1))
    assert codes.strerror(-19) == "Unknown error"
    assert not codes.is_known_code(-19)


def test_exit_status_is_code_mod_256_except_erun() -> None:
    assert codes.exit_status(codes.ERUN) == 0
    assert codes.exit_status(-10) == 0
    assert codes.exit_status(codes.EFORWARD) == 253
    assert codes.exit_status(codes.EINVAL) == 248
    assert codes.exit_status(codes.EDEADLCK) == 251
    assert codes.exit_status(codes.EPERM) == 238


def test_one_namespace_with_rgmanagers_names() -> None:
    """The codes live in rgmanager.codes under resgroup.h's names; the control
    socket module does not re-export them under other names."""
    for name in ("ENOTRUNNABLE", "EUNSUPPORTED", "EMIGRATE"):
        assert not hasattr(codes, name), name
    for name in ("EFAIL", "ERUN", "EINVAL", "EUNSUPPORTED", "EMIGRATE", "ENOTRUNNABLE",
                 "ENOTRUNNABLE_EXCL", "ENODEDEAD", "EFORWARD_OWNER"):
        assert not hasattr(control, name), name
    assert codes.ERUN == -10
    # The two old names daemon.py still imports, while they last, alias the right codes.
    assert getattr(codes, "SUCCESS", codes.ESUCCESS) == codes.ESUCCESS
    assert getattr(codes, "FAILURE", codes.EFAIL) == codes.EFAIL
