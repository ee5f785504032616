"""The run's final summary and the live panel's rows, from store counts and cycle reports."""

from __future__ import annotations

from connector.runtime.live_view import Tally, major_lines, rows, summary
from connector.store.stats import MajorIncident, MajorIncidents, SyncStats
from connector.sync.cycle import CycleReport

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
        "  problems:       50 incidents with a problem (33 mirrored)\n"
        "Major incidents: none"
    )
    assert (tally.cycles, tally.failed_cycles, tally.last_cycle_seconds, tally.writes) == (1, 1, 1.5, 3)


def test_guardrail_hits_show_only_when_there_are_some() -> None:
    assert dict(rows(SyncStats()))["rule decisions"] == "0 proposed, 0 promoted, 0 children"
    assert dict(rows(SyncStats()))["issues created"] == "none (0 in all)"
    capped = SyncStats(capped=2)
    assert dict(rows(capped))["rule decisions"].endswith(", 2 capped")


CLUSTER = MajorIncident(
    sys_id="a1",
    number="INC0000116",
    short_description="Storage array 02: latency above 200 ms on every volume of the payments cluster",
    rule="ci-cluster",
    decided="proposed",
    mim_state="accepted",
    children=("INC0000125", "INC0000132"),
    issues=(("acme", "ACME-2"),),
    child_issues=(("INC0000132", "initech", "PAY-9"),),
)
PAYMENTS = MajorIncident(
    sys_id="b2",
    number="INC0000517",
    short_description="Card payments fail",
    rule="payments-outage",
    decided="promoted",
    mim_state="accepted",
    children=(),
    issues=(("globex", "NET-1"), ("initech", "PAY-2")),
    child_issues=(),
)
UNMIRRORED = MajorIncident("c3", "INC0000433", "", "critical-ci-p1", "proposed", "rejected", (), (), ())


def test_the_summary_ends_with_each_major_incident_its_rule_and_every_issue_key() -> None:
    text = summary(
        "mim-connector", STATS, Tally(started=0.0), 60.0, (0, 0), MajorIncidents((CLUSTER, PAYMENTS), 2)
    )
    assert text.split("\n")[8:] == [
        "Major incidents: 2",
        '  INC0000116 proposed by rule ci-cluster (now accepted), 2 children: "Storage array 02: latency above'
        ' 200 ms on every volume of t…"',
        "    issues: ACME-2 (acme)",
        "    children's issues: PAY-9 (initech, INC0000132)",
        '  INC0000517 promoted by rule payments-outage: "Card payments fail"',
        "    issues: NET-1 (globex), PAY-2 (initech)",
    ]


def test_only_the_newest_major_incidents_are_listed_and_the_rest_counted() -> None:
    assert major_lines(MajorIncidents((UNMIRRORED,), 24)) == [
        "Major incidents: 24 (the newest 1)",
        "  INC0000433 proposed by rule critical-ci-p1 (now rejected)",
        "    issues: none",
        "  ... and 23 earlier ones",
    ]
