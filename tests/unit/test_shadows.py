"""Shadow keys keep the stored form existing stores hold."""

from __future__ import annotations

import pytest

from connector.core.shadows import ShadowKey, ShadowKind, conflict, held, pending, shared


def test_keys_are_stored_as_the_prefixes_existing_stores_hold() -> None:
    assert pending("summary") == "@pending:summary"
    assert conflict("priority") == "@conflict:priority"
    assert held(shared("customfield_10062")) == "@held:@shared:customfield_10062"
    assert pending(shared("customfield_10062")) == "@pending:@shared:customfield_10062"


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        ("summary", ShadowKey("summary")),
        ("@state", ShadowKey("@state")),
        ("@pending:state", ShadowKey("state", ShadowKind.PENDING)),
        ("@conflict:u_supplier_status", ShadowKey("u_supplier_status", ShadowKind.CONFLICT)),
        ("@pending:@shared:labels", ShadowKey("@shared:labels", ShadowKind.PENDING)),
    ],
)
def test_a_stored_key_parses_to_its_outermost_kind_and_back(stored: str, key: ShadowKey) -> None:
    assert ShadowKey.parse(stored) == key
    assert str(key) == stored


def test_only_plain_fields_are_fields() -> None:
    assert ShadowKey.parse("summary").is_field
    assert not ShadowKey.parse("@remote_link").is_field
    assert not ShadowKey.parse(pending("summary")).is_field
