"""Small topologies for tests that run real servers on loopback addresses (127.0.X.Y)."""

from __future__ import annotations

from contrail_ha.topology.model import Topology
from contrail_ha.topology.plan import Plan


def loopback_plan(prefix: str, n: int = 1, roles: tuple[str, ...] = ("controller", "analytics", "analyticsdb"),
                  **overrides: object) -> Plan:
    """A plan whose hosts are ``<prefix>.1 .. <prefix>.n`` (e.g. prefix ``127.0.10``), plus one lb host.

    Cross-field checks are skipped (loopback is not a valid cluster network for real use).
    """
    rf = min(n, 3)
    data: dict = {
        "cluster": {"id": "test", "vip": f"{prefix}.200", "network": f"{prefix}.0/24"},
        "replication": {"config_db": rf, "analytics_db": rf, "kafka": rf, "kafka_min_insync": min(rf, 2)},
        "heap": {"config_db": 256, "analytics_db": 256, "zookeeper": 128, "kafka": 256},
        "hosts": [{"name": "lb1", "ip": f"{prefix}.100", "roles": ["lb"]}]
        + [{"name": f"n{i}", "ip": f"{prefix}.{i}", "roles": list(roles)} for i in range(1, n + 1)],
    }
    for k, v in overrides.items():
        data[k] = v
    return Plan(Topology.model_validate(data))
