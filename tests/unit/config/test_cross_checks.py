"""Checks across mapping files that warn rather than refuse."""

from __future__ import annotations

from pathlib import Path

from connector.config import load_config


def test_two_suppliers_writing_one_incident_field_is_a_warning(config_tree: Path) -> None:
    globex = config_tree / "mappings" / "suppliers" / "globex.yaml"
    globex.write_text(globex.read_text() + 'inbound:\n  fields:\n    u_supplier_reference: "{key}"\n')
    loaded = load_config(Path("config/connector.yaml"))
    assert [str(w) for w in loaded.warnings if "writes" in str(w)] == [
        "mappings/suppliers/globex.yaml:28:5: warning: inbound.fields.u_supplier_reference: acme writes "
        "u_supplier_reference too: an incident mirrored to both would see them overwrite each other "
        "(give each supplier its own field)"
    ]
