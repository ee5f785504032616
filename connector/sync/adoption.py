"""Record what recognition found on a supplier's Jira that the store did not know; no external write.

:func:`adopt` links an incident to an existing issue stamped for it (settling its unfinished
creates), :func:`release` forgets a link whose issue is stamped for another incident or instance,
:func:`recover` records appends found already done and a rebuilt Jira-side shadow. Each writes the
store in one transaction, with an audit entry where a link is made or forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from connector.core.links import Link, entity_key
from connector.core.models import Incident, SupplierIssue
from connector.core.plan import Operation
from connector.core.ports import Write, Written
from connector.mirror.recognition import Landed
from connector.store import Store
from connector.sync.supplier import Supplier
from connector.sync.writes import Writes
from connector.telemetry import metrics

log = logging.getLogger(__name__)


def adopt(store: Store, writes: Writes, supplier: Supplier, incident: Incident, issue: SupplierIssue) -> Link:
    """Link ``incident`` to ``issue``, which exists and is stamped for it: no create is sent.

    In one transaction: the link (``linked``, with the issue's stamp), this entity's
    unfinished creates (done: that issue is theirs) and an audit entry.
    """
    assert issue.identity is not None
    entity = entity_key(incident.sys_id, supplier.name)
    system = f"jira:{supplier.name}"
    reason = (
        f"{issue.key} already exists for {incident.number} (stamped {issue.identity.stamp}); "
        "the store did not know it"
    )
    stamp = issue.identity.stamp
    adoption = Write(entity, Operation.ADOPT_ISSUE, system, issue.key, reason, stamp)
    with store.transaction() as conn:
        link = store.links.adopt(
            incident.sys_id,
            supplier.name,
            stamp,
            issue.issue_id,
            issue.key,
            supplier.browse(issue.key),
            conn=conn,
        )
        for open_write in writes.open_writes_of(entity):
            if open_write.operation == Operation.CREATE_ISSUE:
                outcome = {"jira_key": issue.key, "adopted": True}
                writes.settle(open_write.intent_id, "done", outcome, conn=conn)
        writes.record(adoption, Written(after={"stamp": stamp}), conn=conn)
    metrics.WRITES.labels(system, Operation.ADOPT_ISSUE, "done").inc()
    log.warning("adopted %s: %s", issue.key, reason, extra={"supplier": supplier.name, "jira_key": issue.key})
    return link


def release(
    store: Store,
    writes: Writes,
    supplier: Supplier,
    servicenow: str,
    incident: Incident,
    link: Link,
    issue: SupplierIssue,
) -> None:
    """Forget a link whose issue is stamped for another incident or ServiceNow instance.

    ``servicenow`` is this instance's identity. Such a link came with a store from another
    environment (or a restore of the wrong one): the issue is left alone, and the entity is
    recognised or created afresh.
    """
    assert issue.identity is not None
    stamped = issue.identity
    reason = (
        f"{issue.key} is stamped for incident {stamped.incident_number or stamped.incident_sys_id} "
        f"of {stamped.servicenow or stamped.instance}, not {incident.number} of {servicenow}: "
        "the store's link is another environment's; forgotten (if it is this instance under a former "
        "URL, list that URL in servicenow.former_urls)"
    )
    system = f"jira:{supplier.name}"
    release = Write(link.entity, Operation.RELEASE_LINK, system, issue.key, reason, stamped.stamp)
    with store.transaction() as conn:
        store.links.forget(link.link_id, conn=conn)
        writes.record(release, conn=conn)
    log.warning("%s", reason, extra={"supplier": supplier.name, "jira_key": issue.key})


def recover(
    store: Store, supplier: Supplier, link: Link, landed: Sequence[Landed], shadow: Mapping[str, str]
) -> None:
    """Record appends found already done and a rebuilt Jira-side shadow, in one transaction."""
    with store.transaction() as conn:
        for found in landed:
            entry, _fresh = store.comments.begin(
                link.link_id, found.direction, found.source_id, found.marker, conn=conn
            )
            store.comments.finish(entry.comment_id, "done", found.target_id, conn=conn)
        store.shadows.put(link.link_id, "jira", shadow, conn=conn)
    if landed:
        log.info(
            "%s: %d comment(s) or note(s) already mirrored, recorded (the store did not know them)",
            link.jira_key,
            len(landed),
            extra={"supplier": supplier.name, "jira_key": link.jira_key},
        )
