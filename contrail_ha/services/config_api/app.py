"""Wiring of one contrail-api replica: store, coordination, notifications, hooks, health."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from contrail_ha.services import base
from contrail_ha.services.analytics.generator import Generator
from contrail_ha.services.analytics.nodestatus import NodeStatusReporter
from contrail_ha.services.analytics.protocol import CONFIG_OBJECT_TABLE, Origin
from contrail_ha.services.config_api.core import collection_layout
from contrail_ha.services.config_api.defaults import ensure_defaults
from contrail_ha.services.config_api.ipam import Ipam, complete_subnets
from contrail_ha.services.config_api.objects import ConfigError, NotFound, Obj
from contrail_ha.services.config_api.schema import ResourceType
from contrail_ha.services.config_api.server import ConfigApi, Hooks
from contrail_ha.services.config_api.tags import TagAllocators, TagHooks
from contrail_ha.services.config_api.wire import REQUESTER, TRUSTED_PROXIES, errors
from contrail_ha.services.deps import Cassandra, Dependency

log = logging.getLogger(__name__)


class TypeHooks(Hooks):
    """What the original does per type: VN and SG ids from the ZooKeeper allocators, IPAM; tags
    and tag-types (names, ids, their tag-type) in :mod:`tags`."""

    def __init__(self, vn_ids: Any, sg_ids: Any, ipam: Ipam, store: Any, tags: TagHooks | None = None) -> None:
        self.vn_ids, self.sg_ids, self.ipam, self.store = vn_ids, sg_ids, ipam, store
        self.tags = tags

    def _tags(self, rt: ResourceType) -> TagHooks | None:
        """The tag hooks when ``rt`` is theirs."""
        return self.tags if self.tags is not None and rt.object_type in TagHooks.handles else None

    async def _vn_of(self, obj: Obj) -> Obj | None:
        """The instance-ip's virtual network; None when it has none (no address is allocated then)."""
        refs = obj.get("virtual_network_refs") or []
        if not refs:
            return None
        vn = await self.store.read(refs[0]["uuid"], fields=["network_ipam_refs"])
        if vn is None:
            raise NotFound(f"virtual-network {refs[0]['uuid']} not found")
        return vn

    async def prepare_create(self, rt: ResourceType, body: Obj) -> Obj:
        if (tags := self._tags(rt)) is not None:
            return await tags.prepare_create(rt, body)
        return body

    async def pre_create(self, rt: ResourceType, obj: Obj) -> None:
        if (tags := self._tags(rt)) is not None:
            await tags.pre_create(rt, obj)
            return
        fq = ":".join(obj["fq_name"])
        if rt.object_type == "virtual_network":
            complete_subnets(obj)
            obj["virtual_network_network_id"] = await asyncio.to_thread(self.vn_ids.alloc_id, fq)
        elif rt.object_type == "security_group":
            obj["security_group_id"] = await asyncio.to_thread(self.sg_ids.alloc_id, fq)
        elif rt.object_type == "instance_ip":
            vn = await self._vn_of(obj)
            if vn is None:
                return
            addr, subnet = await self.ipam.allocate(
                vn, obj["uuid"], family=obj.get("instance_ip_family"), subnet_uuid=obj.get("subnet_uuid"),
                address=obj.get("instance_ip_address"))
            obj["instance_ip_address"] = addr
            obj.setdefault("instance_ip_family", subnet.family)

    async def pre_update(self, rt: ResourceType, old: Obj, changes: Obj, refs: dict[str, Any]) -> None:
        if (tags := self._tags(rt)) is not None:
            await tags.pre_update(rt, old, changes, refs)
        elif rt.object_type == "virtual_network" and "network_ipam_refs" in refs:
            complete_subnets({"network_ipam_refs": refs["network_ipam_refs"]})

    async def undo_create(self, rt: ResourceType, obj: Obj) -> None:
        await self.post_delete(rt, obj)

    async def post_delete(self, rt: ResourceType, obj: Obj) -> None:
        if (tags := self._tags(rt)) is not None:
            await tags.post_delete(rt, obj)
            return
        fq = ":".join(obj["fq_name"])
        if rt.object_type == "virtual_network" and obj.get("virtual_network_network_id"):
            await asyncio.to_thread(self.vn_ids.free_id, obj["virtual_network_network_id"], fq)
        elif rt.object_type == "security_group" and obj.get("security_group_id") is not None:
            await asyncio.to_thread(self.sg_ids.free_id, obj["security_group_id"], fq)
        elif rt.object_type == "instance_ip" and obj.get("instance_ip_address"):
            try:
                vn = await self._vn_of(obj)
            except ConfigError:
                return
            if vn is None:
                return
            await self.ipam.free(vn, obj["instance_ip_address"], obj["uuid"])


class Probe(Dependency):
    """A health dependency read from an object with ``ok``/``reason`` (or a ``connected`` flag)."""

    def __init__(self, name: str, target: Any) -> None:
        super().__init__()
        self.name, self.target = name, target

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def refresh(self) -> None:
        t = self.target
        if hasattr(t, "ok"):
            self._set(bool(t.ok), getattr(t, "reason", ""))
        elif getattr(t, "connected", False):
            self._set(True, "session connected")
        elif getattr(t, "within_grace", lambda: False)():
            self._set(True, "session moving to another server")  # writes wait for it meanwhile
        else:
            self._set(False, "no ZooKeeper session")


class Ready(Dependency):
    """Not healthy until the replica finished its start (schema, defaults, notifications)."""

    name = "startup"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._set(False, "starting")


