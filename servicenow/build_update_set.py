"""Writes ``servicenow/mim_connector_push.xml`` from the scripts in ``servicenow/src/``.

The file has the shape ServiceNow gives a retrieved update set exported with *Export to XML*: an
``<unload>`` holding one ``sys_remote_update_set`` and one ``sys_update_xml`` per record, each
record's XML in ``<payload>`` (in CDATA, or entity-escaped when the record itself holds CDATA, as
a script does). The records keep their sys_ids from one build to the next, so a newer file
updates what an older one installed; the update set's own identifiers and the timestamps come
from ``--stamp``.

Run it after changing a script: ``python servicenow/build_update_set.py``
(``tests/unit/test_servicenow_update_set.py`` fails while the XML and ``src/`` differ).
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
OUTPUT = HERE / "mim_connector_push.xml"

UPDATE_SET_NAME = "MIM connector push"
UPDATE_SET_DESCRIPTION = (
    "mim-connector ServiceNow push (docs/push.md): two async business rules that notify the connector "
    "of incident changes and new incident comments and work notes, the script include they call, "
    "and its system properties."
)
AUTHOR = "admin"

SCRIPT_INCLUDE_ID = "46b7f831c9863001b740f8f704e55272"
INCIDENT_RULE_ID = "c0c5009148a9aef36c9e921325a9c3e7"
JOURNAL_RULE_ID = "53f20e08a16f19f2e133017e9c39769f"
PROPERTY_IDS = {
    "x_mim_connector.push.enabled": "39e74082a0f280ec9bde3164ff153839",
    "x_mim_connector.push.url": "77dfebdf80f5a474af642c172f447aa8",
    "x_mim_connector.push.secret": "e267e16b8830f782729c93e0936052f0",
    "x_mim_connector.push.fields": "395296872f7ed3c35c50bfc510d7a4d0",
}
DEFAULT_FIELDS = (
    "number,priority,impact,urgency,state,major_incident_state,assignment_group,cmdb_ci,"
    "business_service,category,subcategory,short_description,opened_at,parent_incident,sys_updated_by"
)
JOURNAL_CONDITION = (
    'current.name == "incident" && (current.element == "comments" || current.element == "work_notes")'
)

GLOBAL_PACKAGE = ("sys_package", "global", {"display_value": "Global", "source": "global"})
GLOBAL_SCOPE = ("sys_scope", "global", {"display_value": "Global"})

Field = tuple[str, str, dict[str, str]]
"""One element of a record: name, text and attributes; a script's text goes in CDATA."""


@dataclass(frozen=True)
class Update:
    """One application file of the update set: a record and how the update set names it."""

    table: str
    sys_id: str
    type_label: str
    target_name: str
    target_table: str
    fields: list[Field]

    @property
    def update_name(self) -> str:
        """``sys_update_name`` and ``sys_update_xml.name``: ``<table>_<sys_id>``."""
        return f"{self.table}_{self.sys_id}"


def build(stamp: str) -> str:
    """The whole export, its records created and updated at ``stamp`` (``YYYY-MM-DD HH:MM:SS``)."""
    updates = [*_properties(stamp), _script_include(stamp), *_business_rules(stamp)]
    remote_set_id = _derived_id(stamp, "sys_remote_update_set")
    lines = [f'<?xml version="1.0" encoding="UTF-8"?><unload unload_date="{stamp}">']
    lines.append('<sys_remote_update_set action="INSERT_OR_UPDATE">')
    lines += [
        _element(*field)
        for field in [
            ("application", "global", {"display_value": "Global"}),
            ("application_name", "Global", {}),
            ("application_scope", "global", {}),
            ("application_version", "", {}),
            ("collisions", "", {}),
            ("commit_date", "", {}),
            ("deleted", "", {}),
            ("description", UPDATE_SET_DESCRIPTION, {}),
            ("inserted", "", {}),
            ("name", UPDATE_SET_NAME, {}),
            ("origin_sys_id", "", {}),
            ("parent", "", {"display_value": ""}),
            ("release_date", "", {}),
            ("remote_base_update_set", "", {"display_value": ""}),
            ("remote_parent_id", "", {}),
            ("remote_sys_id", _derived_id(stamp, "sys_update_set"), {}),
            ("state", "loaded", {}),
            ("summary", "", {}),
            ("sys_class_name", "sys_remote_update_set", {}),
            ("sys_created_by", AUTHOR, {}),
            ("sys_created_on", stamp, {}),
            ("sys_id", remote_set_id, {}),
            ("sys_mod_count", "0", {}),
            ("sys_updated_by", AUTHOR, {}),
            ("sys_updated_on", stamp, {}),
            ("update_set", "", {"display_value": ""}),
            ("update_source", "", {"display_value": ""}),
            ("updated", "", {}),
        ]
    ]
    lines.append("</sys_remote_update_set>")
    milliseconds = int(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)
    for index, update in enumerate(updates):
        lines += _update_xml(update, stamp, remote_set_id, milliseconds + index)
    lines.append("</unload>")
    return "\n".join(lines) + "\n"


