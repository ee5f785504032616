"""Validating simulator responses against the vendored subset of Jira Cloud's v3 OpenAPI (see NOTICE).

OpenAPI 3.0 schemas are JSON Schema with ``nullable``; :func:`validate` turns ``nullable: true`` into
a ``null`` type and checks the body of a response against the schema the spec gives for its path,
method and status. Formats are not checked: Jira's own timestamps (``+0000`` offsets) are not RFC 3339.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SPEC_FILE = Path(__file__).with_name("jira-cloud-v3-subset.json")
BASE = "urn:jira-cloud-v3"

# Where Jira sends null although the spec does not say nullable: changelog items carry
# "from": null / "to": null for fields without ids (summary, labels...), as every real changelog shows.
KNOWN_NULLABLE = {("ChangeDetails", name) for name in ("from", "fromString", "to", "toString")}


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _nullable(value) for key, value in node.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    return node


def _load() -> dict[str, Any]:
    spec = _nullable(json.loads(SPEC_FILE.read_text()))
    for schema_name, prop in KNOWN_NULLABLE:
        target = spec["components"]["schemas"][schema_name]["properties"][prop]
        target["type"] = [target["type"], "null"]
    return spec


SPEC = _load()
REGISTRY = Registry().with_resource(BASE, Resource.from_contents(SPEC, default_specification=DRAFT7))


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    """The ``$ref`` to the schema of ``path``/``method``/``status`` in the spec, or ``None`` when it has none."""
    operation = SPEC["paths"][path][method.lower()]
    answer = operation["responses"].get(str(status))
    if answer is None:
        raise AssertionError(f"the spec has no {status} response for {method.upper()} {path}")
    if "application/json" not in answer.get("content", {}):
        return None
    return {
        "$ref": f"{BASE}#/{_pointer('paths', path, method.lower(), 'responses', str(status), 'content', 'application/json', 'schema')}"
    }


def component(name: str) -> dict[str, Any]:
    """A ``$ref`` to a component schema (e.g. ``ErrorCollection``)."""
    return {"$ref": f"{BASE}#/components/schemas/{name}"}


def check(instance: Any, schema: dict[str, Any]) -> None:
    """Raise ``AssertionError`` listing every violation of ``schema`` by ``instance``."""
    validator = Draft7Validator(schema, registry=REGISTRY)
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
    if problems:
        raise AssertionError("response violates the Jira OpenAPI schema:\n" + "\n".join(problems[:20]))


def validate(response: requests.Response, path: str, method: str | None = None) -> Any:
    """Check a response's JSON against the spec for ``path`` (a v3 template such as
    ``/rest/api/3/issue/{issueIdOrKey}``); return the decoded body."""
    method = method or response.request.method or "GET"
    schema = response_schema(path, method, response.status_code)
    if schema is None:
        return None
    body = response.json()
    check(body, schema)
    return body
