"""A service's own NodeStatus: its state and its connections, sent on change and on every refresh.

Each service replica (contrail-api, contrail-analytics-api, collector, aggregator) reports one
``process_status`` entry in the NodeStatus of its node's UVE (``config-node`` or
``analytics-node``, key = host name), with one ``connection_infos`` entry per dependency and
one for the collector link, and ``generator``: whether its generator is stalled (records not
delivered for ``STALL_AFTER_S``, or its queue full) and its drop/truncation counters, which the
``generator-stalled`` alarm reads. The node agent reports ``process_info`` for the same UVE.
The reporter also puts a ``GeneratorHealth`` in the service's health dependencies, so its
``/health`` shows the generator's queue (``degraded`` while stalled) without failing the check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from contrail_ha.services.analytics.generator import Generator, GeneratorHealth
from contrail_ha.services.analytics.protocol import (
    CONN_DOWN,
    CONN_UP,
    FUNCTIONAL,
    NODE_TYPE_TABLE,
    NON_FUNCTIONAL,
    Origin,
)
from contrail_ha.services.deps import Dependency

# Dependency name -> connection type (the original's ConnectionType names).
CONNECTION_TYPES = {"zookeeper": "Zookeeper", "config-db": "Database", "analytics-db": "Database",
                    "rabbitmq": "RabbitMQ", "kafka": "Kafka"}


def connection(dep: Dependency, servers: list[str] | None = None) -> dict[str, Any]:
    return {"type": CONNECTION_TYPES.get(dep.name, dep.name), "name": dep.name, "server_addrs": servers or [],
            "status": CONN_UP if dep.ok else CONN_DOWN, "description": dep.reason}


def process_status(origin: Origin, deps: list[Dependency], gen: Generator | None,
                   extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One ``process_status`` entry: Functional only when every dependency is up; ``generator`` says
    whether this process's records reach the collectors."""
    conns = [connection(d) for d in deps if d.name in CONNECTION_TYPES]
    conns += extra or []
    if gen is not None:
        conns.append(gen.connection_info())
    bad = [f"{d.name}: {d.reason}" for d in deps if not d.ok]
    out: dict[str, Any] = {"module_id": origin.module, "instance_id": origin.instance_id,
           "state": NON_FUNCTIONAL if bad else FUNCTIONAL, "description": "; ".join(bad),
           "connection_infos": sorted(conns, key=lambda c: (c["type"], c["name"]))}
    if gen is not None:
        out["generator"] = gen.report()
    for d in deps:  # a dependency with its own report (the clock guard: the clock-skew alarm reads it)
        report = getattr(d, "node_status", None)
        if callable(report):
            out[d.name] = report()
    return out


class NodeStatusReporter:
    """Every ``interval`` s: rebuild this process's NodeStatus and hand it to the generator if it changed."""

    def __init__(self, gen: Generator, deps: list[Dependency], *,
                 extra_structs: Callable[[], dict[str, dict[str, Any]]] | None = None,
                 interval: float = 1.0, health: bool = True) -> None:
        self.gen, self.deps, self.interval = gen, deps, interval
        # ``deps`` is the service's /health list: show the generator there (not gating, see GeneratorHealth)
        if health and not any(isinstance(d, GeneratorHealth) and d.gen is gen for d in deps):
            deps.append(GeneratorHealth(gen))
        self.extra_structs = extra_structs
        self.table = NODE_TYPE_TABLE[gen.origin.node_type]
        self._last: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        for d in self.deps:
            d.refresh()
        out = {"NodeStatus": {"process_status": [process_status(self.gen.origin, self.deps, self.gen)]}}
        if self.extra_structs is not None:
            out.update(self.extra_structs())
        return out

    def tick(self) -> None:
        for struct, data in self.snapshot().items():
            # the collector link's own wording changes with every batch: compare without it
            if _stable(data) != _stable(self._last.get(struct)):
                self.gen.uve(self.table, self.gen.origin.source, struct, data)
            self._last[struct] = data

    def start(self) -> None:
        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    self.tick()
                await asyncio.sleep(self.interval)
        self._task = asyncio.get_running_loop().create_task(loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _stable(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _stable(v) for k, v in data.items() if not (k == "description" and data.get("type") == "Collector")}
    if isinstance(data, list):
        return [_stable(x) for x in data]
    return data
