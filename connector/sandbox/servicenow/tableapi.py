"""The Table API verbs on ``/api/now[/v1|/v2]/table/{table}[/{sys_id}]`` for one authenticated session.

GET lists honour the whole ``sysparm_*`` family and answer ``X-Total-Count`` and a ``Link``
header (first/prev/next/last, absolute URLs repeating every original parameter with only
``sysparm_offset`` changed; no header for a single page). Writes honour only ``sysparm_fields``,
``sysparm_display_value``, ``sysparm_exclude_reference_link`` and ``sysparm_input_display_value``:
the other GET parameters pysnow leaks onto POST/PUT are ignored, as ServiceNow ignores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, cast
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from connector.sandbox.core import json_response, read_json
from connector.sandbox.servicenow.counts import CountCache
from connector.sandbox.servicenow.dates import QueryContext
from connector.sandbox.servicenow.errors import ServiceNowError, no_record
from connector.sandbox.servicenow.predicates import compile_query
from connector.sandbox.servicenow.query import Condition, EncodedQuery, parse
from connector.sandbox.servicenow.render import DisplayMode, Renderer, View
from connector.sandbox.servicenow.rules import Actor
from connector.sandbox.servicenow.select import Page, select
from connector.sandbox.servicenow.settings import Settings
from connector.sandbox.servicenow.tables import Database
from connector.sandbox.servicenow.writes import Writer, read_payload

DEFAULT_LIMIT = 10000


@dataclass(frozen=True)
class Session:
    """The authenticated caller of one request."""

    user_name: str
    sys_id: str
    zone: tzinfo

    @property
    def actor(self) -> Actor:
        """The session as the author of writes."""
        return Actor(self.user_name, self.sys_id, self.zone)


def flag(params: MultiDict[str, str], name: str) -> bool:
    """A boolean parameter, case-insensitively (pysnow sends ``True``/``False``)."""
    return params.get(name, "").strip().lower() == "true"


def _integer(params: MultiDict[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name, ""))
    except ValueError:
        return default


def _display_mode(params: MultiDict[str, str]) -> DisplayMode:
    value = params.get("sysparm_display_value", "").strip().lower()
    return cast("DisplayMode", value) if value in ("true", "all") else "false"


class TableApi:
    """Answers Table API requests against one database; the caller holds the instance lock."""

    def __init__(
        self, database: Database, writer: Writer, settings: Settings, base_url: Callable[[], str]
    ) -> None:
        self.database = database
        self.writer = writer
        self.settings = settings
        self.base_url = base_url
        self.counts = CountCache()

    def _view(self, table: str, params: MultiDict[str, str], renderer: Renderer) -> View:
        raw = params.get("sysparm_fields", "")
        requested = tuple(f.strip() for f in raw.split(",") if f.strip())
        return View(
            fields=renderer.valid_fields(table, requested) if requested else None,
            display=_display_mode(params),
            exclude_links=flag(params, "sysparm_exclude_reference_link"),
        )

    def _renderer(self, session: Session) -> Renderer:
        return Renderer(self.database, self.base_url(), session.zone)

    def _one(self, table: str, record: dict[str, str], request: Request, session: Session) -> dict[str, Any]:
        renderer = self._renderer(session)
        return renderer.render(table, [record], self._view(table, request.args, renderer))[0]

    def read(self, table: str, sys_id: str, request: Request, session: Session) -> Response:
        """``GET /table/{table}/{sys_id}``."""
        record = self.database.table(table).get(sys_id)
        if record is None:
            raise no_record()
        return json_response({"result": self._one(table, record, request, session)})

    def _query(self, table: str, params: MultiDict[str, str]) -> EncodedQuery:
        parsed = parse(params.get("sysparm_query", ""))
        columns = self.database.catalog.columns(table)
        exact = tuple(
            (Condition(name, "=", value, f"{name}={value}"),)
            for name, value in params.items(multi=True)
            if not name.startswith("sysparm_") and name in columns
        )
        if not exact:
            return parsed
        blocks = tuple(block + exact for block in parsed.blocks) or (exact,)
        return EncodedQuery(blocks, parsed.order)

    def list_records(
        self, table: str, request: Request, session: Session, *, version: str | None
    ) -> Response:
        """``GET /table/{table}``: query, page, count, represent."""
        params = request.args
        stored = self.database.table(table)
        context = QueryContext(self.writer.now(), session.zone, session.sys_id, session.user_name)
        compiled = compile_query(
            self._query(table, params), lambda path: self.database.access(table, path), context
        )
        limit = _integer(params, "sysparm_limit", DEFAULT_LIMIT)
        limit = limit if limit > 0 else DEFAULT_LIMIT
        offset = max(0, _integer(params, "sysparm_offset", 0))
        no_count = flag(params, "sysparm_no_count")
        if compiled.dropped and self.settings.invalid_query_returns_no_rows:
            page = Page([], None if no_count else 0, False)
        else:
            page = select(
                stored, compiled, offset=offset, limit=limit, count=not no_count, counts=self.counts
            )
        if version == "v1" and not page.records:
            raise ServiceNowError(
                404,
                "No Record found",
                "Records matching query not found. Check query parameter or offset parameter",
            )
        renderer = self._renderer(session)
        result = renderer.render(table, page.records, self._view(table, params, renderer))
        headers: dict[str, str] = {}
        if page.total is not None:
            headers["X-Total-Count"] = str(page.total)
        if not flag(params, "sysparm_suppress_pagination_header") and (offset > 0 or page.more):
            headers["Link"] = self._links(request, offset, limit, page)
        return json_response({"result": result}, headers=headers)

    def _links(self, request: Request, offset: int, limit: int, page: Page) -> str:
        pairs = [(k, v) for k, v in request.args.items(multi=True) if k != "sysparm_offset"]

        def url(at: int) -> str:
            return f"{self.base_url()}{request.path}?{urlencode([*pairs, ('sysparm_offset', str(at))])}"

        links = [(0, "first")]
        if offset > 0:
            links.append((max(0, offset - limit), "prev"))
        if page.more:
            links.append((offset + limit, "next"))
        if page.total is not None and page.total > 0:
            # The last page on the grid of the current offset, so following ``next`` lands on it.
            links.append((max(0, offset + (page.total - 1 - offset) // limit * limit), "last"))
        return ",".join(f'<{url(at)}>;rel="{rel}"' for at, rel in links)

    def _written(
        self, table: str, record: dict[str, str], request: Request, session: Session, status: int
    ) -> Response:
        if request.headers.get("X-no-response-body", "").lower() == "true":
            return Response(status=status)
        headers = (
            {"Location": f"{self.base_url()}/api/now/table/{table}/{record['sys_id']}"}
            if status == 201
            else {}
        )
        return json_response({"result": self._one(table, record, request, session)}, status, headers)

    @staticmethod
    def _payload(request: Request) -> Any:
        try:
            return read_payload(read_json(request))
        except ValueError:
            raise ServiceNowError(
                400, "Exception while reading request", "The payload is not valid JSON."
            ) from None

    def create(self, table: str, request: Request, session: Session) -> Response:
        """``POST /table/{table}``: 201 with the record and a ``Location`` header."""
        self.database.table(table)
        payload = self._payload(request)
        input_display = flag(request.args, "sysparm_input_display_value")
        record = self.writer.insert(table, payload, session.actor, input_display=input_display)
        return self._written(table, record, request, session, 201)

    def update(self, table: str, sys_id: str, request: Request, session: Session) -> Response:
        """``PUT``/``PATCH /table/{table}/{sys_id}``: partial update, 200 with the record."""
        if self.database.table(table).get(sys_id) is None:
            raise no_record()
        payload = self._payload(request)
        input_display = flag(request.args, "sysparm_input_display_value")
        record = self.writer.update(table, sys_id, payload, session.actor, input_display=input_display)
        return self._written(table, record, request, session, 200)

    def delete(self, table: str, sys_id: str) -> Response:
        """``DELETE /table/{table}/{sys_id}``: 204 without a body."""
        self.writer.delete(table, sys_id)
        return Response(status=204)
