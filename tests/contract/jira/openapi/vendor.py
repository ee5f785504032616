"""Regenerate ``jira-cloud-v3-subset.json`` from Atlassian's Jira Cloud platform v3 OpenAPI.

Usage: python tests/contract/jira/openapi/vendor.py path/to/jira-cloud-platform.v3.openapi.json

Keeps the operations the simulator serves and every component schema they reach, drops prose
(``description``, ``example``, ``x-atlassian-*`` and similar keys) to keep the file small. See NOTICE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = {
    "/rest/api/3/serverInfo": ["get"],
    "/rest/api/3/myself": ["get"],
    "/rest/api/3/field": ["get"],
    "/rest/api/3/project": ["get"],
    "/rest/api/3/project/{projectIdOrKey}": ["get"],
    "/rest/api/3/project/{projectIdOrKey}/statuses": ["get"],
    "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}": ["get"],
    "/rest/api/3/issuetype": ["get"],
    "/rest/api/3/priority": ["get"],
    "/rest/api/3/resolution": ["get"],
    "/rest/api/3/status": ["get"],
    "/rest/api/3/issue": ["post"],
    "/rest/api/3/issue/{issueIdOrKey}": ["get", "put", "delete"],
    "/rest/api/3/issue/{issueIdOrKey}/changelog": ["get"],
    "/rest/api/3/issue/{issueIdOrKey}/transitions": ["get", "post"],
    "/rest/api/3/issue/{issueIdOrKey}/comment": ["get", "post"],
    "/rest/api/3/issue/{issueIdOrKey}/comment/{id}": ["get", "put", "delete"],
    "/rest/api/3/issue/{issueIdOrKey}/remotelink": ["get", "post", "delete"],
    "/rest/api/3/issue/{issueIdOrKey}/remotelink/{linkId}": ["get", "put", "delete"],
    "/rest/api/3/issue/{issueIdOrKey}/properties": ["get"],
    "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}": ["get", "put", "delete"],
    "/rest/api/3/search": ["get", "post"],
    "/rest/api/3/search/jql": ["get", "post"],
    "/rest/api/3/issueLinkType": ["get"],
    "/rest/api/3/issueLinkType/{issueLinkTypeId}": ["get"],
    "/rest/api/3/issueLink": ["post"],
    "/rest/api/3/issueLink/{linkId}": ["get", "delete"],
}
EXTRA_SCHEMAS = ["ErrorCollection"]
PROSE = {"description", "example", "examples", "summary", "externalDocs", "x-atlassian-connect-scope",
         "x-atlassian-data-security-policy", "x-atlassian-oauth2-scopes", "x-experimental", "x-changes",
         "security", "tags", "x-atlassian-operation-timeout", "xml"}  # fmt: skip


def strip(node: Any, names: bool = False) -> Any:
    """Drop prose keys; ``names`` marks a mapping whose keys are names (``properties``), kept whole."""
    if isinstance(node, dict):
        return {
            k: strip(v, k == "properties" and not names) for k, v in node.items() if names or k not in PROSE
        }
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def main(source: Path) -> None:
    spec = json.loads(source.read_text())
    paths = {p: {m: strip(spec["paths"][p][m]) for m in methods} for p, methods in OPERATIONS.items()}
    schemas: dict[str, Any] = {}
    pending = refs(paths) | set(EXTRA_SCHEMAS)
    while pending:
        name = pending.pop()
        if name not in schemas:
            schemas[name] = strip(spec["components"]["schemas"][name])
            pending |= refs(schemas[name]) - set(schemas)
    subset = {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "description": "Subset of " + spec["info"]["title"] + " (see NOTICE)"},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    target = Path(__file__).with_name("jira-cloud-v3-subset.json")
    target.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
    print(f"{target}: {len(paths)} paths, {len(schemas)} schemas")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
