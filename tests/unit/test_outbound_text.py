"""Every text the planner sends a supplier: bounded, sanitised, redacted, the connector's own text intact."""

from __future__ import annotations

import dataclasses
from typing import Any

from connector.config.supplier_file import RedactionPattern, SupplierMapping
from connector.core.plan import CommentOnIssue, CreateIssue, UpdateIssue
from connector.mirror.planner import plan
from connector.mirror.problem import plan_problem
from connector.mirror.redaction import TRUNCATED, WITHHELD
from connector.mirror.shared import plan_shared
from connector.mirror.view import SUMMARY_LIMIT, TEXT_LIMIT, EntityView
from tests.factories import incident, issue, journal, link, mapping
from tests.unit.test_planner import synced, view

MB = 1_000_000
INC = incident(major_incident_state="")
URL = f"https://sn.example/nav_to.do?uri=incident.do?sys_id={INC.sys_id}"
E_MAIL = "[e-mail removed]"
# An admin's pattern for employee ids: it would rewrite the digits of every sys_id it saw.
EMPLOYEE_ID = RedactionPattern(name="employee-id", regex=r"\d{6,}", replace="[id]")
CATASTROPHIC = RedactionPattern(name="bad", regex=r"(x+x+)+y", replace="[bad]")


def with_patterns(*extra: RedactionPattern, **outbound: Any) -> SupplierMapping:
    acme = mapping("acme")
    redaction = acme.outbound.redaction.model_copy(
        update={"patterns": (*acme.outbound.redaction.patterns, *extra)}
    )
    out = acme.outbound.model_copy(update={"redaction": redaction, **outbound})
    return acme.model_copy(update={"outbound": out})


def created(**fields: str) -> CreateIssue:
    return _created(view(incident=incident(major_incident_state="", **fields), incident_url=URL))


def _created(entity: EntityView) -> CreateIssue:
    create = plan(entity).changes[0]
    assert isinstance(create, CreateIssue)
    return create


