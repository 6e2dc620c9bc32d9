"""The node agent (the original's contrail-nodemgr): one per host, reporting its processes and components.

Run inside the host's namespaces as ``python -m contrail_ha.services.analytics.node_agent agent.json``.

Every ``interval`` it reads the ``state.json`` of each role supervisor of its host and sends, per UVE
table the host has (``config-node``, ``config-database-node``, ``analytics-node``, ``database-node``,
``lb-node``; key = host name), a ``NodeStatus`` with the ``process_info`` of that table's processes
and the agent's own ``process_status``. Every ``probe_interval`` (``rabbitmq_interval`` for
``rabbitmqctl``, which starts an Erlang VM) it asks the host's components for their state, as the
local node sees it: ``ZookeeperStatus``, ``RabbitmqStatus``, ``CassandraStatus`` (config DB and
analytics DB), ``KafkaStatus``, ``HaproxyStatus``, ``LbAgentStatus``, ``BirdStatus``.

A struct is handed to the generator only when it changed (the generator re-sends the whole state
as heartbeat). Probes that block run in threads, one at a time each, under their own timeouts, so
a hung component never delays the process states. A failing probe is reported in its struct
(``detail``) and logged once per new error.

``GET /health`` answers 200 once the processes were collected once; ``GET /status`` returns the
structs last sent, per UVE table.

The pure parts (state.json -> ``process_info``, component -> table, the struct builders) are plain
functions, tested with literal inputs.

Modules: ``config`` (``agent.json``: what rendering writes; imports nothing from the probes),
``processes`` (state.json -> ``process_info``), ``structs`` (the component structs),
``publisher`` (sending on change), ``probing`` (the blocking probes), ``agent`` (the service, ``main``).
This package re-exports their names, each imported on first use: importing ``node_agent.config``
(as ``rendering.services`` does) loads neither the probes nor the agent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contrail_ha.services.analytics.node_agent.agent import Agent, main
    from contrail_ha.services.analytics.node_agent.config import (
        AGENT_PROCESS,
        DEFAULT_PORT,
        MODULE,
        NODE_TYPE,
        AgentConfig,
        config_for,
    )
    from contrail_ha.services.analytics.node_agent.probing import (
        BIRD_TIMEOUT,
        CQL_CONNECT_TIMEOUT,
        CQL_REQUEST_TIMEOUT,
        HAPROXY_TIMEOUT,
        KAFKA_TIMEOUT,
        PROBE_HARD_TIMEOUT,
        RABBITMQ_TIMEOUT,
        ZK_TIMEOUT,
        CassandraWatcher,
        Probe,
        local_runner,
    )
    from contrail_ha.services.analytics.node_agent.processes import (
        ANALYTICS_NODE,
        COMPONENT_TABLE,
        CONFIG_DATABASE_NODE,
        CONFIG_NODE,
        DATABASE_NODE,
        LB_NODE,
        ROLE_TABLE,
        ROLES,
        SUPERVISOR_STATE,
        TABLE_ROLE,
        component_of,
        expected_processes,
        host_tables,
        process_entry,
        process_infos,
        process_state,
        read_state,
        table_of,
    )
    from contrail_ha.services.analytics.node_agent.publisher import (
        VOLATILE_FIELDS,
        VOLATILE_REFRESH_S,
        Publisher,
        UveSink,
        stable,
    )
    from contrail_ha.services.analytics.node_agent.structs import (
        BIRD_STATUS,
        CASSANDRA_STATUS,
        HAPROXY_STATUS,
        HEARTBEAT_STALE_S,
        KAFKA_STATUS,
        LB_AGENT_STALE_S,
        LB_AGENT_STATUS,
        NODE_STATUS,
        RABBITMQ_STATUS,
        ZOOKEEPER_STATUS,
        HeartbeatTracker,
        bird_status,
        cassandra_status,
        haproxy_status,
        kafka_status,
        lb_agent_status,
        rabbitmq_status,
        zookeeper_status,
    )

# submodules, each after those it imports: a name is looked up in them in this order
_SUBMODULES = ("config", "processes", "structs", "publisher", "probing", "agent")

__all__ = [  # the names of the former module node_agent.py, each from its submodule
    "AGENT_PROCESS", "ANALYTICS_NODE", "BIRD_STATUS", "BIRD_TIMEOUT", "CASSANDRA_STATUS", "COMPONENT_TABLE",
    "CONFIG_DATABASE_NODE", "CONFIG_NODE", "CQL_CONNECT_TIMEOUT", "CQL_REQUEST_TIMEOUT", "DATABASE_NODE",
    "DEFAULT_PORT", "HAPROXY_STATUS", "HAPROXY_TIMEOUT", "HEARTBEAT_STALE_S", "KAFKA_STATUS", "KAFKA_TIMEOUT",
    "LB_AGENT_STALE_S", "LB_AGENT_STATUS", "LB_NODE", "MODULE", "NODE_STATUS", "NODE_TYPE", "PROBE_HARD_TIMEOUT",
    "RABBITMQ_STATUS", "RABBITMQ_TIMEOUT", "ROLES", "ROLE_TABLE", "SUPERVISOR_STATE", "TABLE_ROLE",
    "VOLATILE_FIELDS", "VOLATILE_REFRESH_S", "ZK_TIMEOUT", "ZOOKEEPER_STATUS", "Agent", "AgentConfig",
    "CassandraWatcher", "HeartbeatTracker", "Probe", "Publisher", "UveSink", "bird_status", "cassandra_status",
    "component_of", "config_for", "expected_processes", "haproxy_status", "host_tables", "kafka_status",
    "lb_agent_status", "local_runner", "main", "process_entry", "process_infos", "process_state",
    "rabbitmq_status", "read_state", "stable", "table_of", "zookeeper_status",
]


def __getattr__(name: str) -> object:
    """A re-exported name, from its submodule (imported now if it was not yet)."""
    if name in __all__:
        for sub in _SUBMODULES:
            module = importlib.import_module(f"{__name__}.{sub}")
            if hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
