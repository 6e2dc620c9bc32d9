"""Process states: each role supervisor's ``state.json`` -> the ``process_info`` of each UVE table.

Pure functions, tested with literal inputs; only ``read_state`` touches the disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from contrail_ha.rendering.base import Layout
from contrail_ha.runtime.supervisor_state import SupervisorDir
from contrail_ha.services.analytics.node_agent.config import AGENT_PROCESS
from contrail_ha.services.analytics.protocol import (
    PROCESS_BACKOFF,
    PROCESS_EXITED,
    PROCESS_RUNNING,
    PROCESS_STARTING,
    PROCESS_STOPPED,
    UVE_TYPES,
)
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import RABBITMQ, Plan

# UVE tables (by their REST type, so a typo cannot slip through)
CONFIG_NODE = UVE_TYPES["config-node"]  # ObjectConfigNode
CONFIG_DATABASE_NODE = UVE_TYPES["config-database-node"]  # ObjectConfigDatabaseInfo
ANALYTICS_NODE = UVE_TYPES["analytics-node"]  # ObjectCollectorInfo
DATABASE_NODE = UVE_TYPES["database-node"]  # ObjectDatabaseInfo
LB_NODE = UVE_TYPES["lb-node"]  # ObjectLbNode

# Component (process name without its ``-<n>`` replica suffix) -> the UVE table of its process_info.
COMPONENT_TABLE: dict[str, str] = {
    "config-api": CONFIG_NODE,
    "zookeeper": CONFIG_DATABASE_NODE,
    "rabbitmq": CONFIG_DATABASE_NODE,
    "epmd": CONFIG_DATABASE_NODE,
    "config-db": CONFIG_DATABASE_NODE,
    "analytics-api": ANALYTICS_NODE,
    "collector": ANALYTICS_NODE,
    "aggregator": ANALYTICS_NODE,
    "analytics-db": DATABASE_NODE,
    "kafka": DATABASE_NODE,
    "haproxy": LB_NODE,
    "bird": LB_NODE,
    "lb-agent": LB_NODE,
}
# A process of a role that the table above does not name still gets reported, in its role's table.
ROLE_TABLE: dict[str, str] = {Role.CONTROLLER.value: CONFIG_NODE, Role.ANALYTICS.value: ANALYTICS_NODE,
                              Role.ANALYTICSDB.value: DATABASE_NODE, Role.LB.value: LB_NODE}
ROLES = tuple(ROLE_TABLE)  # the supervisor groups whose state.json the agent reads
# Each table's processes belong to one role (the supervisor group that runs them).
TABLE_ROLE: dict[str, str] = {CONFIG_NODE: Role.CONTROLLER.value, CONFIG_DATABASE_NODE: Role.CONTROLLER.value,
                              ANALYTICS_NODE: Role.ANALYTICS.value, DATABASE_NODE: Role.ANALYTICSDB.value,
                              LB_NODE: Role.LB.value}

# Supervisor state (runtime.supervisor._write_state) -> process state.
SUPERVISOR_STATE: dict[str, str] = {
    "running": PROCESS_RUNNING,
    "held": PROCESS_STOPPED,
    "backoff": PROCESS_BACKOFF,
    "starting": PROCESS_STARTING,
    "joining": PROCESS_STARTING,  # a new member waiting for its peers before its first start
    "disabled": PROCESS_STOPPED,
}

_REPLICA = re.compile(r"^(?P<component>.+)-\d+$")


def component_of(process: str) -> str:
    """``config-api-2`` -> ``config-api``; names without a replica suffix are their component."""
    m = _REPLICA.match(process)
    return m.group("component") if m else process


def table_of(process: str, role: str | None = None) -> str | None:
    """The UVE table of a process's ``process_info`` (None for the agent itself or an unknown process)."""
    if process == AGENT_PROCESS:
        return None
    return COMPONENT_TABLE.get(component_of(process)) or (ROLE_TABLE.get(role) if role else None)


def process_state(supervisor_state: str) -> str:
    """A supervisor state (running, held, backoff, starting, disabled) as a ProcessState name."""
    return SUPERVISOR_STATE.get(supervisor_state, PROCESS_EXITED)


def process_entry(name: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """One ``process_info`` entry from a process of ``state.json``."""
    restarts = int(p.get("restarts") or 0)
    started = p.get("pid") is not None or restarts > 0 or bool(p.get("last_exit"))
    return {"process_name": name, "process_state": process_state(str(p.get("state", ""))), "pid": p.get("pid"),
            "start_count": restarts + 1 if started else 0, "last_exit": str(p.get("last_exit") or ""),
            "uptime_s": float(p.get("uptime") or 0)}


def expected_processes(plan: Plan, host: str) -> list[str]:
    """The processes the plan puts on ``host`` that the agent reports (rabbitmq brings epmd)."""
    out: list[str] = []
    for inst in plan.on(host):
        if inst.component == RABBITMQ:
            out.append("epmd")
        if table_of(inst.name) is not None:
            out.append(inst.name)
    return out


def host_tables(plan: Plan, host: str) -> list[str]:
    """The UVE tables ``host`` reports to, sorted."""
    return sorted({t for p in expected_processes(plan, host) if (t := table_of(p)) is not None})


def process_infos(states: Mapping[str, Mapping[str, Any] | None], expected: Iterable[str] = (),
                  alive: Callable[[int], bool] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{table: [process_info entry, ...]}`` from each role's ``state.json`` (``None``: missing).

    A process the plan expects but no supervisor reports is PROCESS_STATE_STOPPED. With ``alive``,
    the processes of a role whose supervisor is gone are checked one by one: still running
    (unsupervised), or PROCESS_STATE_EXITED.
    """
    entries: dict[str, dict[str, Any]] = {}
    tables: dict[str, str] = {}
    for role, state in states.items():
        if not state:
            continue
        spid = state.get("supervisor_pid")
        gone = alive is not None and not (isinstance(spid, int) and alive(spid))
        for name, p in (state.get("processes") or {}).items():
            table = table_of(name, role)
            if table is None:
                continue
            e = process_entry(name, p)
            if gone:
                pid = p.get("pid")
                why = f"supervisor {spid} not running"
                if p.get("state") == "running" and isinstance(pid, int) and alive is not None and alive(pid):
                    e["last_exit"] = f"{why} (unsupervised)"
                else:
                    e.update(process_state=PROCESS_EXITED, pid=None, uptime_s=0.0,
                             last_exit=f"{why}; {e['last_exit']}" if e["last_exit"] else why)
            entries[name], tables[name] = e, table
    for name in expected:
        table = table_of(name)
        if name not in entries and table is not None:
            entries[name] = {"process_name": name, "process_state": PROCESS_STOPPED, "pid": None, "start_count": 0,
                             "last_exit": "no supervisor reports it", "uptime_s": 0.0}
            tables[name] = table
    out: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(entries):
        out.setdefault(tables[name], []).append(entries[name])
    return out


def read_state(layout: Layout, host: str, role: str) -> dict[str, Any] | None:
    """``<root>/hosts/<host>/supervisor/<role>/state.json``, None when missing or unreadable."""
    return SupervisorDir.of_host(layout, host, role).state()