async def _start(cfg: base.ServiceConfig, api: ConfigApi, deps: list[Dependency], ready: Ready) -> None:
    from contrail_ha.services.config_api.clock import ClockGuard
    from contrail_ha.services.config_api.notify import Notifier
    from contrail_ha.services.config_api.store import ConfigStore
    from contrail_ha.services.config_api.zk import Coordinator, security_group_allocator, virtual_network_allocator

    replica = f"{cfg.host}-{cfg.listen_port}"
    while True:
        try:
            store = ConfigStore(cfg.config_db, cfg.config_db_port, cfg.config_db_rf, layout=collection_layout,
                                auth=cfg.cql_login("config_db"))
            await store.start()
            break
        except Exception as e:
            ready._set(False, f"config DB: {e}"[:200])
            await asyncio.sleep(1)
    clock = ClockGuard(store.clock_samples)
    await clock.measure()
    clock.start(asyncio.get_running_loop())
    deps.append(clock)
    api.clock_refusal = clock.refuse_reason
    zk = Coordinator(cfg.zookeeper, cfg.cluster_id, auth=(cfg.zookeeper_user, cfg.zookeeper_password),
                     root_creators=cfg.zookeeper_root_creators)
    await zk.start()
    zk.stale_check = store  # the fq-name lock's stale rule asks Cassandra whether the uuid exists
    zk.stale_lock_seconds = store.link_stale  # and revokes a dead holder (store.revoke) before taking over
    vn_ids = virtual_network_allocator(zk)
    sg_ids = security_group_allocator(zk)
    api.store, api.zk = store, zk
    api.ipam = Ipam(zk)
    tag_ids = TagAllocators(zk)
    tag_hooks = TagHooks(api, tag_ids)  # creates a tag's missing tag-type through api.create
    api.hooks = TypeHooks(vn_ids, sg_ids, api.ipam, store, tag_hooks)

    async def on_message(msg: dict[str, Any]) -> None:
        """Another replica changed an object: drop what this replica caches about it."""
        if msg.get("oper") == "DELETE" and msg.get("uuid"):
            store.forget(msg["uuid"])

    async def on_resync() -> None:
        """Messages may have been missed: trust nothing cached (fq_names are immutable, uuids are not reused)."""
        store.forget_all()
        for alloc in (vn_ids, sg_ids, tag_ids):
            await asyncio.to_thread(alloc.refresh)

    # the local broker first: replicas spread over the brokers and fail over to the others in turn
    brokers = sorted(cfg.rabbitmq, key=lambda b: b.split(":")[0] != cfg.listen_ip)
    notifier = Notifier(brokers, replica, on_message, on_resync, user=cfg.rabbitmq_user,
                        password=cfg.rabbitmq_password)
    api.notifier = notifier
    await notifier.start()
    deps.extend([Probe("zookeeper", zk), Probe("rabbitmq", notifier)])
    while True:
        try:
            await ensure_defaults(api)
            await tag_hooks.ensure_predefined()  # R2005 creates the well-known tag-types at start
            break
        except Exception as e:
            ready._set(False, f"defaults: {e.__class__.__name__}: {e}"[:200])
            await asyncio.sleep(1)
    ready._set(True, "serving")


def config_log(gen: Generator) -> Callable[[str, str, str, list[str], Obj | None, Obj | None], None]:
    """One object log per config change (ConfigObjectTable): who, what, old and new."""
    def audit(oper: str, obj_type: str, uuid: str, fq_name: list[str], old: Obj | None, new: Obj | None) -> None:
        gen.objectlog(CONFIG_OBJECT_TABLE, f"{obj_type}:{':'.join(fq_name)}", "VncApiConfigLog",
                      {"operation": oper, "type": obj_type, "uuid": uuid, "fq_name": fq_name,
                       **(REQUESTER.get() or {}), "old": old, "new": new})
    return audit


def build(cfg: base.ServiceConfig) -> web.Application:
    """The replica's app: answers 503 (with the reason) until its start-up is complete."""
    ready = Ready()
    deps: list[Dependency] = [ready, Cassandra("config-db", cfg.config_db, cfg.config_db_port,
                                               auth=cfg.cql_login("config_db"))]
    api = ConfigApi(None, None, None)
    gen = Generator(Origin(source=cfg.host, node_type="Config", module="contrail-api", instance_id=cfg.name),
                    cfg.collectors) if cfg.collectors else None
    reporter = NodeStatusReporter(gen, deps) if gen is not None else None
    if gen is not None:
        api.audit = config_log(gen)

    @web.middleware
    async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/health" or ready.ok:
            return await handler(request)
        return web.Response(status=503, text=f"contrail-api is starting: {ready.reason}", content_type="text/plain")

    app = web.Application(client_max_size=1024 * 1024 + 1, middlewares=[gate, errors])
    app[base.HEALTH] = deps
    app[TRUSTED_PROXIES] = frozenset(cfg.trusted_proxies)

    app.router.add_get("/health", base.health)  # refreshes the Probe dependencies first
    api.add_routes(app)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        for d in deps:
            d.start(loop)
        app[STARTER] = loop.create_task(_start(cfg, api, deps, ready))
        if gen is not None and reporter is not None:
            gen.start()
            reporter.start()

    async def on_cleanup(app: web.Application) -> None:
        app[STARTER].cancel()
        if gen is not None and reporter is not None:
            reporter.stop()
            await gen.stop(1.0)
        for d in deps:
            d.stop()
        for part in (api.notifier, api.zk, api.store):
            if part is not None:
                await part.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


STARTER = web.AppKey("starter", asyncio.Task)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    cfg = base.ServiceConfig.load(args[0])
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format=f"%(asctime)s {cfg.name}@{cfg.host} %(levelname)s %(name)s: %(message)s")
    web.run_app(build(cfg), host=cfg.listen_ip, port=cfg.listen_port, access_log=None, print=None,
                reuse_address=True)
