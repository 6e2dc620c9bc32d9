"""contrail-analytics-api (port 8081), one stateless replica.

Run as ``python -m contrail_ha.services.analytics_api service.json``. Healthy only with a
ZooKeeper session, an analytics-DB quorum and a Kafka broker.
"""

from __future__ import annotations

import sys

from aiohttp import web

from contrail_ha.services import base
from contrail_ha.services.deps import Cassandra, Kafka, ZooKeeper


async def analytics(request: web.Request) -> web.Response:
    href = f"{request.scheme}://{request.host}"
    return web.json_response([{"name": "uves", "href": f"{href}/analytics/uves"}])


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = base.ServiceConfig.load(args[0])
    deps = [ZooKeeper(cfg.zookeeper), Cassandra("analytics-db", cfg.analytics_db, cfg.analytics_db_port),
            Kafka(cfg.kafka)]
    base.run(args[0], deps, lambda app: app.router.add_get("/analytics", analytics))


if __name__ == "__main__":
    main()
