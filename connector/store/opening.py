"""Opening a store: each failure as one line naming the store and the remedy; no file left behind.

The command line promises one-line errors: a store that is read-only, corrupt, truncated, migrated
by a newer connector or unreachable ends a command with ``error: state store …: …; <what to do>``
(exit code 1), never a driver traceback. A start that fails removes the file and folders it created.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError

from connector.core.errors import StoreError
from connector.store import tables
from connector.store.migrations import SchemaTooNew

RESTORE = "restore it from a backup, or point store.url at a new file"
WRITABLE = "give the user running the connector write access to the file and its folder"


@dataclass
class Created:
    """What opening a new SQLite store made: its file and the folders it needed (none when it existed)."""

    path: Path | None = None
    folders: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        """Remove the file (with its WAL and journal files) and the folders made for it, if still empty.

        Only for a store whose opening, or whose process's start, failed: it holds nothing yet.
        """
        if self.path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.path = None
        for folder in reversed(self.folders):
            try:
                folder.rmdir()
            except OSError:
                break
        self.folders = []


def create_file(path: Path) -> Created:
    """Create ``path`` (and its missing folders) if no other process did first; say what we made.

    ``O_EXCL`` makes the answer exact: two daemons started together on a new file cannot both
    believe they created it (and one remove it under the other's feet).

    Raises:
        OSError: the folder cannot be created or written to.
    """
    folders: list[Path] = []
    parent = path.parent
    while not parent.exists():
        folders.insert(0, parent)
        parent = parent.parent
    made = Created(folders=folders)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        return made
    except OSError:
        made.discard()
        raise
    made.path = path
    return made


def failure(exc: BaseException, label: str) -> StoreError:
    """``exc``, raised while opening or first writing to the store called ``label``, as one line."""
    if isinstance(exc, SchemaTooNew):
        error: StoreError = SchemaTooNew(exc.version)
        error.args = (
            f"state store {label} is at schema v{exc.version}, newer than this connector's "
            f"v{tables.SCHEMA_VERSION}: run the mim-connector release that migrated it, or restore a "
            "backup taken with this one",
        )
        return error
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and not isinstance(exc, DBAPIError):
        reason = exc.strerror or str(exc)
        return StoreError(f"state store {label} cannot be created ({reason}): {WRITABLE}")
    reason = _first_line(exc)
    lowered = reason.lower()
    if "readonly" in lowered or "read-only" in lowered:
        what, todo = "is read-only", WRITABLE
    elif "unable to open database file" in lowered:
        what, todo = "cannot be opened", WRITABLE
    elif "not a database" in lowered:
        what, todo = "is not a SQLite database", RESTORE
    elif "malformed" in lowered or "corrupt" in lowered:
        what, todo = "is damaged or truncated", RESTORE
    elif "database is locked" in lowered:
        what, todo = "stayed locked by another process", "find what holds it, or try again"
    elif isinstance(exc, OperationalError) and not isinstance(exc.orig, sqlite3.Error):
        what = "cannot be reached"
        todo = "check store.url and that the database server runs and accepts the connector's user"
    else:
        what, todo = "failed", "check store.url and the database server's log"
    return StoreError(f"state store {label} {what} ({reason}): {todo}")


def _first_line(exc: BaseException) -> str:
    """The driver's own message, first line only (psycopg adds hints on further lines)."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(original).strip() or type(original).__name__
    return text.splitlines()[0].strip()
