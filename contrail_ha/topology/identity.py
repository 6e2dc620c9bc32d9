"""Stable identities of the clustered stores' members: ZooKeeper ``myid``, Kafka ``broker.id`` and
which Cassandra nodes are seeds.

A member's data belongs to its identity: a ZooKeeper server that comes back under another myid
votes with a log that is not its own, a broker under another id serves partitions it never
replicated, and a node that becomes a seed while its data directory is empty never bootstraps
(it owns token ranges without their data). So an identity is assigned once, recorded in the
running cluster's state root, and kept: removing or reordering hosts in the topology changes
nothing, a new host takes the next number never used, and a change that would renumber a member
is refused. A host's ``identity`` in the topology pins a value instead (the way to replace a
dead broker under its old id, or to promote a node that has its data to a seed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contrail_ha.errors import ContrailHaError
from contrail_ha.topology.model import Host, Identity, Role, Topology

RECORD_FILE = "identity.json"
SEEDS_PER_RING = 3


@dataclass(frozen=True)
class Numbered:
    """An identity that is a number per member of a role."""

    key: str
    role: Role
    first: int
    what: str


@dataclass(frozen=True)
class Seeds:
    """Which members of a Cassandra ring (the hosts of a role) are its seeds."""

    key: str
    role: Role
    ring: str
    members_of: str  # the Numbered key whose recorded hosts are this ring's members so far


NUMBERED = (
    Numbered("zookeeper_myid", Role.CONTROLLER, 1, "ZooKeeper myid"),
    Numbered("kafka_broker_id", Role.ANALYTICSDB, 0, "Kafka broker.id"),
)
SEEDS = (
    Seeds("config_db_seed", Role.CONTROLLER, "config-DB", "zookeeper_myid"),
    Seeds("analytics_db_seed", Role.ANALYTICSDB, "analytics-DB", "kafka_broker_id"),
)

Record = dict[str, Any]  # {"zookeeper_myid": {host: n}, ..., "config_db_seed": [host, ...], ...}
Found = tuple[str, str]  # (key path, message)


class IdentityChange(ContrailHaError, ValueError):
    """The topology would renumber a member of a running cluster; ``problems`` name each key."""

    def __init__(self, problems: list[Found]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


def _path(topology: Topology, host: Host, key: str) -> str:
    return f"hosts[{topology.hosts.index(host)}].identity.{key}"


def check_pins(topology: Topology) -> list[Found]:
    """What is wrong with the pinned identities alone (no record needed): a pin on a host without
    the role, a number pinned twice, every member of a ring pinned as a non-seed."""
    out: list[Found] = []
    for n in NUMBERED:
        seen: dict[int, str] = {}
        for h in topology.hosts:
            v = getattr(h.identity, n.key)
            if v is None:
                continue
            if not h.has(n.role):
                out.append((_path(topology, h, n.key), f"{h.name} is not a {n.role.value} host; remove the pin"))
            elif v in seen:
                out.append((_path(topology, h, n.key), f"{n.what} {v} is pinned for {seen[v]} too"))
            else:
                seen[v] = h.name
    for s in SEEDS:
        members = topology.with_role(s.role)
        for h in topology.hosts:
            if getattr(h.identity, s.key) is not None and not h.has(s.role):
                out.append((_path(topology, h, s.key), f"{h.name} is not a {s.role.value} host; remove the pin"))
        if members and all(getattr(h.identity, s.key) is False for h in members):
            out.append((_path(topology, members[0], s.key),
                        f"every {s.ring} node is pinned as a non-seed; the ring needs at least one seed"))
    return out


def resolve(topology: Topology, record: Record | None = None) -> tuple[Topology, list[Found]]:
    """``topology`` with every member's identity set (pins, else the record, else assigned), and
    what would renumber a recorded member. Without a record nothing is refused: numbers follow
    file order (skipping pinned ones) and the first three members of a ring are its seeds."""
    rec = record or {}
    problems: list[Found] = []
    values: dict[str, dict[str, Any]] = {h.name: {} for h in topology.hosts}
    for n in NUMBERED:
        for name, v in _numbers(topology, n, dict(rec.get(n.key) or {}), problems).items():
            values[name][n.key] = v
    for s in SEEDS:
        members = set((rec.get(s.members_of) or {}).keys())
        seeds = _seeds(topology, s, rec.get(s.key) or None, members, problems)
        for h in topology.with_role(s.role):
            values[h.name][s.key] = h.name in seeds
    hosts = [h.model_copy(update={"identity": Identity(**values[h.name])}) for h in topology.hosts]
    return topology.model_copy(update={"hosts": hosts}), problems


def _numbers(topology: Topology, n: Numbered, rec: dict[str, int], problems: list[Found]) -> dict[str, int]:
    hosts = topology.with_role(n.role)
    present = {h.name for h in hosts}
    out: dict[str, int] = {}
    for h in hosts:
        pin = getattr(h.identity, n.key)
        if pin is None:
            if h.name in rec:
                out[h.name] = rec[h.name]
            continue
        if h.name in rec and rec[h.name] != pin:
            problems.append((_path(topology, h, n.key),
                             f"{h.name} is {n.what} {rec[h.name]} in the running cluster; pinning {pin} would "
                             f"renumber it (its data belongs to {rec[h.name]}): pin {rec[h.name]} or remove the pin"))
        holders = sorted(o for o, v in rec.items() if v == pin and o != h.name and o in present)
        if holders:
            problems.append((_path(topology, h, n.key),
                             f"{n.what} {pin} belongs to {', '.join(holders)} in the running cluster"))
        out[h.name] = pin
    used = set(rec.values()) | set(out.values())
    for h in hosts:
        if h.name not in out:
            v = n.first
            while v in used:
                v += 1
            out[h.name] = v
            used.add(v)
    return out


def _seeds(topology: Topology, s: Seeds, recorded: list[str] | None, members: set[str],
           problems: list[Found]) -> set[str]:
    hosts = topology.with_role(s.role)
    pins = {h.name: getattr(h.identity, s.key) for h in hosts}
    if recorded is None:
        pinned = {n for n, p in pins.items() if p}
        return pinned or set([h.name for h in hosts if pins[h.name] is not False][:SEEDS_PER_RING])
    chosen: set[str] = set()
    for h in hosts:
        if pins[h.name] is True and h.name not in recorded and h.name not in members:
            problems.append((_path(topology, h, s.key),
                             f"{h.name} is a new {s.ring} node: a seed does not bootstrap, so it would own "
                             "token ranges without their data; add it as a non-seed first, pin it once it has joined"))
        elif pins[h.name] is True or (h.name in recorded and pins[h.name] is not False):
            chosen.add(h.name)
    if hosts and not chosen and not problems:
        problems.append((_path(topology, hosts[0], s.key),
                         f"no seed of the running {s.ring} ring ({', '.join(recorded)}) is left; pin an existing "
                         f"node with identity.{s.key}: true (or `contrail-ha down --purge` to start over "
                         "without the data)"))
    return chosen


def record_path(root: Path) -> Path:
    return root / RECORD_FILE


def recorded(root: Path) -> Record | None:
    """The identities a cluster in ``root`` was given, or None (never up, or purged)."""
    f = record_path(root)
    try:
        return dict(json.loads(f.read_text()))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ContrailHaError(f"{f}: unreadable identity record ({e}); restore it from a backup") from e


def with_record(topology: Topology, root: Path) -> Topology:
    """``topology`` resolved against the record in ``root``; IdentityChange when it would renumber."""
    resolved, problems = resolve(topology, recorded(root))
    if problems:
        raise IdentityChange(problems)
    return resolved


def write_record(root: Path, topology: Topology) -> None:
    """Record ``topology``'s identities (hosts no longer in it keep their numbers: never reused)."""
    old = recorded(root) or {}
    out: Record = {}
    for n in NUMBERED:
        out[n.key] = {**(old.get(n.key) or {}),
                      **{h.name: getattr(h.identity, n.key) for h in topology.with_role(n.role)}}
    for s in SEEDS:
        out[s.key] = [h.name for h in topology.with_role(s.role) if getattr(h.identity, s.key)]
    root.mkdir(parents=True, exist_ok=True)
    tmp = record_path(root).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, record_path(root))
