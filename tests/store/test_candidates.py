"""Promotion candidates read a page at a time: every one exactly once, never more than a page held."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.store import Store


def test_candidates_are_read_in_pages_covering_each_once(store: Store) -> None:
    updated = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    for index in range(23):
        # Every third incident is resolved (no longer a candidate); inserted out of sys_id order.
        sys_id = f"{(index * 7) % 23:032d}"
        store.incidents.remember(sys_id, f"INC{index}", 1, updated, {}, candidate=index % 3 != 0)
    expected = sorted(f"{(index * 7) % 23:032d}" for index in range(23) if index % 3 != 0)

    pages: list[list[str]] = []
    after = ""
    while True:
        page = store.incidents.candidates(after=after, limit=5)
        pages.append([record.sys_id for record in page])
        if len(page) < 5:
            break
        after = page[-1].sys_id

    assert max(len(page) for page in pages) <= 5
    assert [sys_id for page in pages for sys_id in page] == expected
    assert [record.sys_id for record in store.incidents.candidates()] == expected


def test_pages_read_every_record_once(store: Store) -> None:
    updated = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    for index in range(12):
        store.incidents.remember(f"{index:032d}", f"INC{index}", 1, updated, {}, candidate=True)
    paged = [r.sys_id for r in store.incidents.pages(store.incidents.candidates, 5)]
    assert paged == [f"{index:032d}" for index in range(12)]