def _update_xml(update: Update, stamp: str, remote_set_id: str, recorded_ms: int) -> list[str]:
    payload = _payload(update)
    payload_hash = str(int.from_bytes(hashlib.sha256(payload.encode()).digest()[:4], "big", signed=True))
    guid = _derived_id(stamp, f"update_guid:{update.update_name}")
    if "<![CDATA[" in payload:  # as ServiceNow does: a payload holding CDATA is entity-escaped
        payload_element = f"<payload>{escape(payload)}</payload>"
    else:
        payload_element = f"<payload><![CDATA[{payload}]]></payload>"
    fields: list[Field] = [
        ("action", "INSERT_OR_UPDATE", {}),
        ("application", "global", {"display_value": "Global"}),
        ("category", "customer", {}),
        ("comments", "", {}),
        ("name", update.update_name, {}),
    ]
    after: list[Field] = [
        ("payload_hash", payload_hash, {}),
        ("remote_update_set", remote_set_id, {"display_value": UPDATE_SET_NAME}),
        ("replace_on_upgrade", "false", {}),
        ("sys_created_by", AUTHOR, {}),
        ("sys_created_on", stamp, {}),
        ("sys_id", _derived_id(stamp, f"sys_update_xml:{update.update_name}"), {}),
        ("sys_mod_count", "0", {}),
        ("sys_recorded_at", f"{recorded_ms:x}0000001", {}),
        ("sys_updated_by", AUTHOR, {}),
        ("sys_updated_on", stamp, {}),
        ("table", update.target_table, {}),
        ("target_name", update.target_name, {}),
        ("type", update.type_label, {}),
        ("update_domain", "global", {}),
        ("update_guid", guid, {}),
        ("update_guid_history", f"{guid}:{payload_hash}", {}),
        ("update_set", "", {"display_value": ""}),
        ("view", "", {}),
    ]
    return [
        '<sys_update_xml action="INSERT_OR_UPDATE">',
        *(_element(*field) for field in fields),
        payload_element,
        *(_element(*field) for field in after),
        "</sys_update_xml>",
    ]


def _payload(update: Update) -> str:
    domain = ' sys_domain="global"' if update.table == "sys_script" else ""
    body = "".join(_element(*field) for field in update.fields)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><record_update{domain} table="{update.table}">'
        f'<{update.table} action="INSERT_OR_UPDATE">{body}</{update.table}></record_update>'
    )


def _element(name: str, text: str, attributes: dict[str, str]) -> str:
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in attributes.items())
    if name == "script":
        if "]]>" in text:
            raise ValueError("a script may not contain ']]>'")
        return f"<{name}{attrs}><![CDATA[{text}]]></{name}>"
    if text == "":
        return f"<{name}{attrs}/>"
    return f"<{name}{attrs}>{escape(text)}</{name}>"


def _record_fields(update_name: str, name: str, sys_id: str, stamp: str) -> list[Field]:
    """The system fields every exported record carries, in their alphabetical places."""
    return [
        ("sys_created_by", AUTHOR, {}),
        ("sys_created_on", stamp, {}),
        ("sys_id", sys_id, {}),
        ("sys_mod_count", "0", {}),
        ("sys_name", name, {}),
        GLOBAL_PACKAGE,
        ("sys_policy", "", {}),
        GLOBAL_SCOPE,
        ("sys_update_name", update_name, {}),
        ("sys_updated_by", AUTHOR, {}),
        ("sys_updated_on", stamp, {}),
    ]


def _script_include(stamp: str) -> Update:
    name, sys_id = "MimConnectorPush", SCRIPT_INCLUDE_ID
    update_name = f"sys_script_include_{sys_id}"
    system = _record_fields(update_name, name, sys_id, stamp)
    fields: list[Field] = [
        ("access", "package_private", {}),
        ("active", "true", {}),
        ("api_name", f"global.{name}", {}),
        ("caller_access", "", {}),
        ("client_callable", "false", {}),
        (
            "description",
            "Builds, signs (HMAC-SHA256) and posts the mim-connector push notifications "
            "(docs/push.md). Called by the MIM connector push business rules.",
            {},
        ),
        ("mobile_callable", "false", {}),
        ("name", name, {}),
        ("sandbox_callable", "false", {}),
        ("script", _source("MimConnectorPush.js"), {}),
        ("sys_class_name", "sys_script_include", {}),
        *system,
    ]
    return Update("sys_script_include", sys_id, "Script Include", name, "", fields)


