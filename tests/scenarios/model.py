"""What the people of a scenario did, and what that must lead to: the oracle's memory.

The :class:`Ledger` records every *source* the checker later looks for (public comments and
their tokens, supplier comments, canaries in internal fields, supplier status moves, root causes)
and, per incident, a :class:`Story`: the expected incident state, supplier statuses and shared
workaround, kept by applying each person's action with the connector's documented semantics as
if it synced at once. That shortcut is exact because people only change a *contested* dimension
(state/status, the shared workaround) when both sides agree on it (see ``people.settled``): two
unsynced changes of one dimension never overlap, so there is no concurrent conflict whose winner
the oracle would have to guess.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.config.supplier_file import SupplierMapping
from tests.scenarios import expected

OPEN_STATES = ("1", "2", "3")
DONE_STATES = ("7", "8")
"""Closed and canceled incidents are not touched again."""


@dataclass
class Story:
    """One incident as the oracle expects it."""

    sys_id: str
    number: str
    state: str = "1"
    statuses: dict[str, str] = field(default_factory=dict)
    """Supplier -> expected status, for each supplier the incident is routed to."""
    keys: dict[str, str] = field(default_factory=dict)
    """Supplier -> issue key, once a person has seen the issue."""
    workaround: str = ""
    root_cause: str = ""
    """ACME's latest root cause text ("" when none was recorded)."""
    eta: str = ""
    problem_number: str = ""
    """The problem a person linked (numbers of problems the connector opened are read later)."""
    history: list[str] = field(default_factory=list)
    """What happened to the story, one line per routing, state change or move (for post-mortems)."""

    def route(self, supplier: str, mapping: SupplierMapping) -> None:
        """The incident became routed to ``supplier``: its new issue ends where the state puts it."""
        if supplier not in self.statuses:
            moved = expected.status_out(mapping, self.state)
            self.statuses[supplier] = moved or expected.initial_status(mapping)
            self._note(f"routed to {supplier}")

    def set_state(self, state: str, mappings: Mapping[str, SupplierMapping]) -> None:
        """The service desk set the incident state: every issue moves per its status map."""
        if state == self.state:
            return
        self.state = state
        self._mirror(state, mappings)
        self._note(f"desk set state {state}")

    def move(self, supplier: str, status: str, mappings: Mapping[str, SupplierMapping]) -> None:
        """A supplier engineer moved their issue; an allow-listed status sets the incident state.

        A closed or canceled incident stays so (the connector only notes the move there).
        """
        self.statuses[supplier] = status
        state = expected.state_in(mappings[supplier], status)
        if state is not None and state != self.state and self.state not in DONE_STATES:
            self.state = state
            self._mirror(state, mappings, but=supplier)
        self._note(f"{supplier} moved to {status}")

    def _note(self, event: str) -> None:
        statuses = ", ".join(f"{s} {status}" for s, status in sorted(self.statuses.items()))
        self.history.append(f"{time.time():.3f} {event}: state {self.state}; {statuses}")

    def _mirror(self, state: str, mappings: Mapping[str, SupplierMapping], but: str = "") -> None:
        """Every other issue follows the incident state, except one in a terminal status (left alone)."""
        for supplier, status in self.statuses.items():
            moved = expected.status_out(mappings[supplier], state)
            if supplier != but and moved and not expected.terminal(mappings[supplier], status):
                self.statuses[supplier] = moved


@dataclass(frozen=True)
class SupplierComment:
    """A comment an engineer wrote on an issue."""

    supplier: str
    key: str
    incident_sys_id: str


@dataclass
class Ledger:
    """Every source a person created, by the unique token it carries."""

    stories: dict[str, Story] = field(default_factory=dict)
    public_comments: dict[str, str] = field(default_factory=dict)
    """Token -> incident sys_id of each public (customer-visible) comment."""
    supplier_comments: dict[str, SupplierComment] = field(default_factory=dict)
    canaries: set[str] = field(default_factory=set)
    """Strings written only into internal fields (work notes, close notes)."""
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(issue key, status) -> how often an engineer moved the issue there."""
    actions: Counter[str] = field(default_factory=Counter)
    """Action name -> how often it was done."""
    _serial: int = 0

    def token(self, prefix: str) -> str:
        """A new unique token (``prefix`` names the kind: C public comment, S supplier, K canary)."""
        self._serial += 1
        return f"{prefix}{self._serial:05d}z"

    def story(self, sys_id: str) -> Story:
        """The story of an incident the scenario created."""
        return self.stories[sys_id]
