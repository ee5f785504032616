"""The people of a scenario: a service desk in ServiceNow and an engineer at each supplier's Jira.

They act through the same APIs as real people (the Table API as ``admin``, python-jira as Jane
Doe), on tagged sessions that the nemesis never faults, and record what they did in the
:class:`~tests.scenarios.model.Ledger`. Every action returns ``False`` when it has nothing to act
on (the scheduler then picks another). A *contested* change (incident state, supplier status,
the shared workaround) is only made once :meth:`People.settled` sees both sides agree on the
story so far, as a person would wait to see their last change arrive before making the next.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from jira import JIRA

from connector.config.supplier_file import SupplierMapping
from tests.scenarios import expected
from tests.scenarios.model import DONE_STATES, OPEN_STATES, Ledger, Story, SupplierComment
from tests.scenarios.stage import JIRA_USER, SN_USER, Stage

KINDS = ("acme", "initech", "acme+initech", "globex", "payments-p1", "unrouted")
STATE_MOVES = {"1": ("2", "3", "6", "8"), "2": ("3", "6", "8"), "3": ("2", "6", "8"), "6": ("2", "7")}
ACME = "acme"


class People:
    """Everyone acting on the world; ``rng`` makes their choices repeatable."""

    def __init__(self, stage: Stage, ledger: Ledger, rng: random.Random) -> None:
        self.world = stage.world
        self.ledger = ledger
        self.rng = rng
        self.mappings: Mapping[str, SupplierMapping] = dict(self.world.loaded.suppliers)
        self.instance_url = self.world.sandbox.servicenow_url
        self.desk = stage.service_desk()
        self.engineers: dict[str, JIRA] = {site: stage.engineer(site) for site in self.mappings}
        self.fields = expected.required_fields(self.mappings.values())
        self.connector_names = frozenset(
            {JIRA_USER}
            | {
                str(getattr(site.jira.auth, "email", ""))
                for site in self.world.loaded.connector.suppliers.values()
            }
        )
        """How Jira names the connector's user: the e-mail on Cloud, the user name on Data Center."""
        self._unread: dict[str, int] = {}
        """Incidents whose last state change the connector has not polled yet: journal position then."""
        self.acme_group = self._lookup("sys_user_group", "name=ACME Hosting L2")
        self.payments = self._lookup("cmdb_ci_service", "name=Payments")
        acme = self.mappings[ACME]
        eta = acme.inbound.fields["u_supplier_eta"].strip("{}")
        self.acme_fields = {
            "workaround": acme.shared[0].jira,
            "eta": eta,
            "root_cause": str(acme.problem.root_cause_field),
        }

    # --- reading, as a person sees it -------------------------------------------------------------

    def record(self, sys_id: str) -> dict[str, str]:
        """The incident with every field the oracle reads (dot-walks included)."""
        params = {"sysparm_fields": ",".join(self.fields), "sysparm_exclude_reference_link": "true"}
        answer = self.desk.get(self._table("incident", sys_id), params=params, timeout=10)
        answer.raise_for_status()
        return {k: str(v or "") for k, v in answer.json()["result"].items()}

    def key(self, story: Story, supplier: str) -> str | None:
        """The issue of ``story`` at ``supplier`` as search shows it (it may lag), remembered once seen."""
        if supplier not in story.keys:
            project = self.mappings[supplier].jira.project
            jql = (
                f'project = {project} AND issue.property[mim-connector].incident_sys_id = "{story.sys_id}" '
                "ORDER BY key ASC"
            )
            found = self.engineers[supplier].search_issues(jql, maxResults=5, fields="status")
            if found:
                story.keys[supplier] = found[0].key
        return story.keys.get(supplier)

    def issue(self, story: Story, supplier: str) -> Any | None:
        """The live issue (a direct read, never behind the search index), or ``None`` when unseen."""
        key = self.key(story, supplier)
        if key is None:
            return None
        mapping = self.mappings[supplier]
        wanted = ["status", *(shared.jira for shared in mapping.shared)]
        return self.engineers[supplier].issue(key, fields=",".join(wanted))

    def settled(self, story: Story) -> bool:
        """Whether both sides show the story's state, statuses and shared values right now."""
        record = self.record(story.sys_id)
        if record["state"] != story.state or record.get("u_workaround", "") != story.workaround:
            return False
        for supplier, status in story.statuses.items():
            issue = self.issue(story, supplier)
            if issue is None or issue.fields.status.name != status:
                return False
            for shared in self.mappings[supplier].shared:
                value = expected.norm(getattr(issue.fields, shared.jira, None))
                if value != expected.redact(self.mappings[supplier], story.workaround).strip():
                    return False
        return True

    # --- the service desk ----------------------------------------------------------------------------

    def open_incident(self, kind: str | None = None) -> Story:
        """Open an incident of ``kind`` (see :data:`KINDS`), maybe with a public comment and a work note."""
        kind = kind or self.rng.choice(KINDS)
        token = self.ledger.token("N")
        payload: dict[str, str] = {
            "short_description": f"Incident {token}: {self.rng.choice(SYMPTOMS)}",
            "description": self._description(token),
            "impact": self.rng.choice("23"),
            "urgency": self.rng.choice("123"),
        }
        if "acme" in kind:
            payload["assignment_group"] = self.acme_group
        if "initech" in kind or kind == "payments-p1":
            payload["business_service"] = self.payments
        if kind == "payments-p1":
            payload |= {"impact": "1", "urgency": "1"}
        if kind == "globex":
            payload |= {"category": "network", "major_incident_state": "accepted"}
        comment = self._public_text() if self.rng.random() < 0.5 else None
        if comment is not None:
            payload["comments"] = comment[1]
        if self.rng.random() < 0.3:
            payload["work_notes"] = self._canary_text()
        created = self._post("incident", payload)
        story = Story(created["sys_id"], created["number"])
        self.ledger.stories[story.sys_id] = story
        if comment is not None:
            self.ledger.public_comments[comment[0]] = story.sys_id
        self._observe_routing(story)
        self.ledger.actions[f"open:{kind}"] += 1
        return story

    def comment(self) -> bool:
        """A public comment (a customer update) on an open incident."""
        story = self._pick_story(open_only=False)
        if story is None or story.state in DONE_STATES:
            return False
        token, text = self._public_text()
        self._patch(story.sys_id, comments=text)
        self.ledger.public_comments[token] = story.sys_id
        self.ledger.actions["sn:comment"] += 1
        return True

    def work_note(self) -> bool:
        """An internal work note carrying a canary (it must never leave ServiceNow)."""
        story = self._pick_story(open_only=False)
        if story is None:
            return False
        self._patch(story.sys_id, work_notes=self._canary_text())
        self.ledger.actions["sn:work_note"] += 1
        return True

    def edit(self) -> bool:
        """Change the fields ServiceNow owns: summary, description, impact/urgency or the bridge."""
        story = self._pick_story(open_only=True)
        if story is None:
            return False
        token = self.ledger.token("E")
        choice = self.rng.choice(("summary", "description", "priority", "bridge"))
        fields = {
            "summary": {"short_description": f"Incident {token}: {self.rng.choice(SYMPTOMS)}"},
            "description": {"description": self._description(token)},
            "priority": {"impact": self.rng.choice("123"), "urgency": self.rng.choice("123")},
            "bridge": {"u_bridge_url": f"https://meet.example.com/{token} (host: jane.roe@corp.example.com)"},
        }[choice]
        self._patch(story.sys_id, **fields)
        self.ledger.actions[f"sn:edit:{choice}"] += 1
        return True

    def set_state(self) -> bool:
        """Move the incident along the state model, once the last status change has arrived."""
        story = self._pick_story(open_only=False, contested=True)
        if story is None or story.state in DONE_STATES or not self._polled_since_last_state(story):
            return False
        state = self.rng.choice(STATE_MOVES[story.state])
        fields = {"state": state}
        if state == "3":
            fields["hold_reason"] = "1"
        if state in ("6", "7"):
            fields |= {"close_code": "Solution provided", "close_notes": self._canary_text()}
        self._patch(story.sys_id, **fields)
        self._unread[story.sys_id] = self.world.sandbox.servicenow.journal.last_seq
        story.set_state(state, self.mappings)
        self.ledger.actions[f"sn:state:{expected.STATE_LABELS[state]}"] += 1
        return True

    def set_workaround(self) -> bool:
        """Change the shared workaround on the ServiceNow side."""
        story = self._pick_story(open_only=True, contested=True)
        if story is None:
            return False
        story.workaround = f"Workaround {self.ledger.token('W')}"
        self._patch(story.sys_id, u_workaround=story.workaround)
        self.ledger.actions["sn:workaround"] += 1
        return True

    def promote(self) -> bool:
        """The MIM manager proposes, then accepts, an incident as a major incident."""
        story = self._pick_story(open_only=True)
        if story is None:
            return False
        current = self.record(story.sys_id).get("major_incident_state", "")
        following = {"": "proposed", "proposed": "accepted"}.get(current)
        if following is None:
            return False
        self._patch(story.sys_id, major_incident_state=following)
        self._observe_routing(story)
        self.ledger.actions[f"sn:mim:{following}"] += 1
        return True

    def assign(self) -> bool:
        """Involve another supplier: ACME's group, the Payments service, or the network category."""
        story = self._pick_story(open_only=True, contested=True)
        if story is None:
            return False
        missing = [s for s in ("acme", "initech", "globex") if s not in story.statuses]
        if not missing:
            return False
        supplier = self.rng.choice(missing)
        fields = {
            "acme": {"assignment_group": self.acme_group},
            "initech": {"business_service": self.payments},
            "globex": {"category": "network", "major_incident_state": "accepted"},
        }[supplier]
        self._patch(story.sys_id, **fields)
        self._observe_routing(story)
        self.ledger.actions[f"sn:assign:{supplier}"] += 1
        return True

    def link_problem(self) -> bool:
        """Open a problem for an incident that has none and link it."""
        story = self._pick_story(open_only=True)
        if story is None or story.problem_number or self.record(story.sys_id).get("problem_id"):
            return False
        problem = self._post("problem", {"short_description": f"Recurring {self.rng.choice(SYMPTOMS)}"})
        self._patch(story.sys_id, problem_id=problem["sys_id"])
        story.problem_number = problem["number"]
        self.ledger.actions["sn:problem"] += 1
        return True

    # --- supplier engineers --------------------------------------------------------------------------

    def supplier_comment(self) -> bool:
        """An engineer comments on an issue they can see."""
        pick = self._pick_issue()
        if pick is None:
            return False
        story, supplier, key = pick
        token = self.ledger.token("S")
        self.engineers[supplier].add_comment(key, f"Engineer note {token}: {self.rng.choice(FINDINGS)}")
        self.ledger.supplier_comments[token] = SupplierComment(supplier, key, story.sys_id)
        self.ledger.actions[f"{supplier}:comment"] += 1
        return True

    def supplier_move(self) -> bool:
        """An engineer moves their issue along the workflow (resolving it counts), once settled."""
        pick = self._pick_issue(contested=True)
        if pick is None:
            return False
        story, supplier, key = pick
        # A move before the connector has seen the desk's last state change is concurrent with it
        # for anyone reading both sides on clocks up to 90 s apart; the connector lets the state win.
        if story.state not in OPEN_STATES or not self._polled_since_last_state(story):
            return False
        mapping = self.mappings[supplier]
        options = expected.supplier_transitions(mapping, story.statuses[supplier])
        if not options:
            return False
        name, to, needs_resolution = self.rng.choice(options)
        agent = self.engineers[supplier]
        transition = next(t["id"] for t in agent.transitions(key) if t["name"] == name)
        fields = {"resolution": {"name": "Fixed"}} if needs_resolution else None
        agent.transition_issue(key, transition, fields=fields)
        self.ledger.moves[(key, to)] += 1
        story.move(supplier, to, self.mappings)
        self.ledger.actions[f"{supplier}:move"] += 1
        return True

    def supplier_field(self) -> bool:
        """ACME records an ETA or a root cause (fields the supplier owns), or edits the workaround."""
        pick = self._pick_issue(supplier=ACME)
        if pick is None:
            return False
        story, _supplier, key = pick
        token = self.ledger.token("F")
        choice = self.rng.choice(("eta", "root_cause", "workaround"))
        if choice == "workaround" and not self.settled(story):
            return False
        value = {
            "workaround": f"Workaround {token}",
            "eta": f"ETA {token}: within the hour",
            "root_cause": f"Root cause {token}: {self.rng.choice(FINDINGS)}",
        }[choice]
        field_id = self.acme_fields[choice]
        self.engineers[ACME].issue(key, fields="summary").update(fields={field_id: value})
        if choice == "workaround":
            story.workaround = value
        elif choice == "eta":
            story.eta = value
        else:
            story.root_cause = value
        self.ledger.actions[f"acme:{choice}"] += 1
        return True

    # --- helpers -----------------------------------------------------------------------------------

    def _pick_story(self, *, open_only: bool, contested: bool = False) -> Story | None:
        candidates = [s for s in self.ledger.stories.values() if not open_only or s.state in OPEN_STATES]
        self.rng.shuffle(candidates)
        for story in candidates[:4]:
            if not contested or self.settled(story):
                return story
        return None

    def _pick_issue(
        self, *, contested: bool = False, supplier: str | None = None
    ) -> tuple[Story, str, str] | None:
        candidates = [
            (story, name)
            for story in self.ledger.stories.values()
            for name in story.statuses
            if story.state not in DONE_STATES and (supplier is None or name == supplier)
        ]
        self.rng.shuffle(candidates)
        for story, name in candidates[:4]:
            key = self.key(story, name)
            if key is not None and (not contested or self.settled(story)):
                return story, name, key
        return None

    def _observe_routing(self, story: Story) -> None:
        record = self.record(story.sys_id)
        for supplier, mapping in self.mappings.items():
            if expected.routed(mapping, record):
                story.route(supplier, mapping)

    def _description(self, token: str) -> str:
        contact = self.rng.choice(("", " Contact ops.lead@corp.example.com or +49 30 1234 5678."))
        return f"Details {token}: {self.rng.choice(SYMPTOMS)}.{contact}"

    def _public_text(self) -> tuple[str, str]:
        token = self.ledger.token("C")
        return token, f"Customer update {token}: {self.rng.choice(FINDINGS)}"

    def _canary_text(self) -> str:
        canary = f"CANARY-{self.ledger.token('K')}"
        self.ledger.canaries.add(canary)
        return f"Internal only {canary}: penalty clause {self.rng.randint(1, 99)}"

    def _table(self, table: str, sys_id: str = "") -> str:
        return self.world.sandbox.table_url(table, sys_id)

    def _lookup(self, table: str, query: str) -> str:
        params = {"sysparm_query": query, "sysparm_fields": "sys_id", "sysparm_limit": "1"}
        rows = self.desk.get(self._table(table), params=params, timeout=10).json()["result"]
        return str(rows[0]["sys_id"])

    def _post(self, table: str, payload: Mapping[str, str]) -> dict[str, str]:
        answer = self.desk.post(
            self._table(table), json=payload, params={"sysparm_exclude_reference_link": "true"}, timeout=10
        )
        answer.raise_for_status()
        return dict(answer.json()["result"])

    def _polled_since_last_state(self, story: Story) -> bool:
        """Whether the connector has polled ServiceNow (twice, to be sure) since the story's last state.

        People set states minutes apart; the scenario compresses that to "not before the connector
        could have seen the last one". A state set and set back within one poll is a change nobody
        can mirror (the connector reads states, not their history), so it is not asked of it; nor
        is the order of a state change and an engineer's move within one poll (see
        :meth:`supplier_move`). Once true, it stays true until the next state change.
        """
        since = self._unread.get(story.sys_id)
        if since is None:
            return True
        polls = [
            entry
            for entry in self.world.sandbox.servicenow.journal.since(since)
            if entry["user"] == SN_USER
            and entry["method"] == "GET"
            and entry["path"] == "/api/now/table/incident"
            and entry["status"] == 200
            and "sysparm_query=sys_updated_on" in entry["query"]
        ]
        if len(polls) < 2:
            return False
        del self._unread[story.sys_id]
        return True

    def _patch(self, sys_id: str, **fields: str) -> None:
        answer = self.desk.patch(self._table("incident", sys_id), json=fields, timeout=10)
        answer.raise_for_status()


SYMPTOMS = (
    "checkout times out",
    "login page returns 502",
    "storage latency above 200 ms",
    "VPN tunnel flapping",
    "card payments declined",
    "batch jobs stuck",
)
FINDINGS = (
    "failover to the secondary site done",
    "load balancer pool rebuilt",
    "monitoring shows recovery",
    "vendor engaged, waiting for logs",
    "rollback of the last change started",
)
