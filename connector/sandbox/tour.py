"""Where to look once the demo's story is over: the simulators' URLs, logins and ready-made requests.

:func:`where_to_look` is what ``run`` prints when ``sandbox.keep_serving`` keeps the simulators
up: for ServiceNow the service desk's login (``admin``) and a query of the major incidents; for
every Jira site the supplier engineer's login (Jane Doe) and a search of its project, each as a
``curl`` line (a browser asks for the same login on the REST URLs). Every credential shown is
the sandbox's own, generated for this run.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from connector.sandbox.agents import AGENT_USERNAME

MAJOR_INCIDENTS_QUERY = {
    "sysparm_query": "major_incident_stateISNOTEMPTY^ORparent_incidentISNOTEMPTY^ORDERBYnumber",
    "sysparm_fields": "number,short_description,major_incident_state,parent_incident,correlation_display",
    "sysparm_exclude_reference_link": "true",
}


def where_to_look(described: Mapping[str, Any], admin: tuple[str, str]) -> str:
    """Lines that tell a person how to browse ``described`` (``Sandbox.describe()``) as ``admin``."""
    servicenow = described["servicenow"]["url"]
    user, password = admin
    lines = [
        "The simulators keep serving until Ctrl-C (sandbox.keep_serving); look at what the story left:",
        f"  ServiceNow     {servicenow}  as {user} / {password} (the service desk)",
        "    "
        + _curl(f"{servicenow}/api/now/table/incident?{urlencode(MAJOR_INCIDENTS_QUERY)}", user, password),
    ]
    for name, site in described["jira"]["sites"].items():
        person = next((u for u in site["users"] if u["username"] == AGENT_USERNAME), None)
        project = next(iter(site["projects"]), None)
        if person is None or project is None:
            continue
        query = urlencode({"jql": f"project = {project['key']} ORDER BY key", "fields": "summary,status"})
        label = f"Jira {name}".ljust(14)
        if site["deployment"] == "cloud":
            lines.append(f"  {label} {site['url']}  as {person['email']} / API token {person['api_token']}")
            lines.append(
                "    "
                + _curl(f"{site['url']}/rest/api/2/search/jql?{query}", person["email"], person["api_token"])
            )
        else:
            lines.append(
                f"  {label} {site['url']}  as {person['username']}, personal access token {person['pat']}"
            )
            lines.append("    " + _curl(f"{site['url']}/rest/api/2/search?{query}", bearer=person["pat"]))
    lines.append(
        f"  Every user and credential: {servicenow}/_sandbox/info and {described['jira']['url']}/_sandbox/info"
    )
    return "\n".join(lines)


def _curl(
    url: str, user: str | None = None, password: str | None = None, *, bearer: str | None = None
) -> str:
    auth = ["-u", f"{user}:{password}"] if user is not None else ["-H", f"Authorization: Bearer {bearer}"]
    return shlex.join(["curl", "-s", *auth, url])
