"""Keep credentials out of agent messages, logs and exceptions.

Mount options can carry secrets: CIFS ``password=``/``pass=``/``password2=``,
``credentials=`` (a file name, but a hint where the secret lives),
``username=user%password``, Ceph-style ``secret=``.  Every agent message,
log line and exception text that could contain an option string goes through
this module; :func:`install` also puts a filter on the agent's log handlers
that masks these keys in *any* message and every literal secret value of the
agent's parameters, so text we do not build ourselves (a program's stderr)
is covered too.

User names are kept (they help debugging and are not secrets); ``sec=`` is a
security *flavour* (``krb5p``, ``ntlmssp``), not a credential, and is kept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

MASK = "********"

#: Option keys whose value is a secret (compared lower-cased).
SECRET_KEYS = frozenset({"password", "password2", "pass", "passwd", "pwd", "credentials",
                         "cred", "secret"})
#: Option keys whose value may be ``user%password`` (CIFS).
USER_KEYS = frozenset({"user", "username"})

# key=value inside a comma-separated option string: the value runs to the next
# single comma (",," is an escaped comma in CIFS options).
_IN_OPTIONS = re.compile(r"(?<![\w.-])(?P<key>[A-Za-z][\w.-]*)=(?P<value>(?:[^,]|,,)*)")
# The same in free text, where a value also ends at white space or a quote.
_IN_TEXT = re.compile(r"(?<![\w.-])(?P<key>[A-Za-z][\w.-]*)=(?P<value>(?:[^,\s'\"]|,,)*)")


def _mask(m: re.Match[str]) -> str:
    key, value = m.group("key"), m.group("value")
    low = key.lower()
    if low in SECRET_KEYS and value:
        return f"{key}={MASK}"
    if low in USER_KEYS and "%" in value:
        return f"{key}={value.split('%', 1)[0]}%{MASK}"
    return m.group(0)


def redact_options(options: str) -> str:
    """``"username=bob,password=s3,vers=3.0"`` -> ``"username=bob,password=********,vers=3.0"``."""
    return _IN_OPTIONS.sub(_mask, options)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """An argv list safe to log or put in an error (each word treated as options)."""
    return [redact_options(str(a)) for a in argv]


def secret_values(options: str) -> list[str]:
    """The literal secrets in an option string (escaped and unescaped commas both)."""
    found: list[str] = []
    for m in _IN_OPTIONS.finditer(options):
        low, value = m.group("key").lower(), m.group("value")
        if low in USER_KEYS and "%" in value:
            value = value.split("%", 1)[1]
        elif low not in SECRET_KEYS:
            continue
        for v in (value, value.replace(",,", ",")):
            if v and v not in found:
                found.append(v)
    return found


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask secret keys' values in free text, then every literal secret given."""
    text = _IN_TEXT.sub(_mask, text)
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 3:  # masking "a" everywhere would garble the text, not protect it
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message, redacted, replaces msg/args."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        record.msg = redact_text(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info),
                                          self.secrets)
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        return True


def install(secrets: Iterable[str] = (), logger: logging.Logger | None = None) -> RedactingFilter:
    """Put one :class:`RedactingFilter` on every handler of ``logger`` (default: root)
    and add ``secrets`` to what it masks.  Idempotent."""
    logger = logger or logging.getLogger()
    found: RedactingFilter | None = None
    for handler in logger.handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                found = f
    if found is None:
        found = RedactingFilter()
    for handler in logger.handlers:
        if found not in handler.filters:
            handler.addFilter(found)
    found.secrets.update(s for s in secrets if s)
    return found


def params_secrets(values: Iterable[str]) -> list[str]:
    """Every literal secret in a set of parameter values (any of them may be options)."""
    out: list[str] = []
    for value in values:
        for s in secret_values(value):
            if s not in out:
                out.append(s)
    return out
