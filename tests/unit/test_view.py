"""The run's final summary and the live panel's rows, from store counts and cycle reports."""

from __future__ import annotations

from connector.engine import CycleReport
from connector.store.stats import SyncStats
from connector.view import Tally, rows, summary

STATS = SyncStats(
    incidents=197,
    issues={"acme": 49, "globex": 2, "initech": 19},
    proposed=3,
    promoted=2,
    children=4,
    comments_out=61,
    comments_in=101,
    status_changes_in=127,
)


def test_the_summary_states_what_was_synced_one_figure_per_line() -> None:
    tally = Tally(started=100.0)
    tally.add(CycleReport(new_versions=5, writes=3), 0.25)
    tally.add(None, 1.5)
    assert summary("mim-connector-demo", STATS, tally, 241.0, (50, 33)) == (
        "Summary of mim-connector-demo: ran 2m21s, 1 cycle, 1 failed\n"
        "  incidents seen: 197\n"
        "  rule decisions: 3 proposed, 2 promoted, 4 children\n"
        "  issues created: acme 49, globex 2, initech 19 (70 in all)\n"
        "  comments:       61 out to suppliers, 101 in from suppliers\n"
        "  status changes: 127 supplier status changes written back\n"
        "  dead letters:   0\n"
        "  problems:       50 incidents with a problem (33 mirrored)"
    )
    assert (tally.cycles, tally.failed_cycles, tally.last_cycle_seconds, tally.writes) == (1, 1, 1.5, 3)


def test_guardrail_hits_show_only_when_there_are_some() -> None:
    assert dict(rows(SyncStats()))["rule decisions"] == "0 proposed, 0 promoted, 0 children"
    assert dict(rows(SyncStats()))["issues created"] == "none (0 in all)"
    capped = SyncStats(capped=2)
    assert dict(rows(capped))["rule decisions"].endswith(", 2 capped")
