"""The objects every Contrail config DB holds, created at start by whichever replica gets there first.

All replicas start at once: each create goes through the same fq-name lock as a client's
create, a 409 means another replica made (or is making) it, and the replica then waits until
the object is readable before creating its children.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contrail_ha.services.config_api.objects import Conflict

log = logging.getLogger(__name__)

# (resource type, fq_name, parent type or None, properties)
DEFAULTS: list[tuple[str, list[str], str | None, dict[str, Any]]] = [
    ("global-system-config", ["default-global-system-config"], None, {"autonomous_system": 64512}),
    ("global-vrouter-config", ["default-global-system-config", "default-global-vrouter-config"],
     "global-system-config", {}),
    ("global-qos-config", ["default-global-system-config", "default-global-qos-config"], "global-system-config", {}),
    ("fabric", ["default-global-system-config", "default-fabric"], "global-system-config", {}),
    ("domain", ["default-domain"], None, {}),
    ("project", ["default-domain", "default-project"], "domain", {}),
    ("namespace", ["default-domain", "default-namespace"], "domain", {}),
    ("network-ipam", ["default-domain", "default-project", "default-network-ipam"], "project", {}),
    ("virtual-network", ["default-domain", "default-project", "default-virtual-network"], "project", {}),
    ("virtual-network", ["default-domain", "default-project", "ip-fabric"], "project",
     {"virtual_network_category": "infra"}),
    ("virtual-network", ["default-domain", "default-project", "__link_local__"], "project", {}),
    ("routing-instance", ["default-domain", "default-project", "ip-fabric", "ip-fabric"], "virtual-network", {}),
    ("routing-instance", ["default-domain", "default-project", "ip-fabric", "__default__"], "virtual-network", {}),
    ("routing-instance", ["default-domain", "default-project", "__link_local__", "__link_local__"],
     "virtual-network", {}),
    ("routing-instance", ["default-domain", "default-project", "default-virtual-network",
                          "default-virtual-network"], "virtual-network", {}),
    ("policy-management", ["default-policy-management"], None, {}),
    ("discovery-service-assignment", ["default-discovery-service-assignment"], None, {}),
    ("security-group", ["default-domain", "default-project", "__no_rule__"], "project", {}),
]


async def ensure_defaults(api: Any, timeout: float = 120) -> int:
    """Create every default object that does not exist yet. Returns how many this replica made."""
    made = 0
    for rtype, fq_name, parent_type, props in DEFAULTS:
        rt = api.schema[rtype]
        body: dict[str, Any] = {"fq_name": fq_name, **props}
        if parent_type:
            body["parent_type"] = parent_type
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if await api.store.fq_name_to_uuid(rt.object_type, fq_name) is not None:
                break
            try:
                await api.create(rt, body, "")
                made += 1
                break
            except Conflict:
                pass  # another replica holds the lock: wait until its object is readable
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"default {rtype} {fq_name} did not appear")
            await asyncio.sleep(0.2)
    log.info("default objects present (%d created by this replica)", made)
    return made
