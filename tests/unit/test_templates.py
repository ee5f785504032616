from __future__ import annotations

import pytest

from connector.templates import placeholders, render


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
