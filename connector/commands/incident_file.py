"""An incident an admin pasted as JSON, read as the daemon reads incidents from the Table API. Pure.

The daemon asks for ``sysparm_display_value=false`` and the dot-walks it needs: every value is
the stored one, a reference is its sys_id, ``business_service.name`` arrives under that dotted key
(:class:`connector.core.models.Incident`). ``rules test --file`` must decide on a file exactly as the
daemon would on the live incident, whatever form the admin pasted:

- the record itself, a Table API answer ``{"result": {...}}``, or a query's ``{"result": [{...}]}``
  holding one record;
- flat values and dot-walked keys (``"cmdb_ci.name": "db-01"``);
- nested objects standing for dot-walks (``{"business_service": {"name": "Payments"}}``);
- the Table API's value forms: ``{"value": …, "link": …}`` (``sysparm_display_value=false``),
  ``{"display_value": …, "value": …, "link": …}`` (``all``), ``{"display_value": …, "link": …}``
  (``true``: the sys_id is the link's last segment);
- display strings (``sysparm_display_value=true``, or written by hand): a choice label
  (``1 - Critical``, ``In Progress``) is read as its value, a reference's display value also fills
  the dot-walk to its table's display column (``business_service`` shows ``business_service.name``),
  an ISO 8601 date-time is converted to ServiceNow's UTC form.

Whatever is read in another way than the plain one, and concerns a field the rules read, is
reported as a note, so the admin sees what the decision was made on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from connector.core import vocabulary
from connector.core.models import Incident
from connector.core.times import format_servicenow_time, servicenow_time_or_none

REFERENCE_KEYS = frozenset({"value", "display_value", "link"})
"""The keys of the Table API's object form of a value; any other key makes an object a nested record."""
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
FLAT, NESTED, INFERRED = 3, 2, 1
"""How a value was given, strongest first: a key of the file, a nested object's key, inferred."""


@dataclass(frozen=True)
class IncidentFile:
    """The incident a file describes, what was read in a way worth saying, and which fields it gave."""

    incident: Incident
    notes: tuple[str, ...]
    given: frozenset[str]
    """Every field the file gave a value for (``""`` and ``null`` included), dot-walks included."""

    def missing(self, wanted: Iterable[str]) -> list[str]:
        """The fields of ``wanted`` the file does not give, in order: they read as empty.

        A dot-walk through a reference the file gives as empty is given: it is empty live too.
        """
        return [name for name in wanted if not self._gives(name)]

    def _gives(self, name: str) -> bool:
        if name in self.given:
            return True
        segments = name.split(".")
        prefixes = (".".join(segments[:end]) for end in range(1, len(segments)))
        return any(prefix in self.given and not self.incident.get(prefix) for prefix in prefixes)


def read_incident(
    data: Any,
    *,
    default_number: str,
    incident_states: Mapping[str, str] = vocabulary.CORE_INCIDENT_STATES,
    wanted: Collection[str] = (),
) -> IncidentFile:
    """The incident in ``data`` (parsed JSON), read as the live adapter would read it.

    ``incident_states`` are the instance's state values and labels; ``wanted`` the fields the
    rules read (notes are given for those only).

    Raises:
        ValueError: ``data`` is not one incident record.
    """
    reader = _Reader(incident_states, frozenset(wanted))
    for key, value in _record(data).items():
        reader.take(str(key), value, FLAT)
    reader.finish()
    fields = dict(reader.values)
    count = fields.get("sys_mod_count", "0")
    incident = Incident(
        fields.pop("sys_id", "") or "from-file",
        fields.pop("number", "") or default_number,
        int(count) if count.isdigit() else 0,
        servicenow_time_or_none(fields.get("sys_updated_on", "")),
        MappingProxyType(fields),
    )
    return IncidentFile(incident, tuple(reader.notes), frozenset(reader.values))


def _record(data: Any) -> dict[str, Any]:
    """The one record in a file: the object itself, or the ``result`` of a Table API answer."""
    if isinstance(data, dict) and "result" in data:
        result = data["result"]
        if isinstance(result, list):
            if len(result) != 1:
                raise ValueError(
                    f"the answer's result holds {len(result)} records; keep the one incident to test"
                )
            result = result[0]
        data = result
    if not isinstance(data, dict):
        raise ValueError(
            'expected a JSON object with the incident\'s fields, or a Table API answer {"result": …}'
        )
    return data


