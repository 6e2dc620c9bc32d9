"""contrail-analytics-api (port 8081): UVEs, alarms and queries read from the analytics DB.

Routes (the original's shapes; ``<base>`` is ``scheme://host`` of the request)::

    GET  /analytics                         links: uves, uve-types, alarms, tables, query
    GET  /analytics/uves                    one link per UVE type (``config-nodes``, ...)
    GET  /analytics/uve-types               {type: {"global_system_object": true, "table": ...}}
    GET  /analytics/uves/<type>s            [{"name": key, "href": ...}]; kfilt, sfilt, mfilt, cfilt
    POST /analytics/uves/<type>s            {"kfilt", "cfilt", "sfilt", "mfilt"} -> {"value": [...]}
    GET  /analytics/uves/<type>/<key>       the aggregated UVE (+ UVEAlarms), {} if absent; ``*`` in key
                                            -> {"value": [{"name", "value"}]}
    GET  /analytics/alarms[?type=<type>]    {type: [{"name": key, "value": {"UVEAlarms": ...}}]}
    GET  /analytics/tables                  [{"name", "href", "type": LOG|OBJECT}]
    GET  /analytics/table/<t>[/schema]      links / {"type", "columns": [...]}
    POST /analytics/query                   the synchronous query (see ``query``) -> {"value": [...]}

Client errors are ``text/plain`` 4xx naming the problem (400 bad input, 404 unknown type or
table, 413 body over 1 MB); 503 with the reason when the analytics DB cannot serve.
Healthy (``/health``) while a quorum of the analytics DB is up and the store is connected.

Run as ``python -m contrail_ha.services.analytics.api service.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from contrail_ha.errors import ContrailHaError
from contrail_ha.services import base, proxied
from contrail_ha.services.analytics import query
from contrail_ha.services.analytics.collector import origin_of
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.nodestatus import NodeStatusReporter
from contrail_ha.services.analytics.protocol import UVE_TABLES, UVE_TYPES
from contrail_ha.services.analytics.query import BadRequest, NotFound, UveFilter
from contrail_ha.services.analytics.store import AnalyticsStore, StoreUnavailable
from contrail_ha.services.deps import Cassandra, Dependency

log = logging.getLogger("analytics-api")

MAX_BODY = 1024 * 1024
TEXT = "text/plain"
ROOT_LINKS = ("uves", "uve-types", "alarms", "tables", "query")


class PayloadTooLarge(ContrailHaError):
    """The request body is over ``MAX_BODY``: 413."""


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type=TEXT)


@web.middleware
async def errors(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """BadRequest 400, NotFound 404, PayloadTooLarge 413, StoreUnavailable 503; anything else 500, logged."""
    try:
        return await handler(request)
    except BadRequest as e:
        return _text(400, str(e))
    except NotFound as e:
        return _text(404, str(e))
    except (PayloadTooLarge, web.HTTPRequestEntityTooLarge):
        return _text(413, f"request body too large: more than {MAX_BODY} bytes")
    except StoreUnavailable as e:
        return _text(503, str(e))
    except web.HTTPException:
        raise
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return _text(500, f"internal error ({e.__class__.__name__}); see the analytics-api log")


_base = proxied.base


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body: 413 over ``MAX_BODY``, 400 when malformed."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge()
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BadRequest(f"malformed JSON: {e}"[:300]) from e


class AnalyticsApi:
    """The route handlers of one replica, reading through ``store``."""

    def __init__(self, cfg: base.ServiceConfig | None, store: AnalyticsStore,
                 serving: Callable[[], bool] | None = None) -> None:
        self.cfg, self._store = cfg, store
        # False while the store is not started (503 then): an unstarted AnalyticsStore has no statements
        self.serving: Callable[[], bool] = serving or (lambda: store.started)

    @property
    def store(self) -> AnalyticsStore:
        """The store, or StoreUnavailable (503) while it is not started yet."""
        if not self.serving():
            raise StoreUnavailable("analytics DB: not connected yet (the store is starting)")
        return self._store

    # --- links -------------------------------------------------------------------------------------
    async def h_root(self, request: web.Request) -> web.Response:
        b = _base(request)
        return web.json_response([{"name": n, "href": f"{b}/analytics/{n}"} for n in ROOT_LINKS])

    async def h_uves(self, request: web.Request) -> web.Response:
        b = _base(request)
        return web.json_response([{"name": f"{t}s", "href": f"{b}/analytics/uves/{t}s"} for t in UVE_TYPES])

    async def h_uve_types(self, request: web.Request) -> web.Response:
        return web.json_response({t: {"global_system_object": True, "table": tbl} for t, tbl in UVE_TYPES.items()})

    # --- UVEs --------------------------------------------------------------------------------------
    async def _matching(self, table: str, flt: UveFilter) -> list[tuple[str, dict[str, Any]]]:
        """``(key, view)`` of every UVE of ``table`` that passes ``flt``, by key."""
        out = []
        for row in await self.store.uves(table):
            if flt.key_ok(row["key"]):
                view = flt.view(row)
                if view:
                    out.append((row["key"], view))
        return sorted(out, key=lambda kv: kv[0])

    async def h_uve_list(self, request: web.Request) -> web.Response:
        type_name = query.uve_list_type(request.match_info["types"])
        flt = UveFilter.from_query(request.query)
        b = _base(request)
        found = await self._matching(query.uve_table(type_name), flt)
        return web.json_response([{"name": k, "href": f"{b}/analytics/uves/{type_name}/{k}"} for k, _ in found])

    async def h_uve_post(self, request: web.Request) -> web.Response:
        type_name = query.uve_list_type(request.match_info["types"])
        flt = UveFilter.from_body(await _json_body(request))
        found = await self._matching(query.uve_table(type_name), flt)
        return web.json_response({"value": [{"name": k, "value": v} for k, v in found]})

    async def h_uve(self, request: web.Request) -> web.Response:
        table = query.uve_table(request.match_info["type"])
        name = request.match_info["name"]
        if "*" in name:
            flt = dataclasses.replace(UveFilter.from_query(request.query), kfilt=(name,))  # name: the key pattern
            found = await self._matching(table, flt)
            return web.json_response({"value": [{"name": k, "value": v} for k, v in found]})
        flt = UveFilter.from_query(request.query)
        row = await self.store.uve(table, name)
        return web.json_response(flt.view(row) if row is not None else {})

    async def h_alarms(self, request: web.Request) -> web.Response:
        only = request.query.get("type")
        if only is not None:
            query.uve_table(only)
        out: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(await self.store.all_uves(), key=lambda r: (r["tbl"], r["key"])):
            type_name = UVE_TABLES.get(row["tbl"])
            if type_name is None or not row["alarms"] or (only is not None and type_name != only):
                continue
            out.setdefault(type_name, []).append(
                {"name": row["key"], "value": {"UVEAlarms": {"alarms": row["alarms"]}}})
        return web.json_response(out)

    # --- tables and queries ------------------------------------------------------------------------
    async def h_tables(self, request: web.Request) -> web.Response:
        b = _base(request)
        return web.json_response([{"name": t, "href": f"{b}/analytics/table/{t}", "type": kind}
                                  for t, kind in query.tables().items()])

    async def h_table(self, request: web.Request) -> web.Response:
        t = request.match_info["table"]
        query.table_type(t)
        return web.json_response([{"name": "schema", "href": f"{_base(request)}/analytics/table/{t}/schema"}])

    async def h_schema(self, request: web.Request) -> web.Response:
        return web.json_response(query.schema_json(request.match_info["table"]))

    async def h_query(self, request: web.Request) -> web.Response:
        q = query.parse_query(await _json_body(request))
        rows = await query.run(q, self.store)
        log.info("query %s %d..%d: %d rows", q.table, q.start_us, q.end_us, len(rows))
        return web.json_response({"value": rows})


def add_routes(app: web.Application, api: AnalyticsApi) -> None:
    """The error middleware and every /analytics route (the app must not be frozen yet)."""
    app.middlewares.append(errors)
    r = app.router
    r.add_get("/analytics", api.h_root)
    r.add_get("/analytics/uves", api.h_uves)
    r.add_get("/analytics/uve-types", api.h_uve_types)
    r.add_get("/analytics/uves/{types}", api.h_uve_list)
    r.add_post("/analytics/uves/{types}", api.h_uve_post)
    r.add_get("/analytics/uves/{type}/{name:.+}", api.h_uve)
    r.add_get("/analytics/alarms", api.h_alarms)
    r.add_get("/analytics/tables", api.h_tables)
    r.add_get("/analytics/table/{table}", api.h_table)
    r.add_get("/analytics/table/{table}/schema", api.h_schema)
    r.add_post("/analytics/query", api.h_query)


def build(cfg: base.ServiceConfig | None, store: AnalyticsStore) -> web.Application:
    """The API on ``store`` (started by the caller), without health or generator: for tests."""
    app = web.Application(client_max_size=MAX_BODY + 1)
    add_routes(app, AnalyticsApi(cfg, store))
    return app


class StoreReady(Dependency):
    """Healthy once the store is connected and its schema in place."""

    name = "analytics-store"

    def __init__(self, store: AnalyticsStore) -> None:
        super().__init__()
        self.store = store

        self.connected = False  # set once ``store.start()`` returned (schema and statements ready)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._set(False, "connecting to the analytics DB")

    def up(self) -> None:
        self.connected = True
        self.refresh()

    def failed(self, reason: str) -> None:
        self._set(False, reason[:200])

    def serving(self) -> bool:
        return self.connected and self.store.started

    def refresh(self) -> None:
        if self.serving():
            self._set(True, "connected, schema ready")
        elif self.connected:
            self._set(False, "store closed")


CONNECT = web.AppKey("analytics-api-connect", asyncio.Task)
REPORTER = web.AppKey("analytics-api-reporter", NodeStatusReporter)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = base.ServiceConfig.load(args[0])
    store = AnalyticsStore(cfg.analytics_db, cfg.analytics_db_port, cfg.analytics_db_rf,
                           auth=cfg.cql_login("analytics_db"))
    ready = StoreReady(store)
    deps: list[Dependency] = [Cassandra("analytics-db", cfg.analytics_db, cfg.analytics_db_port,
                                        auth=cfg.cql_login("analytics_db")), ready]
    gen = Generator(origin_of(cfg, "Analytics", "contrail-analytics-api"), cfg.collectors)

    def routes(app: web.Application) -> None:
        app[proxied.TRUSTED_PROXIES] = frozenset(cfg.trusted_proxies)
        add_routes(app, AnalyticsApi(cfg, store, ready.serving))

        async def connect() -> None:
            while True:
                try:
                    await store.start()
                    ready.up()
                    log.info("analytics DB store ready")
                    return
                except StoreUnavailable as e:
                    ready.failed(str(e))
                    log.warning("%s; retrying", e)
                    await asyncio.sleep(1)

        async def started(app: web.Application) -> None:
            app[CONNECT] = asyncio.get_running_loop().create_task(connect())
            gen.start()
            reporter = NodeStatusReporter(gen, deps)
            reporter.start()
            app[REPORTER] = reporter

        async def stopping(app: web.Application) -> None:
            app[CONNECT].cancel()
            app[REPORTER].stop()
            await gen.stop(1.0)
            await store.close()

        app.on_startup.append(started)
        app.on_cleanup.append(stopping)

    base.run(args[0], deps, routes, client_max_size=MAX_BODY + 1)


if __name__ == "__main__":
    main()
