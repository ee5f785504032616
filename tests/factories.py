"""Builders for domain objects and config, so tests state only what matters to them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from connector.config import LoadedConfig, load_config
from connector.config.conditions import Condition
from connector.config.rules_file import Rule
from connector.config.supplier_file import SupplierMapping
from connector.core.links import Link
from connector.core.models import Incident, IssueStamp, JournalEntry, SupplierComment, SupplierIssue

REPO = Path(__file__).parent.parent
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@cache
def demo_config() -> LoadedConfig:
    return load_config(REPO / "config" / "demo.yaml")


def mapping(name: str = "acme") -> SupplierMapping:
    return demo_config().suppliers[name]


def condition(data: Any) -> Condition:
    """A condition from its YAML shape, validated like a rule's ``when``."""
    rule = Rule.model_validate({"name": "t", "description": "t", "when": data, "then": {"action": "propose"}})
    return rule.when


def incident(number: str = "INC0010001", mod_count: int = 1, **fields: str) -> Incident:
    base = {
        "short_description": "Checkout fails",
        "description": "Customers cannot pay",
        "state": "2",
        "priority": "1",
        "impact": "1",
        "urgency": "1",
        "opened_at": "2026-11-22 09:00:00",
        "assignment_group.name": "ACME Hosting L2",
    }
    base.update(fields)
    sys_id = f"sys{number[-7:]:0>29}"
    return Incident(sys_id, number, mod_count, datetime(2026, 11, 22, 10, tzinfo=UTC), base)


def issue(
    key: str = "ACME-1", status: str = "Open", comments: tuple[SupplierComment, ...] = (), **fields: str
) -> SupplierIssue:
    return SupplierIssue(
        "10001",
        key,
        f"https://acme.example/browse/{key}",
        status,
        "todo",
        T0,
        dict(fields),
        IssueStamp("stamp", "sys0010001", "INC0010001", "mim-connector", "sn.example"),
        comments,
    )


def comment(comment_id: str, body: str, author: str = "Jane Doe", author_id: str = "jane") -> SupplierComment:
    return SupplierComment(comment_id, author, author_id, body, T0, T0)


def journal(
    sys_id: str, value: str, element: str = "comments", created_by: str = "alice", incident_sys_id: str = ""
) -> JournalEntry:
    return JournalEntry(
        sys_id, incident_sys_id, element, value, datetime(2026, 11, 22, 9, 30, tzinfo=UTC), created_by
    )  # type: ignore[arg-type]


def link(
    state: str = "linked", key: str | None = "ACME-1", supplier: str = "acme", incident_sys_id: str = "sys"
) -> Link:
    return Link(1, incident_sys_id, supplier, state, "10001" if key else None, key, None, "stamp", T0, T0)


class FakeClock:
    """Monotonic time that only moves when told (or slept on)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
