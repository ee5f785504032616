"""JSON Schemas of the three file kinds, generated from the models, for editors and CI.

The shipped YAML files point at them with ``# yaml-language-server: $schema=...`` so that editors
autocomplete keys and flag mistakes as admins type. ``mim-connector schema --write`` regenerates
them; a test fails when the committed copies are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connector.config.connector_file import ConnectorConfig
from connector.config.rules_file import RulesFile
from connector.config.supplier_file import SupplierMapping

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "connector.schema.json": (ConnectorConfig, "mim-connector: config/connector.yaml"),
    "rules.schema.json": (RulesFile, "mim-connector: mappings/rules.yaml"),
    "supplier.schema.json": (SupplierMapping, "mim-connector: mappings/suppliers/<name>.yaml"),
}


def render(model: type[BaseModel], title: str) -> str:
    """The JSON Schema of ``model`` as stable, pretty-printed text."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **model.model_json_schema(mode="validation"),
    }
    schema["title"] = title
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(folder: Path) -> list[Path]:
    """(Re)write every schema into ``folder``; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (model, title) in SCHEMAS.items():
        path = folder / name
        path.write_text(render(model, title), encoding="utf-8")
        written.append(path)
    return written


def stale(folder: Path) -> list[str]:
    """Names of the schema files in ``folder`` that are missing or differ from the models."""
    out = []
    for name, (model, title) in SCHEMAS.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != render(model, title):
            out.append(name)
    return out