def test_a_multi_megabyte_description_leaves_clipped_with_the_link_back_intact() -> None:
    blob = "Pasted log, reach me at ops.lead@corp.example.com\n" + "QUJDREVGR0g=" * (3 * MB // 12)
    create = created(description=blob)
    description = create.fields["description"]
    assert len(description) <= TEXT_LIMIT
    assert TRUNCATED in description and E_MAIL in description and "ops.lead" not in description
    assert description.endswith(f"Service desk record: {URL}"), "the template's own text survives"
    assert create.shadow["description"] == description


def test_the_connectors_own_link_and_the_number_are_never_rewritten_by_a_pattern() -> None:
    entity = view(incident=INC, incident_url=URL, mapping=with_patterns(EMPLOYEE_ID))
    entity = dataclasses.replace(
        entity, incident=incident(major_incident_state="", description="badge 1234567 lost")
    )
    create = _created(entity)
    assert create.fields["description"].endswith(f"Service desk record: {URL}")
    assert "badge [id] lost" in create.fields["description"]
    assert create.fields["summary"] == "[INC0010001] Checkout fails"
    assert create.fields["customfield_10050"] == "INC0010001"


def test_a_multi_megabyte_summary_stays_within_jiras_limit_on_one_line() -> None:
    summary = created(short_description="Checkout\nfails " + "again " * (2 * MB // 6)).fields["summary"]
    assert len(summary) <= SUMMARY_LIMIT and "\n" not in summary
    assert summary.startswith("[INC0010001] Checkout fails again") and summary.endswith(TRUNCATED)


def test_control_characters_never_reach_the_supplier() -> None:
    create = created(
        short_description="Checkout\x1b[31m fails\u202e",
        description="nul\x00 here, bidi \u202egpj.exe\u202c and a bell\x07\n\ttab kept",
    )
    assert create.fields["summary"] == "[INC0010001] Checkout fails"
    assert create.fields["description"].startswith("Incident INC0010001")
    assert "nul here, bidi gpj.exe and a bell\n\ttab kept" in create.fields["description"]


def test_custom_field_templates_are_scrubbed_value_by_value() -> None:
    custom = with_patterns(fields={"customfield_10050": "{number}: {description}"})
    entity = view(
        incident=incident(major_incident_state="", description="ring +44 20 7946 0958\x00" * (MB // 20)),
        incident_url=URL,
        mapping=custom,
    )
    value = _created(entity).fields["customfield_10050"]
    assert value.startswith("INC0010001: ring [phone removed]ring [phone removed]")
    assert len(value) <= TEXT_LIMIT and "7946" not in value and "\x00" not in value


def test_the_bridge_field_is_scrubbed_and_bounded() -> None:
    bridge = "https://meet.example.com/mim-42 (host: JANE.ROE@CORP.EXAMPLE.COM)\x1b[0m" + " " * (2 * MB)
    create = created(u_bridge_url=bridge + "tail")
    assert create.fields["customfield_10080"].startswith(f"https://meet.example.com/mim-42 (host: {E_MAIL})")
    assert len(create.fields["customfield_10080"]) <= TEXT_LIMIT


def test_the_next_update_goes_as_a_date_or_else_as_scrubbed_text() -> None:
    assert created(u_next_update="2026-11-22 11:00:00").fields["customfield_10081"] == (
        "2026-11-22T11:00:00.000+0000"
    )
    text = created(u_next_update="ask bob@example.com\x00" + "?" * MB).fields["customfield_10081"]
    assert text.startswith(f"ask {E_MAIL}???") and len(text) <= SUMMARY_LIMIT


def test_a_comment_header_is_redacted_and_a_huge_comment_bounded_with_its_stamp() -> None:
    entry = journal(
        "j1", "see jane.doe@example.com\x00\n" + "x" * (5 * MB), created_by="Jane.Doe@Example.com"
    )
    (out,) = plan(synced(journal=(entry,))).changes
    assert isinstance(out, CommentOnIssue)
    header, body = out.body.split("\n", 1)
    assert header == f"{E_MAIL} (service desk) wrote:"
    assert body.startswith(f"see {E_MAIL}\nxxxx") and "\x00" not in body
    assert out.body.endswith(f"{TRUNCATED}\n\n[mim-connector ref:{out.marker}]")
    assert len(out.body) <= TEXT_LIMIT + len(f"\n\n[mim-connector ref:{out.marker}]")


def test_a_text_whose_redaction_cannot_finish_is_withheld_and_the_operator_told_once() -> None:
    entity = view(
        incident=incident(major_incident_state="", description="token " + "x" * 5_000 + "!"),
        incident_url=URL,
        mapping=with_patterns(CATASTROPHIC),
    )
    first, again = plan(entity), plan(entity)
    for result in (first, again):
        create = result.changes[0]
        assert isinstance(create, CreateIssue)
        assert WITHHELD in create.fields["description"] and "xxxx" not in create.fields["description"]
        assert create.fields["description"].endswith(f"Service desk record: {URL}")
        assert create.fields["summary"] == "[INC0010001] Checkout fails", "the other texts still go"
    (alert,) = first.alerts
    assert alert.startswith("description {description} withheld: redaction pattern 'bad' did not finish")
    assert again.alerts == (), "the text is remembered: the budget is not spent on it again"


def test_a_multi_megabyte_shared_value_goes_out_scrubbed_and_bounded() -> None:
    workaround = "restart, then mail ops@corp.example.com\x1b[1m " + "y" * (2 * MB)
    entity = view(
        incident=incident(u_workaround=workaround),
        link=link(),
        issue=issue(customfield_10062=""),
        jira_shadow={"@shared:customfield_10062": ""},
    )
    changes, _pending = plan_shared(entity, [])
    (update,) = [c for c in changes if isinstance(c, UpdateIssue)]
    value = update.fields["customfield_10062"]
    assert value.startswith(f"restart, then mail {E_MAIL} yyy") and len(value) <= TEXT_LIMIT


def test_the_problem_comment_is_the_connectors_own_text_and_no_pattern_rewrites_it() -> None:
    prb_pattern = RedactionPattern(name="record-numbers", regex=r"[A-Z]{3}\d{7}", replace="[ref]")
    entity = view(
        incident=incident(problem_id="prb1", **{"problem_id.number": "PRB0040001\x1b[2J"}),
        link=link(),
        issue=issue(),
        mapping=with_patterns(prb_pattern),
        instance_url="https://sn.example",
    )
    comment = next(c for c in plan_problem(entity) if isinstance(c, CommentOnIssue))
    assert "linked INC0010001 to problem PRB0040001 for root-cause" in comment.body
    assert "\x1b" not in comment.body
