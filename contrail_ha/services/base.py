"""What our stateless services share: their rendered config, the health endpoint, start-up."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contrail_ha.services.deps import Dependency


class ServiceConfig(BaseModel):
    """The rendered ``service.json`` of one replica (the original's contrail-api.conf)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    host: str
    cluster_id: str
    listen_ip: str
    listen_port: int
    zookeeper: str  # "ip:port,ip:port" (every controller)
    rabbitmq: list[str]  # ["ip:port", ...] (every controller)
    rabbitmq_user: str = ""  # contrail-api only: its own RabbitMQ user and generated password
    rabbitmq_password: str = Field("", repr=False)
    zookeeper_user: str = ""  # contrail-api only: its ZooKeeper digest identity (owns the cluster's znodes)
    zookeeper_password: str = Field("", repr=False)
    zookeeper_root_creators: list[str] = []  # contrail-api only: SASL identities that may create at ZooKeeper's root
    config_db_user: str = ""  # contrail-api only: its Cassandra role (PasswordAuthenticator) and password
    config_db_password: str = Field("", repr=False)
    analytics_db_user: str = ""  # the analytics' Cassandra role (analytics-api, aggregator)
    analytics_db_password: str = Field("", repr=False)
    config_db: list[str]  # controller IPs
    config_db_port: int
    config_db_rf: int
    analytics_db: list[str]  # analyticsdb IPs
    analytics_db_port: int
    analytics_db_rf: int
    kafka: str  # "ip:port,..."
    kafka_user: str = ""  # the collector's or the aggregator's Kafka user (SASL/SCRAM)
    kafka_password: str = Field("", repr=False)
    collectors: list[str]  # ["ip:port", ...] (every analytics host)
    trusted_proxies: list[str] = []  # the lbs' addresses (and the VIP): whose X-Forwarded-For is believed
    uve_partitions: int = 30
    kafka_rf: int = 3
    kafka_min_insync: int = 2

    def cql_login(self, db: str) -> tuple[str, str] | None:
        """``(role, password)`` for the ``config_db`` or ``analytics_db`` cluster; None: no login."""
        user = getattr(self, f"{db}_user")
        return (user, getattr(self, f"{db}_password")) if user else None

    def kafka_login(self) -> tuple[str, str] | None:
        """``(user, password)`` for the brokers; None: no login."""
        return (self.kafka_user, self.kafka_password) if self.kafka_user else None

    @classmethod
    def load(cls, path: str | Path) -> ServiceConfig:
        return cls.model_validate(json.loads(Path(path).read_text()))


HEALTH = web.AppKey("health", list[Dependency])


async def until_stopped() -> None:
    """Return on the first SIGTERM or SIGINT: a service's main waits here, then cleans up."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop


async def health(request: web.Request) -> web.Response:
    """200 when every dependency is healthy; 503 with the reasons otherwise (HAProxy checks this)."""
    deps = request.app[HEALTH]
    for d in deps:
        d.refresh()
    body = {d.name: d.status() for d in deps}
    ok = all(d.ok for d in deps)
    if "text" in request.query:
        bad = "; ".join(f"{d.name}: {d.reason}" for d in deps if not d.ok)
        return web.Response(status=200 if ok else 503, text="ok" if ok else bad, content_type="text/plain")
    return web.json_response({"ok": ok, "dependencies": body}, status=200 if ok else 503)


def run(config_path: str, deps: list[Dependency],
        routes: Callable[[web.Application], Awaitable[None] | None] | None = None,
        client_max_size: int = 1024 * 1024) -> None:
    """Serve one replica until SIGTERM."""
    cfg = ServiceConfig.load(config_path)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s {cfg.name}@{cfg.host} %(levelname)s %(name)s: %(message)s")
    app = web.Application(client_max_size=client_max_size)
    app[HEALTH] = deps
    app.router.add_get("/health", health)
    if routes is not None:
        routes(app)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for d in deps:
            d.start(loop)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, cfg.listen_ip, cfg.listen_port, reuse_address=True).start()
        logging.info("listening on %s:%s", cfg.listen_ip, cfg.listen_port)
        await until_stopped()
        await runner.cleanup()
        for d in deps:
            d.stop()

    asyncio.run(main())
