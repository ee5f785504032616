"""A project's workflow as a graph: statuses with categories, numbered transitions, paths.

Transition ids follow classic Jira workflows: 11, 21, 31... in the order the spec lists them. A
transition with an empty ``from_`` is global (available from every other status).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from connector.sandbox.spec import JiraWorkflow, StatusCategory


@dataclass(frozen=True)
class CategoryInfo:
    """How Jira describes a status category (``statusCategory`` in responses)."""

    category_id: int
    key: str
    color_name: str
    name: str


CATEGORIES: dict[StatusCategory, CategoryInfo] = {
    "todo": CategoryInfo(2, "new", "blue-gray", "To Do"),
    "in_progress": CategoryInfo(4, "indeterminate", "yellow", "In Progress"),
    "done": CategoryInfo(3, "done", "green", "Done"),
}


@dataclass(frozen=True)
class Transition:
    """One workflow transition with its Jira id."""

    transition_id: str
    name: str
    to: str
    from_: tuple[str, ...]
    requires: tuple[str, ...]

    @property
    def is_global(self) -> bool:
        """Available from every status (no ``from_`` list)."""
        return not self.from_

    def available_from(self, status: str) -> bool:
        """True when an issue in ``status`` may take this transition."""
        return status in self.from_ if self.from_ else status != self.to


class WorkflowGraph:
    """Statuses, categories and transitions of one workflow. Raises ``ValueError`` when inconsistent."""

    def __init__(self, workflow: JiraWorkflow) -> None:
        self.initial = workflow.initial
        self._categories: dict[str, StatusCategory] = {s.name: s.category for s in workflow.statuses}
        self.transitions = tuple(
            Transition(str(11 + 10 * index), t.name, t.to, t.from_, t.requires)
            for index, t in enumerate(workflow.transitions)
        )
        self._by_id = {t.transition_id: t for t in self.transitions}
        named = (
            [self.initial] + [t.to for t in self.transitions] + [s for t in self.transitions for s in t.from_]
        )
        unknown = sorted({name for name in named if name not in self._categories})
        if unknown:
            raise ValueError(f"workflow refers to unknown statuses: {', '.join(unknown)}")

    @property
    def statuses(self) -> tuple[str, ...]:
        """Status names in the order the spec lists them."""
        return tuple(self._categories)

    def category(self, status: str) -> StatusCategory:
        """The category of ``status``."""
        return self._categories[status]

    def available(self, status: str) -> list[Transition]:
        """Transitions an issue in ``status`` may take, in id order."""
        return [t for t in self.transitions if t.available_from(status)]

    def transition(self, transition_id: str) -> Transition | None:
        """The transition with this id, whatever the current status."""
        return self._by_id.get(transition_id)

    def path(self, from_status: str, to_status: str) -> list[Transition] | None:
        """The shortest sequence of transitions from one status to another; ``[]`` when equal, ``None`` when unreachable."""
        previous: dict[str, tuple[str, Transition] | None] = {from_status: None}
        queue = deque([from_status])
        while queue:
            status = queue.popleft()
            if status == to_status:
                steps: list[Transition] = []
                link = previous[status]
                while link is not None:
                    steps.append(link[1])
                    link = previous[link[0]]
                return steps[::-1]
            for step in self.available(status):
                if step.to not in previous:
                    previous[step.to] = (status, step)
                    queue.append(step.to)
        return None
