"""Credentials by reference, and the redactor that keeps them out of every output.

Config files never hold a credential. They hold a reference, resolved only when a client is built:

* ``${ENV_VAR}`` - the value of an environment variable;
* ``file:PATH`` - the content of a file (trailing newline stripped), PATH relative to the config
  file that names it (for container secrets mounted as files).

Every resolved value is registered with :data:`REDACTOR`, which the logging filter and the error
formatters apply to everything they print.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REF_PATTERN = r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|file:.+)$"
_ENV_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")
_FILE_REF = re.compile(r"^file:(?P<path>.+)$")
_ENV_IN_TEXT = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"


class UnresolvedSecret(LookupError):
    """A reference points at an unset variable or an unreadable file; ``str()`` names the reference only.

    ``brief`` says the same in the words of the configuration (``${MIM_SN_PASSWORD} is not set``),
    for a line that already names the system.
    """

    def __init__(self, message: str, brief: str | None = None) -> None:
        super().__init__(message)
        self.brief = brief or message


class Secret:
    """A resolved credential. ``str()`` and ``repr()`` show a mask; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        REDACTOR.add(value)

    def reveal(self) -> str:
        """Return the clear value, for handing to an HTTP client and nothing else."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"


@dataclass(frozen=True)
class SecretRef:
    """Where a credential lives. Holds no secret itself, so it is safe to print."""

    kind: Literal["env", "file"]
    target: str
    base_dir: Path | None = None

    @classmethod
    def parse(cls, text: str, base_dir: Path | None = None) -> SecretRef:
        """Parse ``${VAR}`` or ``file:PATH``; raise ``ValueError`` (without echoing ``text``) otherwise."""
        if match := _ENV_REF.match(text):
            return cls("env", match["name"], base_dir)
        if match := _FILE_REF.match(text):
            return cls("file", match["path"], base_dir)
        raise ValueError("secrets must be given by reference (${ENV_VAR} or file:PATH), not inline")

    @property
    def path(self) -> Path:
        """The file a ``file:`` reference points at, resolved against the naming config's folder."""
        path = Path(self.target).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def resolve(self, environ: Mapping[str, str] | None = None) -> Secret:
        """Read the credential; raise :class:`UnresolvedSecret` when it is missing or empty."""
        if self.kind == "env":
            value = (os.environ if environ is None else environ).get(self.target, "")
            if not value:
                raise UnresolvedSecret(f"environment variable {self.target} is not set", f"{self} is not set")
            return Secret(value)
        try:
            value = self.path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UnresolvedSecret(f"cannot read secret file {self.path}: {exc.strerror}") from None
        if not value:
            raise UnresolvedSecret(f"secret file {self.path} is empty")
        return Secret(value)

    def __str__(self) -> str:
        return f"${{{self.target}}}" if self.kind == "env" else f"file:{self.target}"


def resolve_in(ref: SecretRef, base_dir: Path | None) -> Secret:
    """Resolve ``ref``, a ``file:`` reference without a folder of its own relative to ``base_dir``.

    Raises:
        UnresolvedSecret: the variable is unset or the file unreadable or empty.
    """
    if ref.kind == "file" and ref.base_dir is None and base_dir is not None:
        ref = SecretRef(ref.kind, ref.target, base_dir)
    return ref.resolve()


def env_references(text: str) -> list[str]:
    """Names of the ``${VAR}`` references inside a larger string such as a URL."""
    return [match["name"] for match in _ENV_IN_TEXT.finditer(text)]


def interpolate(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` in ``text``; values are registered with the redactor as secrets.

    Raises:
        UnresolvedSecret: a referenced variable is unset.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match["name"], "")
        if not value:
            raise UnresolvedSecret(
                f"environment variable {match['name']} is not set", f"${{{match['name']}}} is not set"
            )
        REDACTOR.add(value)
        return value

    return _ENV_IN_TEXT.sub(substitute, text)


class Redactor:
    """Masks known secret values and credential-shaped substrings in text. Thread-safe."""

    # Values this short would mask ordinary words; real credentials are longer.
    MIN_LENGTH = 4
    _SECRET_KEYS = (
        r"(?:password|passwd|secret|client_secret|token|access_token|refresh_token|api[_-]?(?:key|token))"  # noqa: S105
    )
    _PATTERNS = (
        # An Authorization header in any dress: `Authorization: Basic …`, `authorization=Bearer …`,
        # JSON `"Authorization": "Basic …"` (also escaped inside a JSON string), Python `'…': '…'`.
        (
            re.compile(r"""(?i)(authorization\\?["']?\s*[:=]\s*\\?["']?\s*)(basic|bearer)\s+[^\s'"\\,;}]+"""),
            rf"\1\2 {MASK}",
        ),
        # form and query strings: password=...&
        (re.compile(rf"(?i)(\b{_SECRET_KEYS}=)[^&\s'\"]+"), rf"\1{MASK}"),
        # JSON bodies: "access_token": "..."
        (re.compile(rf'(?i)("{_SECRET_KEYS}"\s*:\s*")[^"]*'), rf"\1{MASK}"),
        # Python reprs of dicts: 'access_token': '...'
        (re.compile(rf"(?i)('{_SECRET_KEYS}'\s*:\s*')[^']*"), rf"\1{MASK}"),
        # credentials in URLs: scheme://user:password@host
        (re.compile(r"(://[^/\s:@]+:)[^@/\s]+(@)"), rf"\1{MASK}\2"),
    )

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._compiled: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        """Remember a secret value so that it is masked wherever it appears later."""
        if len(value) < self.MIN_LENGTH:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._compiled = None

    def redact(self, text: str) -> str:
        """Return ``text`` with every known secret and credential-shaped substring masked."""
        with self._lock:
            if self._compiled is None and self._values:
                ordered = sorted(self._values, key=len, reverse=True)
                self._compiled = re.compile("|".join(re.escape(v) for v in ordered))
            compiled = self._compiled
        if compiled is not None:
            text = compiled.sub(MASK, text)
        for pattern, replacement in self._PATTERNS:
            text = pattern.sub(replacement, text)
        return text


REDACTOR = Redactor()
"""The process-wide redactor used by logging and by every error message we print."""
