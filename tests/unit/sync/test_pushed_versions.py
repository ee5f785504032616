"""Which pushed incident versions the promotion rules see beside a poll's (``pushed_versions``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.core.models import Incident
from connector.store.deliveries import PushedVersion
from connector.store.progress import IncidentRecord
from connector.sync.observe import PUSHED_WAIT, pushed_versions

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)


def pushed(mod_count: int, sys_id: str = "s1", received: datetime = NOW, **fields: str) -> PushedVersion:
    return PushedVersion(sys_id, mod_count, "INC1", "2026-12-08 01:59:58", fields, received)


def read(mod_count: int, sys_id: str = "s1", **fields: str) -> Incident:
    return Incident(sys_id, "INC1", mod_count, None, fields)


def processed(mod_count: int, sys_id: str = "s1") -> IncidentRecord:
    return IncidentRecord(sys_id, "INC1", mod_count, None, {"priority": "3", "cmdb_ci": "ci-9"})


def test_a_version_that_changed_again_before_the_poll_goes_to_the_rules_with_what_was_known() -> None:
    fleeting, settled = pushed_versions(
        [pushed(7, priority="1")], {"s1": read(8, priority="3")}, {"s1": processed(6)}, NOW
    )
    (version,) = fleeting
    assert (version.mod_count, version.get("priority"), version.get("cmdb_ci")) == (7, "1", "ci-9")
    assert version.sys_updated_on == datetime(2026, 12, 8, 1, 59, 58, tzinfo=UTC)
    assert settled == [("s1", 7)]


def test_the_newest_fleeting_version_of_an_incident_stands_for_it() -> None:
    fleeting, settled = pushed_versions(
        [pushed(8, priority="2"), pushed(7, priority="1")], {"s1": read(9)}, {}, NOW
    )
    assert [(v.mod_count, v.get("priority")) for v in fleeting] == [(8, "2")]
    assert sorted(settled) == [("s1", 7), ("s1", 8)]


def test_versions_processed_or_read_by_this_poll_need_nothing_more() -> None:
    fleeting, settled = pushed_versions([pushed(5), pushed(8)], {"s1": read(8)}, {"s1": processed(6)}, NOW)
    assert fleeting == [] and sorted(settled) == [("s1", 5), ("s1", 8)]


def test_a_version_newer_than_any_read_waits_for_a_poll_then_is_dropped() -> None:
    assert pushed_versions([pushed(9)], {"s1": read(8)}, {}, NOW) == ([], [])
    assert pushed_versions([pushed(9)], {}, {"s1": processed(8)}, NOW) == ([], [])
    old = pushed(9, received=NOW - PUSHED_WAIT - timedelta(seconds=1))
    assert pushed_versions([old], {}, {}, NOW) == ([], [("s1", 9)])
