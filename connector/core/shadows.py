"""Shadow keys: what the store remembers as last synced per link and side, besides plain field values.

A shadow maps a key to the value last synced. Most keys are field names; some remember more
about a field, and are stored as the field's name behind a prefix (the stored form never
changes, so existing stores read identically):

* ``@pending:<field>`` a value we are writing and may not know the fate of (a lost answer, a crash);
* ``@conflict:<field>`` the other side's value already reported as a conflict (reported once);
* ``@held:<field>`` what the other side held when a pending copy was decided (did it change since?);
* ``@shared:<field>`` the value both sides last agreed on, for a field both sides own.

Kinds nest: ``@pending:@shared:summary`` is a pending copy of the shared ``summary``. Keys
without a kind that start with ``@`` are pseudo-fields (``@state``, ``@remote_link``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ShadowKind(StrEnum):
    """What a shadow key remembers about its field; the value is the prefix it is stored with."""

    PENDING = "@pending:"
    CONFLICT = "@conflict:"
    HELD = "@held:"
    SHARED = "@shared:"


@dataclass(frozen=True)
class ShadowKey:
    """One shadow key: a ``field`` (itself possibly a key) and what is remembered of it (``kind``)."""

    field: str
    kind: ShadowKind | None = None

    def __str__(self) -> str:
        """The key as the store holds it."""
        return f"{self.kind}{self.field}" if self.kind is not None else self.field

    @classmethod
    def parse(cls, stored: str) -> ShadowKey:
        """The key the store holds as ``stored`` (its outermost kind; the field may be a key itself)."""
        for kind in ShadowKind:
            if stored.startswith(kind):
                return cls(stored[len(kind) :], kind)
        return cls(stored)

    @property
    def is_field(self) -> bool:
        """Whether the key is a plain field's value (neither a kind of memory nor a pseudo-field)."""
        return self.kind is None and not self.field.startswith("@")


def pending(field: str) -> str:
    """The stored key of a value being written to ``field`` (see :data:`ShadowKind.PENDING`)."""
    return str(ShadowKey(field, ShadowKind.PENDING))


def conflict(field: str) -> str:
    """The stored key of the other side's value of ``field`` reported as a conflict."""
    return str(ShadowKey(field, ShadowKind.CONFLICT))


def held(field: str) -> str:
    """The stored key of what the other side held of ``field`` when a pending copy was decided."""
    return str(ShadowKey(field, ShadowKind.HELD))


def shared(field: str) -> str:
    """The stored key of the value both sides last agreed on for the shared ``field``."""
    return str(ShadowKey(field, ShadowKind.SHARED))
