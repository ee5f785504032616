"""Table-driven: each admin mistake, applied to a valid tree, yields exactly these messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.config import load_config
from connector.core.errors import ConfigError

CONNECTOR = "config/connector.yaml"
RULES = "mappings/rules.yaml"
ACME = "mappings/suppliers/acme.yaml"
GLOBEX = "mappings/suppliers/globex.yaml"


@dataclass(frozen=True)
class Mistake:
    file: str
    old: str
    new: str
    expected: tuple[str, ...]


MISTAKES: dict[str, Mistake] = {
    "embedded-sandbox-needs-local-urls": Mistake(
        CONNECTOR,
        "store:\n",
        "sandbox:\n  embedded: true\nstore:\n",
        (
            "config/connector.yaml:4:17: servicenow.instance_url: with sandbox.embedded this must be http://HOST:PORT",
            "config/connector.yaml:12:12: suppliers.acme.jira.url: with sandbox.embedded this must be http://HOST:PORT/SITE",
            "config/connector.yaml:20:12: suppliers.globex.jira.url: with sandbox.embedded this must be http://HOST:PORT/SITE",
            "config/connector.yaml:24:16: suppliers.globex.jira.auth.token: with sandbox.embedded use a ${VAR} reference: the sandbox generates the value",
        ),
    ),
    "lease-renewed-less-often-than-twice-per-ttl": Mistake(
        CONNECTOR,
        "  url: sqlite:///state.db\n",
        "  url: sqlite:///state.db\n  lease:\n    ttl: 30s\n    renew_every: 20s\n",
        (
            "config/connector.yaml:29:18: store.lease.renew_every: must be at most half of store.lease.ttl: "
            "a renewal that is late once must not lose the lease",
        ),
    ),
    "lease-never-renewed": Mistake(
        CONNECTOR,
        "  url: sqlite:///state.db\n",
        "  url: sqlite:///state.db\n  lease:\n    renew_every: 0s\n",
        ("config/connector.yaml:28:18: store.lease.renew_every: must be longer than 0s",),
    ),
    "misspelt-key-gets-did-you-mean": Mistake(
        CONNECTOR,
        "  instance_url:",
        "  instanse_url:",
        (
            "config/connector.yaml:4:3: servicenow.instance_url: required key is missing",
            "config/connector.yaml:4:3: servicenow.instanse_url: unknown key (did you mean 'instance_url'?)",
        ),
    ),
    "bad-enum-lists-known-values": Mistake(
        CONNECTOR,
        "deployment: cloud",
        "deployment: clod",
        (
            "config/connector.yaml:13:19: suppliers.acme.jira.deployment: 'clod' is not one of: cloud, datacenter (did you mean 'cloud'?)",
        ),
    ),
    "inline-secret-rejected-unechoed": Mistake(
        CONNECTOR,
        "password: ${TEST_SN_PASSWORD}",
        "password: hunter2hunter2",
        (
            "config/connector.yaml:8:15: servicenow.auth.password: secrets must be given by reference (${ENV_VAR} or file:PATH), not inline",
        ),
    ),
    "unknown-auth-type": Mistake(
        CONNECTOR,
        "type: basic",
        "type: bsic",
        (
            "config/connector.yaml:6:11: servicenow.auth.type: 'bsic' is not one of: basic, oauth2_password (did you mean 'basic'?)",
        ),
    ),
    "unparseable-duration": Mistake(
        CONNECTOR,
        "servicenow_interval: 30s",
        "servicenow_interval: 5 minutes",
        (
            "config/connector.yaml:28:24: polling.servicenow_interval: '5 minutes' is not a duration (use e.g. 30s, 5m, 1h30m, 2d)",
        ),
    ),
    "pat-auth-on-jira-cloud": Mistake(
        CONNECTOR,
        "deployment: datacenter",
        "deployment: cloud",
        (
            "config/connector.yaml:23:15: suppliers.globex.jira.auth.type: Jira Cloud uses api_token; 'pat' is for datacenter",
        ),
    ),
    "yaml-syntax-error-has-line": Mistake(
        RULES,
        "    description: P1 on a critical CI\n",
        "    description: P1 on a critical CI\n   when: x\n",
        (
            "mappings/rules.yaml:7:4: YAML syntax error: expected <block end>, but found '<block mapping start>' (while parsing a block collection); check the indentation",
        ),
    ),
    "duplicate-yaml-key": Mistake(
        ACME,
        "issue_type: Incident\n",
        "issue_type: Incident\n  issue_type: Bug\n",
        ("mappings/suppliers/acme.yaml:7:3: jira.issue_type: duplicate key (first defined at line 6)",),
    ),
    "misspelt-dot-walked-field": Mistake(
        RULES,
        "cmdb_ci.business_criticality",
        "cmdb_ci.busines_criticality",
        (
            "mappings/rules.yaml:11:18: rules[0].when.all[1].field: 'busines_criticality' is not a field of cmdb_ci (in 'cmdb_ci.busines_criticality') (did you mean 'business_criticality'?)",
        ),
    ),
    "rule-engages-unknown-supplier": Mistake(
        RULES,
        "engage: [globex]",
        "engage: [globx]",
        (
            "mappings/rules.yaml:24:16: rules[1].then.engage[0]: 'globx' is not a supplier (known: acme, globex) (did you mean 'globex'?)",
        ),
    ),
    "duplicate-rule-name": Mistake(
        RULES,
        "name: network-outage",
        "name: critical-ci-p1",
        ("mappings/rules.yaml:17:11: rules[1].name: duplicate rule name (first used at line 5)",),
    ),
    "status-not-in-supplier-workflow": Mistake(
        ACME,
        "    Closed: Closed\n",
        "    Closed: 'Closed '\n",
        (
            "mappings/suppliers/acme.yaml:31:13: outbound.status_map.Closed: 'Closed ' is not a status of acme (known: Open, In Progress, Resolved, Closed) (did you mean 'Closed'?)",
        ),
    ),
    "work-notes-in-outbound-template": Mistake(
        ACME,
        'description: "{description}"',
        'description: "{description}\\n{work_notes}"',
        (
            "mappings/suppliers/acme.yaml:24:16: outbound.description: placeholder {work_notes}: work_notes is internal and never leaves ServiceNow",
        ),
    ),
    "field-not-in-redaction-allow-list": Mistake(
        ACME,
        'summary: "[{number}] {short_description}"',
        'summary: "[{number}] {caller_id.name}"',
        (
            "mappings/suppliers/acme.yaml:23:12: outbound.summary: placeholder {caller_id.name}: 'caller_id.name' is not in outbound.redaction.allow_fields, so it may not leave ServiceNow",
        ),
    ),
    "supplier-without-mapping-file": Mistake(
        CONNECTOR,
        "  globex:\n",
        "  globexx:\n",
        (
            "config/connector.yaml:18:3: suppliers.globexx: no mapping file mappings/suppliers/globexx.yaml",
            "mappings/rules.yaml:24:16: rules[1].then.engage[0]: 'globex' is not a supplier (known: acme, globexx) (did you mean 'globexx'?)",
            "mappings/suppliers/globex.yaml:2:11: supplier: 'globex' is not a supplier in config/connector.yaml (known: acme, globexx) (did you mean 'globexx'?)",
        ),
    ),
    "rule-sets-computed-priority": Mistake(
        RULES,
        'business_impact: "P1 on {cmdb_ci.name}"',
        'priority: "1"',
        (
            "mappings/rules.yaml:16:9: rules[0].then.set.priority: priority is computed from impact and urgency; set those instead",
        ),
    ),
    "impossible-choice-value": Mistake(
        RULES,
        "equals: 1\n",
        "equals: P1\n",
        (
            "mappings/rules.yaml:10:19: rules[0].when.all[0].equals: 'P1' is not a value of priority (known: 1, 2, 3, 4, 5) (did you mean '1'?)",
        ),
    ),
    "condition-with-two-operators": Mistake(
        RULES,
        "      equals: network\n",
        "      equals: network\n      in: [network]\n",
        (
            "mappings/rules.yaml:20:7: rules[1].when: a field condition needs exactly one operator of: equals, not_equals, in, not_in, gt, gte, lt, lte, contains, regex, empty (found: equals, in)",
        ),
    ),
    "misspelt-condition-key": Mistake(
        RULES,
        "        - field: priority",
        "        - feild: priority",
        (
            "mappings/rules.yaml:9:11: rules[0].when.all[0]: not a condition: expected one of the keys field, all, any, not, open_for, unassigned_for, cluster (did you mean 'field'?)",
        ),
    ),
    "resolving-state-without-close-code": Mistake(
        ACME,
        "      close_code: Solution provided\n",
        "",
        (
            "mappings/suppliers/acme.yaml:37:7: inbound.status_map.Resolved: resolving an incident needs close_code (and close_notes)",
        ),
    ),
    "transition-to-undeclared-status": Mistake(
        GLOBEX,
        "to: Restored}",
        "to: Resolved}",
        (
            "mappings/suppliers/globex.yaml:13:42: jira.workflow.transitions[0].to: 'Resolved' is not a status of globex (known: New, Restored) (did you mean 'Restored'?)",
            "mappings/suppliers/globex.yaml:23:15: outbound.status_map.Resolved: no transition path leads from 'New' to 'Restored' without passing a terminal status",
        ),
    ),
    "field-owned-by-both-sides": Mistake(
        ACME,
        'u_supplier_reference: "{key}"',
        'u_supplier_reference: "{customfield_10050}"',
        (
            "mappings/suppliers/acme.yaml:41:27: inbound.fields.u_supplier_reference: customfield_10050 is written by ServiceNow (line 27), so the supplier cannot own it too",
        ),
    ),
    "inline-password-in-store-url": Mistake(
        CONNECTOR,
        "url: sqlite:///state.db",
        "url: postgresql://mim:s3cret@db/mim",
        ("config/connector.yaml:26:8: store.url: the URL carries an inline password; use ${ENV_VAR} for it",),
    ),
    "mapping-name-differs-from-file": Mistake(
        GLOBEX,
        "supplier: globex",
        "supplier: acme",
        ("mappings/suppliers/globex.yaml:2:11: supplier: 'acme' does not match the file name (globex.yaml)",),
    ),
    "wrong-type": Mistake(
        CONNECTOR,
        "page_size: 100",
        "page_size: many",
        ("config/connector.yaml:29:14: polling.page_size: expected an integer, got 'many'",),
    ),
    "required-key-missing": Mistake(
        GLOBEX,
        '  summary: "{number}: {short_description}"\n',
        "",
        ("mappings/suppliers/globex.yaml:20:3: outbound.summary: required key is missing",),
    ),
    "unknown-incident-state": Mistake(
        ACME,
        "      state: Resolved",
        "      state: Solved",
        (
            "mappings/suppliers/acme.yaml:37:14: inbound.status_map.Resolved.state: 'Solved' is not an incident state (known: New (1), In Progress (2), On Hold (3), Resolved (6), Closed (7), Canceled (8)) (did you mean 'Resolved'?)",
        ),
    ),
    "malformed-template": Mistake(
        ACME,
        '"Fixed in {key}"',
        '"Fixed in {key"',
        (
            "mappings/suppliers/acme.yaml:39:20: inbound.status_map.Resolved.close_notes: malformed template: expected '}' before end of string",
        ),
    ),
    "unclosed-optional-segment": Mistake(
        ACME,
        '"Fixed in {key}"',
        '"Fixed[[ in {key}"',
        (
            "mappings/suppliers/acme.yaml:39:20: inbound.status_map.Resolved.close_notes: malformed template: optional segment [[ … ]] not closed",
        ),
    ),
    "status-unreachable-in-workflow": Mistake(
        ACME,
        "      - {name: Close, from: [Resolved], to: Closed}\n",
        "",
        (
            "mappings/suppliers/acme.yaml:30:13: outbound.status_map.Closed: no transition path leads from 'Open' to 'Closed' without passing a terminal status",
        ),
    ),
    "shared-field-not-allowed-out-and-owned-twice": Mistake(
        ACME,
        "inbound:\n",
        "shared:\n  - {servicenow: u_supplier_reference, jira: customfield_10050}\n"
        "  - {servicenow: state, jira: customfield_10099}\ninbound:\n",
        (
            "mappings/suppliers/acme.yaml:35:18: shared[0].servicenow: 'u_supplier_reference' is not in outbound.redaction.allow_fields, so it may not leave ServiceNow",
            "mappings/suppliers/acme.yaml:35:18: shared[0].servicenow: u_supplier_reference is already written by inbound.fields",
            "mappings/suppliers/acme.yaml:35:46: shared[0].jira: customfield_10050 is already written by outbound",
            "mappings/suppliers/acme.yaml:36:18: shared[1].servicenow: use inbound.status_map to let the supplier change the state",
        ),
    ),
    "mim-bridge-source-must-be-allowed-out": Mistake(
        ACME,
        "  redaction:\n",
        "  mim: {bridge_field: customfield_10080, bridge_source: u_bridge_url}\n  redaction:\n",
        (
            "mappings/suppliers/acme.yaml:32:57: outbound.mim.bridge_source: 'u_bridge_url' is not in outbound.redaction.allow_fields, so it may not leave ServiceNow",
        ),
    ),
    "root-cause-problem-needs-a-source": Mistake(
        ACME,
        "inbound:\n",
        "problem: {create_problem: on_root_cause}\ninbound:\n",
        (
            "mappings/suppliers/acme.yaml:34:27: problem.create_problem: on_root_cause needs problem.root_cause_field or problem.root_cause_link",
        ),
    ),
    "list-where-mapping-expected": Mistake(
        RULES,
        "settings:\n  max_proposals_per_hour: 5\n",
        "settings: [5]\n",
        ("mappings/rules.yaml:2:11: settings: expected a mapping, got a list",),
    ),
}


def apply(root: Path, mistake: Mistake) -> None:
    path = root / mistake.file
    text = path.read_text()
    assert mistake.old in text, f"fixture text not found in {mistake.file}: {mistake.old!r}"
    path.write_text(text.replace(mistake.old, mistake.new, 1))


def messages(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(Path(CONNECTOR))
    return [str(problem) for problem in caught.value.problems if problem.severity == "error"]


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistake_is_reported_exactly(config_tree: Path, name: str) -> None:
    mistake = MISTAKES[name]
    apply(config_tree, mistake)
    assert messages(config_tree) == list(mistake.expected)
