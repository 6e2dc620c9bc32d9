"""Our own stateless services (contrail-api, contrail-analytics-api): config and process."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered
from contrail_ha.topology.plan import ANALYTICS_API, CONFIG_API, LB_AGENT, Instance, Plan

MODULES = {CONFIG_API: "contrail_ha.services.config_api", ANALYTICS_API: "contrail_ha.services.analytics_api",
           LB_AGENT: "contrail_ha.services.lb_agent"}


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
    }


def agent_state(layout: Layout, host: str) -> Path:
    return layout.run(host, LB_AGENT) / "state.json"


def agent_config(plan: Plan, inst: Instance, layout: Layout) -> dict[str, object]:
    from contrail_ha.rendering.haproxy import stats_socket

    return {"host": inst.host.name, "vip": plan.vip, "stats_socket": str(stats_socket(layout, inst.host.name)),
            "state_file": str(agent_state(layout, inst.host.name))}


def render(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    conf = layout.conf(inst.host.name, inst.name)
    logs = layout.logs(inst.host.name, inst.name)
    path = conf / "service.json"
    if inst.component == LB_AGENT:
        cfg = agent_config(plan, inst, layout)
        dirs = [conf, logs, layout.run(inst.host.name, inst.name)]
    else:
        cfg, dirs = service_config(plan, inst), [conf, logs]
    return Rendered(
        files={path: json.dumps(cfg, indent=2) + "\n"},
        dirs=dirs,
        processes=[ProcessSpec(name=inst.name, argv=[sys.executable, "-m", MODULES[inst.component], str(path)],
                               env={"PYTHONUNBUFFERED": "1"}, stop_signal=signal.SIGTERM, stop_timeout=10)],
    )
