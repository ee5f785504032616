"""The connector's push update set, as a setting: the async business rules that notify it of changes.

On a real instance an admin imports ``servicenow/mim_connector_push.xml`` (docs/push.md): async
business rules on incident insert and update and on ``sys_journal_field`` insert for incident
comments and work notes, calling a script include that signs and posts a notification. Here the
same behaviour is a setting, ``POST /_sandbox/push`` (:class:`PushSetting`; ``GET`` shows it
without the secret). When it is enabled, every incident write the writer stores - Table API
``POST``/``PUT``/``PATCH``, and the in-process :meth:`ServiceNowApp.insert` - queues one incident
notification, then one journal notification per comment or work note it added, on the app's
:class:`~connector.sandbox.push.Dispatcher`. The bodies are built when the write is stored (the
version that write made) and sent later, as an async rule runs after the transaction.

What is sent is what the update set's script sends: plain-ASCII compact JSON (every character
above U+007E, and ``$``, as a backslash-``uXXXX`` escape), headers ``Content-Type:
application/json``, ``X-MIM-Delivery: <32 hex GUID>`` and ``X-MIM-Signature: sha256=<base64
HMAC-SHA256(secret, raw body)>`` (``GlideCertificateEncryption.generateMac`` answers base64). Incident:
``{"table":"incident","event":"insert"|"update","sys_id","number","sys_mod_count" (int),
"sys_updated_on","fields":{...}}`` where ``fields`` holds the stored value (``""`` when empty) of
each configured field the incident has, journal fields and unknown names left out. Journal entry:
``{"table":"sys_journal_field","event":"insert","sys_id","element_id","element","sys_created_on"}``,
never the text.

``bypass_probability`` stands for writes made with ``setWorkflow(false)``, which run no business
rule: such a write, decided per write, notifies nothing, neither for the incident nor for the
journal entries it added (logged as ``bypassed``). The script does not retry a failed post, so
this dispatcher's default is ``retries: 0`` (``POST /_sandbox/push/faults`` changes it; a retry
then carries ``X-MIM-Retry: n``), and its time limit is the script's 5 s.
"""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from connector.sandbox.push import Delivery, Dispatcher, hmac_sha256
from connector.sandbox.servicenow.catalog import Catalog
from connector.sandbox.servicenow.predicates import Record
from connector.sandbox.servicenow.writes import JOURNAL_TABLE

RETRY_HEADER = "X-MIM-Retry"
USER_AGENT = "ServiceNow/1.0"
TIMEOUT_MS = 5000
DEFAULT_FIELDS = (
    "number", "priority", "impact", "urgency", "state", "major_incident_state", "assignment_group",
    "cmdb_ci", "business_service", "category", "subcategory", "short_description", "opened_at",
    "parent_incident", "sys_updated_by",
)  # fmt: skip
"""``x_mim_connector.push.fields`` as the update set ships it."""
JOURNAL_ELEMENTS = ("comments", "work_notes")
_NOT_PLAIN = re.compile(r"[\u007f-\uffff$]")


@dataclass(frozen=True)
class PushSetting:
    """The update set's system properties: where to post, the (raw) secret, the fields, on or off."""

    url: str = ""
    secret: str = ""
    fields: tuple[str, ...] = DEFAULT_FIELDS
    enabled: bool = False
    bypass_probability: float = 0.0

    def updated(self, payload: Mapping[str, Any]) -> PushSetting:
        """A copy with the given keys changed; raises ``ValueError`` on bad input.

        Enabling it requires a URL and a secret (the script sends nothing without them).
        """
        known = ("url", "secret", "fields", "enabled", "bypass_probability")
        unknown = sorted(set(payload) - set(known))
        if unknown:
            raise ValueError(f"unknown push settings: {', '.join(unknown)} (known: {', '.join(known)})")
        changes: dict[str, Any] = {}
        for key in ("url", "secret"):
            if key in payload:
                if not isinstance(payload[key], str):
                    raise ValueError(f"push {key} must be a string")
                changes[key] = payload[key].strip()
        if "fields" in payload:
            raw = payload["fields"]
            names = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
                raise ValueError("push fields must be a list of field names or a comma-separated string")
            changes["fields"] = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
        if "enabled" in payload:
            if not isinstance(payload["enabled"], bool):
                raise ValueError("push enabled must be true or false")
            changes["enabled"] = payload["enabled"]
        if "bypass_probability" in payload:
            value = payload["bypass_probability"]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError("push bypass_probability must be between 0 and 1")
            changes["bypass_probability"] = float(value)
        updated = replace(self, **changes)
        if updated.enabled and not (updated.url and updated.secret):
            raise ValueError("push needs a url and a secret to be enabled")
        return updated

    def as_json(self) -> dict[str, Any]:
        """The setting as the control API shows it: whether a secret is set, never the secret."""
        return {
            "url": self.url,
            "secret_set": bool(self.secret),
            "fields": list(self.fields),
            "enabled": self.enabled,
            "bypass_probability": self.bypass_probability,
        }


