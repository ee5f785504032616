"""The ServiceNow side of the push: ``servicenow/mim_connector_push.xml`` against docs/push.md.

The update set is parsed as ServiceNow would read it (the export, then each record's payload),
and its scripts are compared with ``servicenow/src/``. Where ``node`` is installed, each script is
also parsed by it, and the script include is run against stand-ins for the Glide APIs, so the
body it posts and the signature it puts on it are checked by the connector's own verifier.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from connector.core.signatures import PREFIX, check

REPO = Path(__file__).resolve().parents[2]
SERVICENOW = REPO / "servicenow"
EXPORT = SERVICENOW / "mim_connector_push.xml"
SRC = SERVICENOW / "src"
PUSH_DOC = REPO / "docs" / "push.md"

SCRIPT_INCLUDE = "MimConnectorPush.js"
INCIDENT_RULE = "push_incident.js"
JOURNAL_RULE = "push_journal.js"
JOURNAL_CONDITION = (
    'current.name == "incident" && (current.element == "comments" || current.element == "work_notes")'
)
DEFAULT_FIELDS = (
    "number,priority,impact,urgency,state,major_incident_state,assignment_group,cmdb_ci,"
    "business_service,category,subcategory,short_description,opened_at,parent_incident,sys_updated_by"
)
PROPERTIES = {  # name: (type, default value)
    "x_mim_connector.push.enabled": ("boolean", "false"),
    "x_mim_connector.push.url": ("string", ""),
    "x_mim_connector.push.secret": ("password2", ""),
    "x_mim_connector.push.fields": ("string", DEFAULT_FIELDS),
}
SYS_ID = re.compile(r"[0-9a-f]{32}")
# Reading a journal entry's text: its ``value`` field, by property or by name.
READS_VALUE = re.compile(r"""\.value\b|(['"])value\1""")


@dataclass(frozen=True)
class Update:
    """One ``sys_update_xml`` of the export and the record its payload holds."""

    envelope: ET.Element
    table: str
    record: ET.Element

    def field(self, name: str) -> str:
        """The record's field ``name`` ("" when empty); the field must be present."""
        element = self.record.find(name)
        assert element is not None, f"{self.envelope.findtext('name')} has no <{name}>"
        return element.text or ""


@pytest.fixture(scope="module")
def export() -> ET.Element:
    """The parsed ``<unload>`` of the update set."""
    return ET.parse(EXPORT).getroot()


@pytest.fixture(scope="module")
def updates(export: ET.Element) -> list[Update]:
    """Every ``sys_update_xml`` of the export, its payload parsed."""
    found = []
    for envelope in export.findall("sys_update_xml"):
        payload = envelope.findtext("payload") or ""
        record_update = ET.fromstring(payload.encode("utf-8"))
        assert record_update.tag == "record_update"
        records = list(record_update)
        assert len(records) == 1, f"{envelope.findtext('name')}: one record per payload"
        table = record_update.get("table", "")
        assert records[0].tag == table
        found.append(Update(envelope, table, records[0]))
    return found


def of_table(updates: list[Update], table: str) -> list[Update]:
    """The updates of records of ``table``."""
    return [update for update in updates if update.table == table]


def named(updates: list[Update], table: str, name: str) -> Update:
    """The one update of ``table`` whose record is called ``name``."""
    matches = [update for update in of_table(updates, table) if update.field("name") == name]
    assert len(matches) == 1, f"expected one {table} named {name!r}, found {len(matches)}"
    return matches[0]


def source(name: str) -> str:
    """A script of ``servicenow/src/``."""
    return (SRC / name).read_text(encoding="utf-8")


def without_comments(script: str) -> str:
    """``script`` without its ``/* */`` and ``//`` comments (close enough for these scripts)."""
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", script, flags=re.DOTALL))


def function_body(script: str, method: str) -> str:
    """The text of a method of the script include's prototype, up to the next method."""
    start = script.index(f"    {method}: function")
    end = script.index("\n    },\n", start)
    return script[start:end]


def object_keys(code: str) -> list[str]:
    """The keys of the object literal ``code`` returns, in order (one ``key: value`` a line)."""
    literal = code[code.index("({") : code.index("})")]
    return re.findall(r"^\s*(\w+):", literal, flags=re.MULTILINE)


def doc_examples() -> list[dict[str, Any]]:
    """The JSON bodies docs/push.md shows: the incident notification, then the journal one."""
    blocks = re.findall(r"```json\n(.*?)```", PUSH_DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [json.loads(block) for block in blocks]


# --- the export ---------------------------------------------------------------------------------


def test_the_file_is_an_update_set_export(export: ET.Element, updates: list[Update]) -> None:
    """An ``<unload>`` with one loaded global ``sys_remote_update_set`` and its seven updates.

    Each update names its record ``<table>_<sys_id>`` (as the record's ``sys_update_name`` does),
    points at the remote update set, and every sys_id is 32 lowercase hex digits, unique.
    """
    assert export.tag == "unload"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", export.get("unload_date", ""))
    remote_sets = export.findall("sys_remote_update_set")
    assert len(remote_sets) == 1
    remote = remote_sets[0]
    assert remote.get("action") == "INSERT_OR_UPDATE"
    assert remote.findtext("state") == "loaded"
    assert remote.findtext("application_scope") == "global"
    assert remote.findtext("name")
    assert len(updates) == 7
    assert {child.tag for child in export} == {"sys_remote_update_set", "sys_update_xml"}
    sys_ids = [remote.findtext("sys_id") or ""]
    for update in updates:
        envelope, record = update.envelope, update.record
        update_name = f"{update.table}_{update.field('sys_id')}"
        assert envelope.get("action") == "INSERT_OR_UPDATE"
        assert envelope.findtext("action") == "INSERT_OR_UPDATE"
        assert envelope.findtext("name") == update_name == update.field("sys_update_name")
        assert envelope.findtext("remote_update_set") == remote.findtext("sys_id")
        assert envelope.findtext("target_name") == update.field("name")
        assert record.get("action") == "INSERT_OR_UPDATE"
        assert update.field("sys_class_name") == update.table
        assert update.field("sys_scope") == "global"
        assert update.field("sys_created_by") == "admin"
        sys_ids += [envelope.findtext("sys_id") or "", update.field("sys_id")]
    assert all(SYS_ID.fullmatch(sys_id) for sys_id in sys_ids), sys_ids
    assert len(set(sys_ids)) == len(sys_ids)


def test_the_script_include(updates: list[Update]) -> None:
    """``MimConnectorPush``: global, not client callable, active, its script the one in src/."""
    (script_include,) = of_table(updates, "sys_script_include")
    assert script_include.field("name") == "MimConnectorPush"
    assert script_include.field("api_name") == "global.MimConnectorPush"
    assert script_include.field("client_callable") == "false"
    assert script_include.field("active") == "true"
    assert script_include.envelope.findtext("type") == "Script Include"
    assert script_include.field("script") == source(SCRIPT_INCLUDE)


@pytest.mark.parametrize(
    ("name", "table", "on_update", "condition", "script"),
    [
        ("MIM connector push: incident", "incident", "true", "", INCIDENT_RULE),
        ("MIM connector push: journal", "sys_journal_field", "false", JOURNAL_CONDITION, JOURNAL_RULE),
    ],
)
def test_the_business_rules(
    updates: list[Update], name: str, table: str, on_update: str, condition: str, script: str
) -> None:
    """Each rule: its table, async, on insert (and update for the incident), its condition, its script."""
    rule = named(updates, "sys_script", name)
    expected = {
        "collection": table,
        "when": "async",
        "action_insert": "true",
        "action_update": on_update,
        "action_delete": "false",
        "action_query": "false",
        "active": "true",
        "advanced": "true",
        "order": "1000",
        "condition": condition,
        "filter_condition": "",
    }
    assert {field: rule.field(field) for field in expected} == expected
    assert rule.envelope.findtext("table") == table
    assert rule.envelope.findtext("type") == "Business Rule"
    assert rule.field("script") == source(script)
    assert len(of_table(updates, "sys_script")) == 2


def test_the_system_properties(updates: list[Update]) -> None:
    """The four properties, their types (the secret a password2) and their defaults."""
    properties = {
        update.field("name"): (update.field("type"), update.field("value"))
        for update in of_table(updates, "sys_properties")
    }
    assert properties == PROPERTIES
    for update in of_table(updates, "sys_properties"):
        assert update.field("is_private") == "false", "a private property is not imported"
        assert update.envelope.findtext("type") == "System Property"


def test_the_scripts_are_the_files_of_src(updates: list[Update]) -> None:
    """The export holds exactly the scripts of ``servicenow/src/``, character for character."""
    in_export = sorted(
        update.field("script") for update in updates if update.record.find("script") is not None
    )
    in_src = sorted(path.read_text(encoding="utf-8") for path in SRC.glob("*.js"))
    assert {path.name for path in SRC.glob("*.js")} == {SCRIPT_INCLUDE, INCIDENT_RULE, JOURNAL_RULE}
    assert in_export == in_src, "servicenow/src/ changed: run python servicenow/build_update_set.py"


# --- the scripts against docs/push.md ---------------------------------------------------------------


def test_the_script_sends_what_docs_push_md_states() -> None:
    """Header names, the ``sha256=`` prefix, the property names and the body keys are the documented ones."""
    doc = PUSH_DOC.read_text(encoding="utf-8")
    script = source(SCRIPT_INCLUDE)
    documented_headers = set(re.findall(r"`(X-MIM-[A-Za-z-]+): ", doc))
    assert documented_headers == {"X-MIM-Delivery", "X-MIM-Signature"}
    assert "`X-MIM-Signature: sha256=<base64 HMAC-SHA256(secret, raw body)>`" in doc
    assert "`Content-Type: application/json`" in doc
    headers = set(re.findall(r"setRequestHeader\('([^']+)'", script))
    assert headers == documented_headers | {"Content-Type"}
    assert f"SIGNATURE_PREFIX = '{PREFIX}'" in script
    assert "setRequestHeader('X-MIM-Signature', MimConnectorPush.SIGNATURE_PREFIX + mac)" in script
    assert "generateMac(config.secret, 'HmacSHA256', body)" in script
    assert "setHttpMethod('post')" in script
    assert "setHttpTimeout(" in script
    assert "X-MIM-Delivery', delivery)" in script
    assert "gs.generateGUID()" in script

    documented_properties = set(re.findall(r"`(x_mim_connector\.push\.\w+)`", doc))
    used_properties = set(re.findall(r"'(x_mim_connector\.push\.\w+)'", script))
    assert documented_properties
    assert documented_properties <= used_properties == set(PROPERTIES)

    incident_example, journal_example = doc_examples()
    assert object_keys(function_body(script, "buildIncidentBody")) == list(incident_example)
    assert object_keys(function_body(script, "buildJournalBody")) == list(journal_example)
    documented_fields = set(incident_example["fields"]) - {"…"}
    assert documented_fields <= set(DEFAULT_FIELDS.split(","))


def test_the_receiver_expects_these_headers() -> None:
    """The connector's receiver reads the same two headers, with base64 MACs."""
    from connector.runtime.push import servicenow_source

    receiver = servicenow_source(cast(Any, None))
    script = source(SCRIPT_INCLUDE)
    assert (receiver.signature_header, receiver.delivery_header, receiver.encoding) == (
        "X-MIM-Signature",
        "X-MIM-Delivery",
        "base64",
    )
    assert f"'{receiver.signature_header}'" in script
    assert f"'{receiver.delivery_header}'" in script


def test_no_journal_text_is_read() -> None:
    """Neither the journal rule nor the script include reads a journal entry's ``value`` (its text)."""
    for name in (JOURNAL_RULE, SCRIPT_INCLUDE):
        code = without_comments(source(name))
        assert not READS_VALUE.search(code), f"{name} reads a field called value"
    journal_body = function_body(source(SCRIPT_INCLUDE), "buildJournalBody")
    assert "value" not in object_keys(journal_body)
    assert not READS_VALUE.search(JOURNAL_CONDITION)


def test_the_scripts_are_es5() -> None:
    """Global-scope scripts run in ServiceNow's ES5 engine: no ES2015 syntax."""
    es2015 = re.compile(r"=>|`|\.\.\.|\b(let|const|class)\s")
    for path in sorted(SRC.glob("*.js")):
        found = es2015.search(without_comments(path.read_text(encoding="utf-8")))
        assert found is None, f"{path.name}: {found.group(0) if found else ''!r}"


# --- with node ------------------------------------------------------------------------------------

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

SECRET = "s3cret-ü"
URL = "https://proxy.example/push/servicenow"
ENABLED = {
    "x_mim_connector.push.enabled": "true",
    "x_mim_connector.push.url": URL,
    "x_mim_connector.push.secret": base64.b64encode(SECRET.encode()).decode(),
    "x_mim_connector.push.fields": " number, priority ,comments,short_description,no_such_field,priority,",
}
INCIDENT = {
    "sys_id": "a" * 32,
    "number": "INC0010001",
    "sys_mod_count": "7",
    "sys_updated_on": "2026-12-08 01:51:23",
    "priority": "1",
    "short_description": 'Zürich ${x} "quoted" € 🚨',
    "comments": "journal text",
}
JOURNAL = {
    "sys_id": "b" * 32,
    "element_id": "a" * 32,
    "element": "work_notes",
    "name": "incident",
    "sys_created_on": "2026-12-08 01:51:24",
    "value": "the text of the work note",
}

# Runs the script include once per case, in a fresh context with stand-ins for gs,
# GlideCertificateEncryption (HMAC-SHA256 keyed with the base64-decoded key, answering base64, as
# documented) and sn_ws.RESTMessageV2 (records what would be sent, answers ``status``).
HARNESS = r"""
const crypto = require('crypto');
const fs = require('fs');
const vm = require('vm');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const script = fs.readFileSync(input.script, 'utf8');
function Record(values, types) { this.values = values; this.types = types || {}; }
Record.prototype.getValue = function (name) { return name in this.values ? this.values[name] : null; };
Record.prototype.isValidField = function (name) { return name in this.values; };
Record.prototype.getElement = function (name) {
  const type = this.types[name] || 'string';
  return {getED: () => ({getInternalType: () => type})};
};
const results = input.cases.map((c) => {
  const sent = [];
  const warnings = [];
  const context = {
    JSON,
    Class: {create: () => function () { this.initialize.apply(this, arguments); }},
    gs: {
      getProperty: (name, fallback) => (name in c.properties ? c.properties[name] : fallback),
      warn: (message) => warnings.push(String(message)),
      generateGUID: () => crypto.randomBytes(16).toString('hex'),
    },
    GlideCertificateEncryption: function () {
      this.generateMac = (key, algorithm, data) => {
        if (algorithm !== 'HmacSHA256') throw new Error('unexpected algorithm ' + algorithm);
        return crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(data, 'utf8').digest('base64');
      };
    },
    sn_ws: {
      RESTMessageV2: function () {
        const request = {headers: {}};
        this.setEndpoint = (url) => { request.url = url; };
        this.setHttpMethod = (method) => { request.method = method; };
        this.setHttpTimeout = (ms) => { request.timeout = ms; };
        this.setRequestHeader = (name, value) => { request.headers[name] = value; };
        this.setRequestBody = (body) => { request.body = body; };
        this.execute = () => {
          if (c.status === null) throw new Error('connection refused');
          sent.push(request);
          return {
            getStatusCode: () => c.status,
            haveError: () => c.status >= 400,
            getErrorMessage: () => 'Method failed: (/push/servicenow) with code: ' + c.status,
          };
        };
      },
    },
  };
  vm.createContext(context);
  vm.runInContext(script, context);
  context.record = new Record(c.record, c.types);
  const call = c.call === 'incident'
    ? 'new MimConnectorPush().notifyIncident(record, ' + JSON.stringify(c.operation) + ')'
    : 'new MimConnectorPush().notifyJournal(record)';
  const returned = vm.runInContext(call, context);
  return {returned, sent, warnings};
});
process.stdout.write(JSON.stringify(results));
"""


def case(
    call: str,
    record: dict[str, str],
    *,
    properties: dict[str, str] = ENABLED,
    operation: str = "update",
    status: int | None = 202,
) -> dict[str, Any]:
    """One call of the script include: ``status`` is the connector's answer, None a refused connection."""
    types = {"comments": "journal_input"} if call == "incident" else {}
    return {
        "call": call,
        "record": record,
        "types": types,
        "properties": properties,
        "operation": operation,
        "status": status,
    }


def without(name: str) -> dict[str, str]:
    """:data:`ENABLED` without the property ``name``."""
    return {key: value for key, value in ENABLED.items() if key != name}


CASES = {
    "insert": case("incident", INCIDENT, operation="insert"),
    "update": case("incident", INCIDENT),
    "journal": case("journal", JOURNAL),
    "enabled-unset": case("incident", INCIDENT, properties=without("x_mim_connector.push.enabled")),
    "disabled": case("incident", INCIDENT, properties={**ENABLED, "x_mim_connector.push.enabled": "false"}),
    "no-url": case("incident", INCIDENT, properties={**ENABLED, "x_mim_connector.push.url": " "}),
    "no-secret": case("incident", INCIDENT, properties=without("x_mim_connector.push.secret")),
    "delete": case("incident", INCIDENT, operation="delete"),
    "refused": case("incident", INCIDENT, status=401),
    "unreachable": case("incident", INCIDENT, status=None),
}
"""Every call the tests below look at, run in one node process."""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each case's outcome: what ``notify*`` returned, the requests sent and the warnings logged."""
    harness = tmp_path_factory.mktemp("harness") / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    request = {"script": str(SRC / SCRIPT_INCLUDE), "cases": list(CASES.values())}
    completed = subprocess.run(
        [cast(str, NODE), str(harness)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return dict(zip(CASES, json.loads(completed.stdout), strict=True))


@needs_node
def test_node_parses_each_script(tmp_path: Path) -> None:
    """``node --check`` accepts each script, wrapped in a function as ServiceNow evaluates it."""
    for path in sorted(SRC.glob("*.js")):
        wrapped = tmp_path / path.name
        wrapped.write_text(f"(function () {{\n{path.read_text(encoding='utf-8')}\n}});\n", encoding="utf-8")
        completed = subprocess.run(
            [cast(str, NODE), "--check", str(wrapped)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, f"{path.name}: {completed.stderr}"


@needs_node
@pytest.mark.parametrize("event", ["insert", "update"])
def test_an_incident_notification_is_signed_as_the_connector_checks(
    outcomes: dict[str, dict[str, Any]], event: str
) -> None:
    """The incident body is docs/push.md's, plain ASCII, and its signature passes the connector's check.

    Only the listed fields that exist and are not journals are sent, once each, in the listed
    order, as stored strings; non-ASCII characters and ``$`` travel as JSON escapes.
    """
    outcome = outcomes[event]
    assert outcome["returned"] is True
    assert outcome["warnings"] == []
    (request,) = outcome["sent"]
    assert (request["url"], request["method"]) == (URL, "post")
    assert 0 < request["timeout"] <= 10_000
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-MIM-Delivery"])
    body: str = request["body"]
    assert body.isascii()
    assert "${" not in body
    assert check(SECRET, body.encode("ascii"), headers["X-MIM-Signature"], "base64") is None
    assert check("another secret", body.encode("ascii"), headers["X-MIM-Signature"], "base64") == "mismatch"
    sent = json.loads(body)
    assert sent == {
        "table": "incident",
        "event": event,
        "sys_id": INCIDENT["sys_id"],
        "number": "INC0010001",
        "sys_mod_count": 7,
        "sys_updated_on": "2026-12-08 01:51:23",
        "fields": {
            "number": "INC0010001",
            "priority": "1",
            "short_description": INCIDENT["short_description"],
        },
    }
    assert list(sent) == list(doc_examples()[0])
    assert list(sent["fields"]) == ["number", "priority", "short_description"]


@needs_node
def test_each_notification_has_its_own_delivery(outcomes: dict[str, dict[str, Any]]) -> None:
    """``X-MIM-Delivery`` is a new GUID per notification (the connector drops repeats of one)."""
    deliveries = {
        outcomes[name]["sent"][0]["headers"]["X-MIM-Delivery"] for name in ("insert", "update", "journal")
    }
    assert len(deliveries) == 3


@needs_node
def test_a_journal_notification_names_the_entry_and_never_carries_its_text(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    """The journal body has exactly the keys docs/push.md shows; the entry's text is not in it."""
    outcome = outcomes["journal"]
    assert outcome["returned"] is True
    (request,) = outcome["sent"]
    body: str = request["body"]
    assert check(SECRET, body.encode("ascii"), request["headers"]["X-MIM-Signature"], "base64") is None
    sent = json.loads(body)
    assert list(sent) == list(doc_examples()[1])
    assert sent == {
        "table": "sys_journal_field",
        "event": "insert",
        "sys_id": JOURNAL["sys_id"],
        "element_id": JOURNAL["element_id"],
        "element": "work_notes",
        "sys_created_on": "2026-12-08 01:51:24",
    }
    assert JOURNAL["value"] not in body


@needs_node
@pytest.mark.parametrize("name", ["enabled-unset", "disabled", "no-url", "no-secret", "delete"])
def test_nothing_is_sent_when_push_is_off_or_not_configured(
    outcomes: dict[str, dict[str, Any]], name: str
) -> None:
    """Off (``enabled`` not "true"), without a URL or a secret, or for another operation: no request."""
    outcome = outcomes[name]
    assert outcome["returned"] is False
    assert outcome["sent"] == []
    for warning in outcome["warnings"]:
        assert ENABLED["x_mim_connector.push.secret"] not in warning


@needs_node
@pytest.mark.parametrize(("name", "reason"), [("refused", "401"), ("unreachable", "connection refused")])
def test_failures_are_logged_without_the_body_or_the_secret(
    outcomes: dict[str, dict[str, Any]], name: str, reason: str
) -> None:
    """A refusal or an unreachable connector is one warning naming the delivery and why, nothing private."""
    outcome = outcomes[name]
    assert outcome["returned"] is False
    (warning,) = outcome["warnings"]
    assert warning.startswith("MimConnectorPush: delivery ")
    assert reason in warning
    for private in (SECRET, ENABLED["x_mim_connector.push.secret"], "INC0010001", "Z\\u00fcrich"):
        assert private not in warning
