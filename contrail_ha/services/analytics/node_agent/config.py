"""The node agent's configuration (``agent.json``) and who the agent is: what rendering needs to write it.

Imports nothing from the probes or the agent, so that ``rendering.services`` can import it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import Plan

NODE_TYPE = "NodeAgent"
MODULE = "contrail-node-agent"
AGENT_PROCESS = "node-agent"  # the agent's own process (group ``node``): never in process_info
DEFAULT_PORT = 8100


class AgentConfig(BaseModel):
    """``agent.json``: what one host's agent reports and where it sends it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    listen_ip: str
    listen_port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    state_root: Path  # the cluster's Layout root, e.g. /var/lib/contrail-ha/contrail
    cache: Path  # the Layout cache (jar classpaths)
    topology: dict[str, Any]  # Topology.model_dump(mode="json")
    collectors: list[str] = Field(min_length=1)  # ["ip:8086", ...]
    interval: float = Field(1.0, gt=0)  # process states
    probe_interval: float = Field(5.0, gt=0)  # ZooKeeper, Cassandra, Kafka, HAProxy, BIRD, lb agent
    rabbitmq_interval: float = Field(5.0, gt=0)  # the local node's management API

    @classmethod
    def load(cls, path: str | Path) -> AgentConfig:
        return cls.model_validate(json.loads(Path(path).read_text()))


def config_for(plan: Plan, layout: Layout, host: str, **overrides: Any) -> AgentConfig:
    """The agent configuration of ``host`` (what the renderer writes as ``agent.json``), with ``overrides``."""
    h = plan.topology.host(host)
    d: dict[str, Any] = {
        "host": host, "listen_ip": str(h.ip), "listen_port": getattr(plan.ports, "node_agent", DEFAULT_PORT),
        "state_root": str(layout.root), "cache": str(layout.cache), "topology": plan.topology.model_dump(mode="json"),
        "collectors": [f"{ip}:{plan.ports.collector}" for ip in plan.ips(plan.analytics)]}
    return AgentConfig.model_validate({**d, **overrides})
