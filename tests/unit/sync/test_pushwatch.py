"""The ``push missed`` judgement: versions a poll found that push never announced."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from connector.sync.pushwatch import GRACE, WARN_AFTER, PushWatch

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
OLD = NOW - GRACE


def pushed(*versions: str) -> Callable[[Iterable[str]], set[str]]:
    def delivered(asked: Iterable[str]) -> set[str]:
        return set(asked) & set(versions)

    return delivered


def missed_total(source: str) -> float:
    return REGISTRY.get_sample_value("mim_push_missed_total", {"source": source}) or 0.0


def test_old_enough_versions_are_judged_and_young_ones_wait_for_the_next_poll() -> None:
    watch, before = PushWatch(), missed_total("jira:t1")
    young = NOW - timedelta(seconds=5)
    assert watch.judge("jira:t1", {"a": OLD, "b": OLD, "c": young}, pushed("a"), NOW) == 1
    assert missed_total("jira:t1") == before + 1
    # "c" is judged at the next poll, when its delivery has had time to arrive (it did).
    assert watch.judge("jira:t1", {}, pushed("c"), NOW + GRACE) == 0
    assert watch.judge("jira:t1", {}, pushed(), NOW + 2 * GRACE) == 0, "judged once"


def test_a_version_without_a_time_is_judged_at_once() -> None:
    assert PushWatch().judge("jira:t2", {"a": None}, pushed(), NOW) == 1


def test_misses_past_the_threshold_make_one_warning_naming_the_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = PushWatch()
    with caplog.at_level(logging.WARNING, logger="connector.sync.pushwatch"):
        for n in range(2 * WARN_AFTER):
            watch.judge("servicenow", {f"v{n}": OLD}, pushed(), NOW + timedelta(seconds=n))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith(f"servicenow: {WARN_AFTER} change(s)")
