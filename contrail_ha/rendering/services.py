"""Our own services: contrail-api, contrail-analytics-api, collector, aggregator, lb agent, node agent.

Each gets one JSON config (the original's ``*.conf``) and one supervised Python process.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from contrail_ha.rendering import cassandra, kafka
from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered, python
from contrail_ha.services.analytics.node_agent.config import config_for  # only the config: no probes, no agent
from contrail_ha.topology.plan import (
    AGGREGATOR,
    ANALYTICS_API,
    ANALYTICS_DB,
    COLLECTOR,
    CONFIG_API,
    CONFIG_DB,
    LB_AGENT,
    NODE_AGENT,
    Instance,
    Plan,
)

MODULES = {CONFIG_API: "contrail_ha.services.config_api", ANALYTICS_API: "contrail_ha.services.analytics.api",
           COLLECTOR: "contrail_ha.services.analytics.collector",
           AGGREGATOR: "contrail_ha.services.analytics.aggregator",
           LB_AGENT: "contrail_ha.services.lb_agent", NODE_AGENT: "contrail_ha.services.analytics.node_agent"}


def service_config(plan: Plan, inst: Instance) -> dict[str, object]:
    """The replica's configuration: lists of node IPs for every clustered component, never the VIP."""
    p, rep = plan.ports, plan.topology.replication
    return {
        "name": inst.name,
        "host": inst.host.name,
        "cluster_id": plan.cluster_id,
        "listen_ip": inst.ip,
        "listen_port": inst.port,
        "zookeeper": plan.zookeeper_servers,
        "rabbitmq": plan.rabbitmq_servers,
        "config_db": plan.ips(plan.controllers),
        "config_db_port": p.config_db_cql,
        "config_db_rf": rep.config_db,
        "analytics_db": plan.ips(plan.analyticsdb),
        "analytics_db_port": p.analytics_db_cql,
        "analytics_db_rf": rep.analytics_db,
        "kafka": plan.kafka_servers,
        "collectors": [f"{ip}:{p.collector}" for ip in plan.ips(plan.analytics)],
        "trusted_proxies": [*plan.ips(plan.lbs), plan.vip],
        "uve_partitions": plan.topology.cluster.uve_partitions,
        "kafka_rf": rep.kafka,
        "kafka_min_insync": rep.kafka_min_insync,
    }


def agent_state(layout: Layout, host: str) -> Path:
    return layout.run(host, LB_AGENT) / "state.json"


def agent_config(plan: Plan, inst: Instance, layout: Layout) -> dict[str, object]:
    from contrail_ha.rendering.haproxy import stats_socket

    return {"host": inst.host.name, "vip": plan.vip, "stats_socket": str(stats_socket(layout, inst.host.name)),
            "state_file": str(agent_state(layout, inst.host.name))}


def node_agent_config(plan: Plan, inst: Instance, layout: Layout) -> dict[str, object]:
    """The node agent builds its own plan from the topology, to find its host's processes and components."""
    return config_for(plan, layout, inst.host.name).model_dump(mode="json")


def render(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    conf = layout.conf(inst.host.name, inst.name)
    logs = layout.logs(inst.host.name, inst.name)
    path = conf / "service.json"
    if inst.component == LB_AGENT:
        cfg = agent_config(plan, inst, layout)
        dirs = [conf, logs, layout.run(inst.host.name, inst.name)]
    elif inst.component == NODE_AGENT:
        cfg, dirs = node_agent_config(plan, inst, layout), [conf, logs]
    else:
        cfg, dirs = service_config(plan, inst), [conf, logs]
    modes = {}
    if inst.component == CONFIG_API:  # its own logins (the file is readable by it only)
        from contrail_ha.rendering import rabbitmq, zookeeper

        user, pw = cassandra.login(layout, CONFIG_DB, cassandra.CLIENT_ROLE[CONFIG_DB])
        cfg.update(rabbitmq_user=rabbitmq.API_USER, rabbitmq_password=rabbitmq.password(layout, rabbitmq.API_USER),
                   zookeeper_user=zookeeper.API_USER, zookeeper_password=zookeeper.password(layout, zookeeper.API_USER),
                   zookeeper_root_creators=[zookeeper.KAFKA_USER],  # the brokers' chroot
                   config_db_user=user, config_db_password=pw)
        modes[path] = 0o600
    elif inst.component in (ANALYTICS_API, AGGREGATOR):  # the analytics DB's client role
        user, pw = cassandra.login(layout, ANALYTICS_DB, cassandra.CLIENT_ROLE[ANALYTICS_DB])
        cfg.update(analytics_db_user=user, analytics_db_password=pw)
        modes[path] = 0o600
    if inst.component in (COLLECTOR, AGGREGATOR):  # its Kafka user
        user, pw = kafka.login(layout, kafka.COLLECTOR_USER if inst.component == COLLECTOR else kafka.AGGREGATOR_USER)
        cfg.update(kafka_user=user, kafka_password=pw)
        modes[path] = 0o600
    return Rendered(
        files={path: json.dumps(cfg, indent=2) + "\n"},
        modes=modes,
        dirs=dirs,
        processes=[ProcessSpec(name=inst.name, argv=[python(), "-m", MODULES[inst.component], str(path)],
                               env={"PYTHONUNBUFFERED": "1"}, stop_signal=signal.SIGTERM, stop_timeout=10,
                               health="" if inst.component == LB_AGENT else f"http://{inst.address}/health")],
    )
