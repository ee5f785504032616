"""In-memory fakes of the ports (:mod:`connector.core.ports`) for unit tests of the engine and executor."""

from tests.fakes.clock import Clock
from tests.fakes.faults import (
    CRASH,
    LOST_ANSWER,
    OUTAGE,
    REFUSED,
    Crash,
    Fault,
    Faults,
    concurrent,
    rate_limited,
)
from tests.fakes.jira import FakeJira
from tests.fakes.servicenow import FakeServiceNow

__all__ = [
    "CRASH",
    "LOST_ANSWER",
    "OUTAGE",
    "REFUSED",
    "Clock",
    "Crash",
    "FakeJira",
    "FakeServiceNow",
    "Fault",
    "Faults",
    "concurrent",
    "rate_limited",
]
