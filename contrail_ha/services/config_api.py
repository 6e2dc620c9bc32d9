"""contrail-api: the VNC configuration API (port 8082), one stateless replica.

Run as ``python -m contrail_ha.services.config_api service.json``. Healthy (for HAProxy) only
when it can serve writes: a ZooKeeper session, a config-DB quorum and a RabbitMQ channel.
"""

from __future__ import annotations

import sys

from aiohttp import web

from contrail_ha.services import base
from contrail_ha.services.deps import Cassandra, RabbitMQ, ZooKeeper


async def homepage(request: web.Request) -> web.Response:
    href = f"{request.scheme}://{request.host}"
    return web.json_response({"href": href, "links": []})


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = base.ServiceConfig.load(args[0])
    deps = [ZooKeeper(cfg.zookeeper), Cassandra("config-db", cfg.config_db, cfg.config_db_port),
            RabbitMQ(cfg.rabbitmq)]
    base.run(args[0], deps, lambda app: app.router.add_get("/", homepage))


if __name__ == "__main__":
    main()
