"""The drill's fault catalogue: what each fault breaks, how it is injected and healed, and the
smallest topology that survives it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contrail_ha.operations import faults
from contrail_ha.rendering.base import Layout
from contrail_ha.services.config_api.rows import LINK_STALE_S
from contrail_ha.topology.plan import (
    ANALYTICS_DB,
    CONFIG_API,
    CONFIG_DB,
    KAFKA,
    RABBITMQ,
    ZOOKEEPER,
    Plan,
)

PAUSE_S = LINK_STALE_S + 5.0  # a pause outlasts a create's claim window (and every client timeout below it)


@dataclass(frozen=True)
class Fault:
    """One fault: what it breaks, and the smallest topology that survives it."""

    name: str
    description: str
    needs: Callable[[Plan], str | None]  # None if the topology survives it, else why not
    inject: Callable[[Plan, Layout], dict[str, Any]]  # returns what was done (for heal)
    heal: Callable[[Plan, Layout, dict[str, Any]], None]
    min_seconds: float = 0.0  # held at least this long (a pause outlasts every timeout in the path)

    @property
    def over_ssh(self) -> bool:
        """Whether it can be injected into a cluster deployed over SSH: process kills, done in their
        containers there, and a host's containers all killed (:mod:`.faults_remote`)."""
        return self.heal in (_heal_processes, _recover_host)


def _at_least(attr: str, n: int, what: str) -> Callable[[Plan], str | None]:
    def check(plan: Plan) -> str | None:
        have = len(getattr(plan, attr))
        return None if have >= n else f"needs at least {n} {what} hosts to survive (the topology has {have})"
    return check


def _kill(component: str, pick: Callable[[Plan], str]) -> Callable[[Plan, Layout], dict[str, Any]]:
    def inject(plan: Plan, layout: Layout) -> dict[str, Any]:
        from contrail_ha.rendering.haproxy import server_name

        host = pick(plan)
        inst = plan.instance(component, host)
        faults.kill(plan, layout, host, inst.name, hold=True)
        done: dict[str, Any] = {"host": host, "processes": [inst.name]}
        if component == CONFIG_API:  # a server of the lbs' backends: how fast it leaves rotation
            done["server"] = server_name(inst)
        return done
    return inject


def _pause(component: str, pick: Callable[[Plan], str]) -> Callable[[Plan, Layout], dict[str, Any]]:
    def inject(plan: Plan, layout: Layout) -> dict[str, Any]:
        host = pick(plan)
        inst = plan.instance(component, host)
        faults.pause(plan, layout, host, inst.name)
        return {"host": host, "paused": [inst.name]}
    return inject


