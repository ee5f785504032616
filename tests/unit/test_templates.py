from __future__ import annotations

import pytest

from connector.config import load_config
from connector.core.plan import CreateIssue
from connector.core.templates import placeholders, render
from connector.mirror.planner import plan
from tests.factories import REPO, incident
from tests.unit.test_planner import view


def test_placeholders_in_order_with_dots() -> None:
    assert placeholders("[{number}] {cmdb_ci.name} {{literal}}") == ["number", "cmdb_ci.name"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{number", "malformed template"),
        ("{number!r}", "conversion or format spec"),
        ("{number:>10}", "conversion or format spec"),
        ("{0}", "not a field name"),
        ("{a[0]}", "not a field name"),
        ("{}", "not a field name"),
    ],
)
def test_malformed_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        placeholders(template)


def test_render_is_a_flat_lookup_without_attribute_access() -> None:
    values = {"number": "INC001", "cmdb_ci.name": "db01"}
    assert render("[{number}] {cmdb_ci.name} {missing} {{x}}", values) == "[INC001] db01  {x}"
    assert render("{number}", {}, missing="?") == "?"


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({"number": "INC1", "cmdb_ci.name": "db01"}, "Incident INC1, raised against db01."),
        ({"number": "INC1", "cmdb_ci.name": ""}, "Incident INC1."),
        ({"number": "INC1", "cmdb_ci.name": "  "}, "Incident INC1."),
        ({"number": "INC1"}, "Incident INC1."),
    ],
)
def test_an_optional_segment_is_left_out_when_a_placeholder_in_it_is_empty(
    values: dict[str, str], text: str
) -> None:
    assert render("Incident {number}[[, raised against {cmdb_ci.name}]].", values) == text


def test_optional_segments_name_their_placeholders_and_must_be_closed() -> None:
    template = "[{number}][[ on {cmdb_ci.name}]] [[({priority})]] a]] b"
    assert placeholders(template) == ["number", "cmdb_ci.name", "priority"]
    assert render(template, {"number": "INC1", "priority": "1"}) == "[INC1] (1) a]] b"
    for broken in ("[[ on {cmdb_ci.name}", "[[ [[{number}]] ]]"):
        with pytest.raises(ValueError, match=r"optional segment \[\[ … \]\] not closed"):
            placeholders(broken)


def _description(**fields: str) -> str:
    created = plan(view(incident=incident(**fields)))
    (create,) = [c for c in created.changes if isinstance(c, CreateIssue)]
    return str(create.shadow["description"])


def test_the_shipped_template_omits_the_ci_clause_when_the_incident_has_no_ci() -> None:
    assert _description(**{"cmdb_ci.name": ""}) == (
        "Incident INC0010001 at priority 1.\n\n"
        "Customers cannot pay\n\n"
        "Service desk record: https://sn.example/nav_to.do?uri=incident.do?sys_id=x"
    )
    assert _description(**{"cmdb_ci.name": "pay-db-01"}).startswith(
        "Incident INC0010001 at priority 1, raised against pay-db-01.\n\n"
    )


def test_check_accepts_the_shipped_mappings_with_optional_segments() -> None:
    loaded = load_config(REPO / "config" / "demo.yaml")
    assert "[[, raised against {cmdb_ci.name}]]" in loaded.suppliers["acme"].outbound.description
