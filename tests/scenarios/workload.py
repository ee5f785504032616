"""The workload generator: people's actions in random order, by weight, at a human-ish pace.

``Workload.step()`` picks an action (see :data:`WEIGHTS`) and lets :class:`People` do it. An
action a platform refuses (a person's request answered 4xx, e.g. a transition the connector
made unavailable a moment ago) is counted and skipped: the ledger only records what happened.
"""

from __future__ import annotations

import random
from collections import Counter

import requests
from jira import JIRAError

from tests.scenarios.people import People

WEIGHTS = {
    "open_incident": 3,
    "comment": 5,
    "work_note": 2,
    "edit": 4,
    "set_state": 4,
    "set_workaround": 1,
    "promote": 1,
    "assign": 1,
    "link_problem": 1,
    "supplier_comment": 5,
    "supplier_move": 4,
    "supplier_field": 3,
}
ACTIONS = tuple(WEIGHTS)


class Workload:
    """Drives ``people``; opens at most ``incidents`` incidents (at least a few are always open)."""

    def __init__(self, people: People, rng: random.Random, incidents: int) -> None:
        self.people = people
        self.rng = rng
        self.incidents = incidents
        self.refused: Counter[str] = Counter()

    def step(self) -> str | None:
        """Do one action; return its name, or ``None`` when nothing was done."""
        opened = len(self.people.ledger.stories)
        if opened < min(4, self.incidents):
            name = "open_incident"
        else:
            names = [n for n in ACTIONS if n != "open_incident" or opened < self.incidents]
            name = self.rng.choices(names, weights=[WEIGHTS[n] for n in names])[0]
        return name if self.run(name) else None

    def run(self, name: str) -> bool:
        """Do the action ``name`` (one of :data:`ACTIONS`); ``False`` when it could not be done."""
        try:
            done = getattr(self.people, name)()
        except (requests.HTTPError, JIRAError) as exc:
            status = getattr(exc, "status_code", None) or getattr(
                getattr(exc, "response", None), "status_code", "?"
            )
            self.refused[f"{name}:{status}"] += 1
            return False
        return done is not False
