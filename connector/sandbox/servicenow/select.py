"""Run a compiled query on a table: pick an access path, filter, order, page and count.

Access paths, cheapest first:

1. every ``^NQ`` block pins an indexed column (``sys_id``, ``number``, ``element_id``) with
   ``=``/``IN``: read those records only;
2. every block bounds the table's time column from below (or there is no condition at all): walk
   the sorted ``(time, sys_id)`` index from the lowest bound. When the query is also ordered by
   that column (then ``sys_id``), the walk *is* the result order and stops after the page, so a
   watermark page costs the page, not the table; the total then comes from bisection when the
   query is a pure time range, from :mod:`.counts` when the rest of it is a cacheable filter,
   else from finishing the walk;
3. otherwise scan the table.

Without ``ORDERBY`` rows come in sys_id order - deliberately not insertion order, because
ServiceNow promises no order and a connector must not come to depend on one.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.sandbox.servicenow.counts import CountCache, split_residual
from connector.sandbox.servicenow.predicates import CompiledQuery, Predicate, Record, sort_records
from connector.sandbox.servicenow.tables import Table


@dataclass(frozen=True)
class Page:
    """One page of a query result; ``total`` is ``None`` when counting was not asked for."""

    records: list[Record]
    total: int | None
    more: bool
    """True when rows exist after this page."""


def _single_predicates(query: CompiledQuery, block_index: int) -> list[Predicate]:
    """The predicates of one block that stand alone in their clause (so each must hold)."""
    return [clause[0] for clause in query.blocks[block_index] if len(clause) == 1]


def _indexed_candidates(table: Table, query: CompiledQuery) -> set[str] | None:
    if not query.blocks:
        return None
    found: set[str] = set()
    for index in range(len(query.blocks)):
        pinned = [
            p
            for p in _single_predicates(query, index)
            if p.equals is not None and p.column and table.indexes(p.column)
        ]
        if not pinned:
            return None
        smallest = min((table.lookup(p.column or "", p.equals or frozenset()) for p in pinned), key=len)
        found |= smallest
    return found


def _time_bounds(table: Table, query: CompiledQuery) -> tuple[str | None, str | None] | None:
    """The ``[lower, upper]`` of the time column covering every block, or ``None`` when unbounded."""
    if not query.blocks:
        return (None, None)
    lowers: list[str] = []
    uppers: list[str | None] = []
    for index in range(len(query.blocks)):
        on_time = [p for p in _single_predicates(query, index) if p.column == table.time_column]
        block_lowers = [p.lower for p in on_time if p.lower is not None]
        if not block_lowers:
            return None
        lowers.append(max(block_lowers))
        block_uppers = [p.upper for p in on_time if p.upper is not None]
        uppers.append(min(block_uppers) if block_uppers else None)
    upper = None if None in uppers else max(u for u in uppers if u is not None)
    return min(lowers), upper


def _walk_is_ordered(table: Table, query: CompiledQuery) -> bool:
    terms = [(key.path, key.descending) for key in query.order]
    return terms in ([(table.time_column, False)], [(table.time_column, False), ("sys_id", False)])


def _pure_time_range(table: Table, query: CompiledQuery) -> bool:
    """True when every condition bounds the time column, so all rows strictly inside the range match."""
    if len(query.blocks) > 1:
        return False
    return all(
        p.column == table.time_column and (p.lower is not None or p.upper is not None)
        for block in query.blocks
        for clause in block
        for p in clause
    )


def _edge_corrected(
    table: Table,
    query: CompiledQuery,
    residual: CompiledQuery | None,
    bounds: tuple[str | None, str | None],
    in_range: int,
) -> int:
    """``in_range`` minus the rows on the range's edges that match ``residual`` but not the whole query.

    ``in_range`` counts the rows of the closed time range matching ``residual`` (all rows when
    ``None``); strictly inside the range the time bounds always hold, on its edges a strict
    ``>``/``<`` may reject a row.
    """
    edges: dict[str, Record] = {}
    for edge in bounds:
        if edge is not None:
            edges.update((r["sys_id"], r) for r in table.time_range(edge, edge))
    rejected = sum(
        1 for r in edges.values() if (residual is None or residual.matches(r)) and not query.matches(r)
    )
    return in_range - rejected


def _fast_total(
    table: Table, query: CompiledQuery, bounds: tuple[str | None, str | None], counts: CountCache | None
) -> int | None:
    """The query's total without walking the range, when bisection or the count cache can give it."""
    if _pure_time_range(table, query):
        return _edge_corrected(table, query, None, bounds, table.count_time_range(*bounds))
    residual = split_residual(table, query) if counts is not None else None
    if residual is None or counts is None:
        return None
    return _edge_corrected(table, query, residual, bounds, counts.count(table, residual, *bounds))


def _walk(
    table: Table,
    query: CompiledQuery,
    bounds: tuple[str | None, str | None],
    page_range: tuple[int, int],
    count: bool,
    counts: CountCache | None,
) -> Page:
    offset, limit = page_range
    window = offset + limit
    page: list[Record] = []
    seen = 0
    matches = query.matches
    for record in table.time_range(*bounds):
        if not matches(record):
            continue
        if offset <= seen < window:
            page.append(record)
        seen += 1
        if seen == window + 1:
            if not count:
                return Page(page, None, True)
            total = _fast_total(table, query, bounds, counts)
            if total is not None:
                return Page(page, total, True)
    return Page(page, seen if count else None, seen > window)


def _sorted_page(records: list[Record], query: CompiledQuery, offset: int, limit: int, count: bool) -> Page:
    matching = sorted((r for r in records if query.matches(r)), key=lambda r: r["sys_id"])
    if query.order:
        matching = sort_records(matching, query.order)
    total = len(matching)
    return Page(matching[offset : offset + limit], total if count else None, total > offset + limit)


def select(
    table: Table,
    query: CompiledQuery,
    *,
    offset: int,
    limit: int,
    count: bool,
    counts: CountCache | None = None,
) -> Page:
    """The page ``[offset, offset + limit)`` of the rows of ``table`` matching ``query``, in its order.

    ``counts`` (optional) lets watermark pages get their total without walking the rest of the range.
    """
    offset = max(offset, 0)
    candidates = _indexed_candidates(table, query)
    if candidates is not None:
        records = [r for r in (table.get(sys_id) for sys_id in candidates) if r is not None]
        return _sorted_page(records, query, offset, limit, count)
    bounds = _time_bounds(table, query)
    if bounds is not None and _walk_is_ordered(table, query):
        return _walk(table, query, bounds, (offset, limit), count, counts)
    if bounds is not None:
        return _sorted_page(list(table.time_range(*bounds)), query, offset, limit, count)
    return _sorted_page(list(table.records.values()), query, offset, limit, count)