def _resume(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    for name in done.get("paused", []):
        faults.resume(plan, layout, done["host"], name)


def _skew(component: str, pick: Callable[[Plan], str], seconds: float) -> Callable[[Plan, Layout], dict[str, Any]]:
    def inject(plan: Plan, layout: Layout) -> dict[str, Any]:
        host = pick(plan)
        inst = plan.instance(component, host)
        faults.skew(plan, layout, host, inst.name, seconds)
        return {"host": host, "skewed": [inst.name], "seconds": seconds}
    return inject


def _unskew(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    for name in done.get("skewed", []):
        faults.unskew(plan, layout, done["host"], name)


def _heal_processes(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    for name in done.get("processes", []):
        faults.heal(plan, layout, done["host"], name)


def _last(component: str) -> Callable[[Plan], str]:
    return lambda plan: plan.of(component)[-1].host.name


def _zk_leader(plan: Plan) -> str:
    from contrail_ha.probes import zookeeper

    leader = zookeeper.leader(plan)
    if leader is None:
        raise RuntimeError("ZooKeeper has no leader to kill")
    return leader.host.name


def _active_lb(plan: Plan) -> str:
    from contrail_ha.probes import bird

    gw = bird.kernel_route(plan).get("gateway")
    return next(h.name for h in plan.lbs if str(h.ip) == gw)


def _kill_lb(plan: Plan, layout: Layout) -> dict[str, Any]:
    host = _active_lb(plan)
    names = ["lb-agent", "bird", "haproxy"]
    for n in names:
        faults.kill(plan, layout, host, n, hold=True)
    return {"host": host, "processes": names}


def _cut_lb(plan: Plan, layout: Layout) -> dict[str, Any]:
    host = _active_lb(plan)
    faults.cut_link(plan, host)
    return {"host": host, "link": True}


def _restore(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    faults.restore_link(plan, done["host"])


def _partition_controller(plan: Plan, layout: Layout) -> dict[str, Any]:
    """The last controller loses the other controllers (the lbs and clients still reach it)."""
    host = plan.controllers[-1].name
    peers = [h.name for h in plan.controllers if h.name != host]
    faults.partition(plan, host, peers)
    return {"host": host, "peers": peers, "minority": _config_api_address(plan, host)}


def _heal_partition(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    faults.heal_partition(plan, done["host"])


def _kill_host(plan: Plan, layout: Layout) -> dict[str, Any]:
    """The last controller host dies at once (every role on it: on containers, all its containers)."""
    host = plan.controllers[-1].name
    return {"host": host, "killed": faults.kill_host(plan, layout, host)}


def _recover_host(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
    faults.recover_host(plan, layout, done["host"])


def _config_api_address(plan: Plan, host: str) -> str:
    return plan.instance(CONFIG_API, host).address


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("api-replica", "kill -9 one contrail-api replica", _at_least("controllers", 2, "controller"),
          _kill(CONFIG_API, _last(CONFIG_API)), _heal_processes),
    Fault("zk-leader", "kill -9 the ZooKeeper leader", _at_least("controllers", 3, "controller"),
          _kill(ZOOKEEPER, _zk_leader), _heal_processes),
    Fault("lb-kill", "kill -9 the active lb's HAProxy, BIRD and lb agent", _at_least("lbs", 2, "lb"),
          _kill_lb, _heal_processes),
    Fault("lb-link", "cut the active lb's link", _at_least("lbs", 2, "lb"), _cut_lb, _restore),
    Fault("rabbitmq-node", "kill -9 a RabbitMQ node", _at_least("controllers", 3, "controller"),
          _kill(RABBITMQ, _last(RABBITMQ)), _heal_processes),
    Fault("config-db-node", "kill -9 a config-DB Cassandra node", _at_least("controllers", 3, "controller"),
          _kill(CONFIG_DB, _last(CONFIG_DB)), _heal_processes),
    Fault("analytics-db-node", "kill -9 an analytics-DB Cassandra node", _at_least("analyticsdb", 3, "analyticsdb"),
          _kill(ANALYTICS_DB, _last(ANALYTICS_DB)), _heal_processes),
    Fault("kafka-broker", "kill -9 a Kafka broker", _at_least("analyticsdb", 3, "analyticsdb"),
          _kill(KAFKA, _last(KAFKA)), _heal_processes),
    Fault("controller-partition", "partition one controller host from the other controllers",
          _at_least("controllers", 3, "controller"), _partition_controller, _heal_partition, PAUSE_S),
    Fault("host-kill", "kill -9 everything of one controller host at once (on containers: all its containers)",
          _at_least("controllers", 3, "controller"), _kill_host, _recover_host),
    # Pauses (SIGSTOP): the process keeps its sockets and answers nothing. Pauses and the partition
    # are held longer than every timeout in the write path (a create's claim window is 15 s).
    Fault("api-pause", "SIGSTOP one contrail-api replica", _at_least("controllers", 2, "controller"),
          _pause(CONFIG_API, _last(CONFIG_API)), _resume, PAUSE_S),
    Fault("config-db-pause", "SIGSTOP a config-DB Cassandra node", _at_least("controllers", 3, "controller"),
          _pause(CONFIG_DB, _last(CONFIG_DB)), _resume, PAUSE_S),
    Fault("zk-leader-pause", "SIGSTOP the ZooKeeper leader", _at_least("controllers", 3, "controller"),
          _pause(ZOOKEEPER, _zk_leader), _resume, PAUSE_S),
    Fault("rabbitmq-pause", "SIGSTOP a RabbitMQ node", _at_least("controllers", 3, "controller"),
          _pause(RABBITMQ, _last(RABBITMQ)), _resume, PAUSE_S),
    Fault("kafka-pause", "SIGSTOP a Kafka broker", _at_least("analyticsdb", 3, "analyticsdb"),
          _pause(KAFKA, _last(KAFKA)), _resume, PAUSE_S),
    # A clock 60 s ahead (libfaketime): the replica must refuse writes rather than win every conflict.
    Fault("api-clock-skew", "restart one contrail-api replica with its clock 60 s ahead",
          _at_least("controllers", 2, "controller"), _skew(CONFIG_API, _last(CONFIG_API), 60.0), _unskew),
]}


def fault_named(name: str) -> Fault:
    """A fault of the catalogue, or several at once (``a+b``: injected in that order, held together
    as long as the longest needs, healed in the reverse order)."""
    parts = [FAULTS[n] for n in name.split("+")]
    if len(parts) == 1:
        return parts[0]
    if len({p.name for p in parts}) != len(parts):
        raise ValueError(f"{name}: a fault appears twice")

    def needs(plan: Plan) -> str | None:
        return next((f"{p.name} {why}" for p in parts if (why := p.needs(plan))), None)

    def inject(plan: Plan, layout: Layout) -> dict[str, Any]:
        done: list[dict[str, Any]] = []
        try:
            for p in parts:
                done.append(p.inject(plan, layout))
        except BaseException:
            for p, d in reversed(list(zip(parts, done, strict=False))):
                p.heal(plan, layout, d)
            raise
        merged: dict[str, Any] = {}
        for d in done:  # the first part's host, server and minority (what the drill watches)
            merged.update({k: v for k, v in d.items() if k not in merged})
        merged["parts"] = done
        merged["hosts"] = [d.get("host") for d in done]
        return merged

    def heal(plan: Plan, layout: Layout, done: dict[str, Any]) -> None:
        for p, d in reversed(list(zip(parts, done["parts"], strict=True))):
            p.heal(plan, layout, d)

    return Fault(name, " and ".join(p.description for p in parts), needs, inject, heal,
                 max(p.min_seconds for p in parts))