def _business_rules(stamp: str) -> list[Update]:
    rules = [
        (
            INCIDENT_RULE_ID,
            "MIM connector push: incident",
            "incident",
            ("true", "true"),
            "",
            "Notifies the mim-connector of every incident insert and update (async; docs/push.md).",
            "push_incident.js",
        ),
        (
            JOURNAL_RULE_ID,
            "MIM connector push: journal",
            "sys_journal_field",
            ("true", "false"),
            JOURNAL_CONDITION,
            "Notifies the mim-connector of each new incident comment or work note, without its text "
            "(async; docs/push.md).",
            "push_journal.js",
        ),
    ]
    updates = []
    for sys_id, name, table, (on_insert, on_update), condition, description, source in rules:
        update_name = f"sys_script_{sys_id}"
        system = _record_fields(update_name, name, sys_id, stamp)
        fields: list[Field] = [
            ("abort_action", "false", {}),
            ("access", "package_private", {}),
            ("action_delete", "false", {}),
            ("action_insert", on_insert, {}),
            ("action_query", "false", {}),
            ("action_update", on_update, {}),
            ("active", "true", {}),
            ("add_message", "false", {}),
            ("advanced", "true", {}),
            ("change_fields", "false", {}),
            ("client_callable", "false", {}),
            ("collection", table, {}),
            ("condition", condition, {}),
            ("description", description, {}),
            ("execute_function", "false", {}),
            ("filter_condition", "", {}),
            ("is_rest", "false", {}),
            ("message", "", {}),
            ("name", name, {}),
            ("order", "1000", {}),
            ("priority", "100", {}),
            ("rest_method", "", {}),
            ("rest_method_text", "", {}),
            ("rest_service", "", {}),
            ("rest_service_text", "", {}),
            ("rest_variables", "", {}),
            ("role_conditions", "", {}),
            ("script", _source(source), {}),
            ("sys_class_name", "sys_script", {}),
            *system[:2],
            ("sys_domain", "global", {}),
            ("sys_domain_path", "/", {}),
            *system[2:5],
            ("sys_overrides", "", {}),
            *system[5:],
            ("template", "", {}),
            ("when", "async", {}),
        ]
        updates.append(Update("sys_script", sys_id, "Business Rule", name, table, fields))
    return updates


def _properties(stamp: str) -> list[Update]:
    specs = [
        (
            "x_mim_connector.push.enabled",
            "boolean",
            "false",
            "Send push notifications to the mim-connector (true|false). Off until the URL and the secret are set.",
        ),
        (
            "x_mim_connector.push.url",
            "string",
            "",
            "Where to post the notifications: https://<your proxy>/push/servicenow",
        ),
        (
            "x_mim_connector.push.secret",
            "password2",
            "",
            "The shared secret that signs each notification: the base64 of the connector's "
            'servicenow.push_secret (printf %s "$SECRET" | base64).',
        ),
        (
            "x_mim_connector.push.fields",
            "string",
            DEFAULT_FIELDS,
            "The incident fields sent with each incident notification, comma-separated "
            "(mim-connector doctor prints the list the rules and routing read).",
        ),
    ]
    updates = []
    for name, kind, value, description in specs:
        sys_id = PROPERTY_IDS[name]
        update_name = f"sys_properties_{sys_id}"
        system = _record_fields(update_name, name, sys_id, stamp)
        fields: list[Field] = [
            ("choices", "", {}),
            ("description", description, {}),
            ("ignore_cache", "true", {}),
            ("is_private", "false", {}),
            ("name", name, {}),
            ("read_roles", "", {}),
            ("suffix", "", {}),
            ("sys_class_name", "sys_properties", {}),
            *system,
            ("type", kind, {}),
            ("value", value, {}),
            ("write_roles", "", {}),
        ]
        updates.append(Update("sys_properties", sys_id, "System Property", name, "", fields))
    return updates


def _source(name: str) -> str:
    return (SRC / name).read_text(encoding="utf-8")


def _derived_id(stamp: str, label: str) -> str:
    return hashlib.sha256(f"{stamp}|{label}".encode()).hexdigest()[:32]


def main() -> None:
    """Write the export (``--stamp`` defaults to now, UTC)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stamp", help="the export's date and time, YYYY-MM-DD HH:MM:SS (UTC)")
    args = parser.parse_args()
    stamp = args.stamp or datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    OUTPUT.write_text(build(stamp), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(HERE.parent)} ({stamp})")


if __name__ == "__main__":
    main()