def signature(secret: str, body: bytes) -> str:
    """``sha256=<base64 HMAC-SHA256(secret, body)>``, the ``X-MIM-Signature`` value."""
    return "sha256=" + base64.b64encode(hmac_sha256(secret, body)).decode("ascii")


def encode(body: Mapping[str, Any]) -> bytes:
    """The script's ``toJson``: compact JSON in plain ASCII, ``$`` and DEL escaped too."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return _NOT_PLAIN.sub(lambda match: f"\\u{ord(match[0]):04x}", text).encode("ascii")


class IncidentPush:
    """The business rules: turns stored incident writes into notifications while enabled."""

    def __init__(self, dispatcher: Dispatcher, catalog: Catalog, seed: int = 0) -> None:
        self.dispatcher = dispatcher
        self.catalog = catalog
        self.setting = PushSetting()
        self._seed = seed
        self._rng = random.Random(seed)  # noqa: S311 - bypass dice, not cryptography

    def reset(self) -> None:
        """Off, with the shipped defaults, and the dice re-seeded."""
        self.setting = PushSetting()
        self._rng.seed(self._seed)

    def configure(self, payload: Mapping[str, Any]) -> PushSetting:
        """Apply a partial update of the setting (``POST /_sandbox/push``)."""
        self.setting = self.setting.updated(payload)
        return self.setting

    def written(self, table: str, event: str, record: Record, entries: list[Record]) -> None:
        """The writer's hook: queue the notifications of one stored write (called under the app lock)."""
        setting = self.setting
        if table != "incident" or not setting.enabled:
            return
        bodies = [self._incident(event, record, setting.fields)]
        bodies += [self._journal(entry) for entry in entries if entry.get("element") in JOURNAL_ELEMENTS]
        bypass = setting.bypass_probability and self._rng.random() < setting.bypass_probability
        for body, name in bodies:
            payload = encode(body)
            delivery_id = uuid.uuid4().hex
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-MIM-Delivery": delivery_id,
                "X-MIM-Signature": signature(setting.secret, payload),
            }
            delivery = Delivery(setting.url, payload, headers, delivery_id, name)
            if bypass:
                self.dispatcher.bypassed(delivery)
            else:
                self.dispatcher.enqueue(delivery)

    def _incident(self, event: str, record: Record, names: tuple[str, ...]) -> tuple[dict[str, Any], str]:
        columns = self.catalog.columns("incident")
        implicit = self.catalog.implicit("incident")
        fields = {
            name: record.get(name, implicit.get(name, ""))
            for name in names
            if name in columns and columns[name].kind != "journal"
        }
        try:
            count = int(record.get("sys_mod_count", "0"))
        except ValueError:
            count = 0
        body = {
            "table": "incident",
            "event": event,
            "sys_id": record.get("sys_id", ""),
            "number": record.get("number", ""),
            "sys_mod_count": count,
            "sys_updated_on": record.get("sys_updated_on", ""),
            "fields": fields,
        }
        return body, f"incident.{event}"

    @staticmethod
    def _journal(entry: Record) -> tuple[dict[str, Any], str]:
        body = {
            "table": JOURNAL_TABLE,
            "event": "insert",
            "sys_id": entry.get("sys_id", ""),
            "element_id": entry.get("element_id", ""),
            "element": entry.get("element", ""),
            "sys_created_on": entry.get("sys_created_on", ""),
        }
        return body, f"{JOURNAL_TABLE}.insert"
