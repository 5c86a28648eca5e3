"""Structured configuration reports (errors and warnings) with a location.

Administrators fix a config from the message alone, so every report names
the file, the line and the element; tools print them and choose an exit code
from their severity (see :data:`EXIT_WARNINGS` / :data:`EXIT_ERRORS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

#: Exit codes shared by every tool that validates a configuration.
EXIT_OK = 0
EXIT_WARNINGS = 1  # configuration accepted, but something deserves a look
EXIT_ERRORS = 2  # configuration rejected


class Severity(StrEnum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Source:
    """Where a configuration item was written."""

    file: str
    line: int | None
    element: str

    def __str__(self) -> str:
        line = "?" if self.line is None else str(self.line)
        return f"{self.file}:{line}: <{self.element}>"


@dataclass(frozen=True)
class Report:
    code: str
    message: str
    source: Source | None = None
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.severity.value}: {self.message} [{self.code}]"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.source.file if self.source else None,
            "line": self.source.line if self.source else None,
            "element": self.source.element if self.source else None,
        }


class ConfigError(Exception):
    """A configuration was rejected; ``reports`` says why (errors first)."""

    def __init__(self, reports: Iterable[Report]) -> None:
        self.reports = sorted(reports, key=lambda r: r.severity != Severity.ERROR)
        super().__init__("\n".join(str(r) for r in self.reports))


class Reporter:
    """Collects reports while a config is read, so all problems show at once."""

    def __init__(self) -> None:
        self.reports: list[Report] = []

    def error(self, code: str, message: str, source: Source | None = None) -> None:
        self.reports.append(Report(code, message, source, Severity.ERROR))

    def warning(self, code: str, message: str, source: Source | None = None) -> None:
        self.reports.append(Report(code, message, source, Severity.WARNING))

    @property
    def errors(self) -> list[Report]:
        return [r for r in self.reports if r.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Report]:
        return [r for r in self.reports if r.severity == Severity.WARNING]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigError(self.reports)


def exit_code(reports: Iterable[Report]) -> int:
    severities = {r.severity for r in reports}
    if Severity.ERROR in severities:
        return EXIT_ERRORS
    return EXIT_WARNINGS if Severity.WARNING in severities else EXIT_OK
