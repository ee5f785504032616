"""The one exception of the ServiceNow simulator: a refusal in ServiceNow's own words."""

from __future__ import annotations

from collections.abc import Mapping


class ServiceNowError(Exception):
    """A request ServiceNow would refuse: HTTP ``status`` plus the envelope's ``message``/``detail``.

    The app turns it into ``{"error": {"message": …, "detail": …}, "status": "failure"}``;
    :meth:`~connector.sandbox.servicenow.app.ServiceNowApp.insert` lets it propagate.
    """

    def __init__(
        self,
        status: int,
        message: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}: {detail}")
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})


def no_record() -> ServiceNowError:
    """404 for a sys_id that does not exist in the table."""
    return ServiceNowError(
        404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
    )


def invalid_table(table: str) -> ServiceNowError:
    """400 for a table the instance does not have."""
    return ServiceNowError(400, f"Invalid table {table}", f"Table {table} does not exist")


def not_authenticated() -> ServiceNowError:
    """401 for missing, wrong or expired credentials."""
    return ServiceNowError(401, "User Not Authenticated", "Required to provide Auth information")


def acl_refused(operation: str) -> ServiceNowError:
    """403 for a write the table's ACLs refuse (``operation`` is Insert, Update or Delete)."""
    return ServiceNowError(
        403, "Operation Failed", f"ACL Exception {operation} Failed due to security constraints"
    )