class _Reader:
    """Collects a file's values as stored values under their (dotted) field names."""

    def __init__(self, incident_states: Mapping[str, str], wanted: frozenset[str]) -> None:
        self.labels: dict[str, Mapping[str, str]] = {
            "priority": vocabulary.PRIORITIES,
            "impact": vocabulary.IMPACTS,
            "urgency": vocabulary.URGENCIES,
            "state": incident_states,
            "incident_state": incident_states,
            "major_incident_state": {state: state.capitalize() for state in vocabulary.MAJOR_INCIDENT_STATES},
        }
        self.wanted = wanted
        self.values: dict[str, str] = {}
        self.strength: dict[str, int] = {}
        self.displays: dict[str, str] = {}
        """Reference path -> its display value, where the file showed one."""
        self.nested: list[str] = []
        self.display_form = False
        """The file holds choice labels or links without values: ``sysparm_display_value=true``, whose
        date-times are in the reading user's time zone (a reference's name alone proves nothing:
        ``sys_domain`` stores ``global``)."""
        self.notes: list[str] = []

    def note(self, field: str, text: str) -> None:
        if field in self.wanted:
            self.notes.append(text)

    def take(self, key: str, value: Any, strength: int) -> None:
        if isinstance(value, dict) and value and set(value) <= REFERENCE_KEYS:
            self._value_object(key, value, strength)
        elif isinstance(value, dict):
            own = {name: inner for name, inner in value.items() if name in REFERENCE_KEYS}
            if own:
                self._value_object(key, own, strength)
            for sub, inner in value.items():
                if sub not in own:
                    self.take(f"{key}.{sub}", inner, NESTED)
            sys_id = self.values.get(f"{key}.sys_id")
            if sys_id is not None and key not in self.values:
                self.put(key, sys_id, strength)
        else:
            self.put(key, _scalar(value), strength, plain=True)
            if strength == NESTED:
                self.nested.append(key)

    def _value_object(self, key: str, value: Mapping[str, Any], strength: int) -> None:
        """``{"value", "display_value", "link"}``: the stored value, else the link's sys_id, else the display."""
        display = _scalar(value.get("display_value"))
        link = _scalar(value.get("link"))
        if "value" in value:
            self.put(key, _scalar(value["value"]), strength)
        elif SYS_ID.match(link.rstrip("/").rsplit("/", 1)[-1]):
            self.display_form = True
            self.put(key, link.rstrip("/").rsplit("/", 1)[-1], strength)
        else:
            self.put(key, display, strength, plain=True)
            return
        if display and _reference_table(key) is not None:
            self.displays[key] = display

    def put(self, key: str, value: str, strength: int, *, plain: bool = False) -> None:
        """Record ``key``; ``plain`` values may be display strings and are read back to stored ones."""
        if plain:
            value = self._stored(key, value)
        known = self.values.get(key)
        if known is not None and known != value:
            if self.strength[key] >= strength:
                self.note(key, f"{key} is given twice ({known!r} and {value!r}): {known!r} is used")
                return
            self.note(key, f"{key} is given twice ({value!r} and {known!r}): {value!r} is used")
        elif known is not None and self.strength[key] >= strength:
            return
        self.values[key] = value
        self.strength[key] = strength

    def _stored(self, key: str, value: str) -> str:
        """A plain string as the stored value: choice labels, reference names and date-times read back."""
        if not value:
            return value
        labels = self.labels.get(key)
        if labels is not None and value not in labels:
            folded = {label.casefold(): stored for stored, label in labels.items()}
            stored = folded.get(value.casefold())
            if stored is None:
                known = ", ".join(labels)
                self.note(
                    key,
                    f"{key} {value!r} is neither a value ({known}) nor a label of one: compared as written",
                )
                return value
            self.display_form = True
            self.note(key, f"{key} {value!r} is a display value: read as {stored}")
            return stored
        if _reference_table(key) is not None and not SYS_ID.match(value):
            self.displays[key] = value
            self.note(
                key,
                f"{key} {value!r} is a display value, not the sys_id the daemon reads: "
                f"a condition on {key} itself compares the name",
            )
            return value
        if key.rsplit(".", 1)[-1] in vocabulary.DATETIME_COLUMNS and servicenow_time_or_none(value) is None:
            return self._datetime(key, value)
        return value

    def _datetime(self, key: str, value: str) -> str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.note(
                key,
                f"{key} {value!r} is not a date-time the rules can read (YYYY-MM-DD HH:MM:SS, UTC): "
                "time conditions that need it do not hold",
            )
            return value
        zone = "" if moment.tzinfo is not None else ", taken as UTC"
        converted = format_servicenow_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        self.note(key, f"{key} {value!r} read as {converted} UTC{zone}")
        return converted

    def finish(self) -> None:
        """Fill dot-walks from display values, then say what the file's forms mean for the rules."""
        for path, display in self.displays.items():
            table = _reference_table(path)
            column = vocabulary.DISPLAY_COLUMNS.get(table or "")
            target = f"{path}.{column}"
            if column is None or target in self.values:
                continue
            self.put(target, display, INFERRED)
            self.note(
                target,
                f"{target} {display!r} is taken from the display value of {path} "
                f"(a {table} record displays its {column})",
            )
        walked = [key for key in dict.fromkeys(self.nested) if key in self.wanted]
        if walked:
            self.notes.append("read from nested objects as dot-walks: " + ", ".join(walked))
        if self.display_form:
            times = [
                key
                for key in self.values
                if key in self.wanted | {"sys_updated_on"}
                and key.rsplit(".", 1)[-1] in vocabulary.DATETIME_COLUMNS
                and self.strength[key] != INFERRED
                and servicenow_time_or_none(self.values[key]) is not None
            ]
            if times:
                self.notes.append(
                    "the file holds display values: if it was read with sysparm_display_value=true, "
                    f"{', '.join(times)} are in the reading user's time zone, while the rules take them "
                    "as UTC (sysparm_display_value=all gives both)"
                )


def _reference_table(path: str) -> str | None:
    """The table ``path`` (walked from incident) references, ``None`` when it is no known reference."""
    table: str | None = "incident"
    for segment in path.split("."):
        columns = vocabulary.TABLES.get(table or "")
        if columns is None:
            return None
        table = columns.get(segment)
        if table is None:
            return None
    return table


def _scalar(value: Any) -> str:
    """A JSON scalar as ServiceNow's string: ``null`` empty, booleans ``true``/``false``, lists comma-joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar(item) for item in value)
    return str(value)
