"""Load and validate a topology: every problem named by its key, with the fix.

``load_topology`` never raises on bad content; it returns a ``Report`` listing every error
and warning, so ``contrail-ha validate`` can print them all at once.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from contrail_ha.errors import ContrailHaError
from contrail_ha.topology.identity import check_pins
from contrail_ha.topology.model import Role, Topology
from contrail_ha.topology.plan import Plan


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` is the key it is about, e.g. ``hosts[2].ip``."""

    path: str
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class Report:
    """The outcome of validating one topology file."""

    topology: Topology | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.topology is not None and not self.errors

    def plan(self) -> Plan:
        if not self.ok or self.topology is None:
            raise TopologyError(self)
        return Plan(self.topology)


class TopologyError(ContrailHaError):
    """Raised when a caller needs a valid topology and the file is not one."""

    def __init__(self, report: Report) -> None:
        self.report = report
        super().__init__("\n".join(str(p) for p in report.errors))


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _loc(loc)
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling (see `contrail-ha init` for every key)"
        elif kind == "missing":
            msg = "required key is missing; add it"
        elif kind == "enum":
            msg = f"{e['msg'].lower()}, got {e.get('input')!r}"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and not isinstance(e["input"], dict | list):
                msg += f" (got {e['input']!r})"
        problems.append(Problem(path, msg))
    return problems


def parse(data: Any) -> Report:
    """Validate already-loaded YAML data."""
    if not isinstance(data, dict):
        return Report(problems=[Problem("(top level)", "the topology must be a mapping with cluster and hosts")])
    try:
        topo = Topology.model_validate(data)
    except ValidationError as e:
        return Report(problems=_pydantic_problems(e))
    return Report(topology=topo, problems=check(topo))


def load_topology(path: str | Path) -> Report:
    """Read and validate a topology file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        return Report(problems=[Problem(str(p), f"cannot read the topology file: {e.strerror}")])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else str(p)
        return Report(problems=[Problem(where, f"not valid YAML: {getattr(e, 'problem', e)}")])
    return parse(data)


def check(t: Topology) -> list[Problem]:
    """Cross-field rules a single key cannot express."""
    out: list[Problem] = []
    add = out.append
    by_role = {r: t.with_role(r) for r in Role}
    host_idx = {h.name: i for i, h in enumerate(t.hosts)}

    # unique names and IPs
    for attr in ("name", "ip"):
        counts = Counter(str(getattr(h, attr)) for h in t.hosts)
        for i, h in enumerate(t.hosts):
            v = str(getattr(h, attr))
            if counts[v] > 1:
                first = next(j for j, o in enumerate(t.hosts) if str(getattr(o, attr)) == v)
                if first != i:
                    add(Problem(f"hosts[{i}].{attr}", f"duplicate {attr} {v} (also hosts[{first}]); "
                                f"give every host its own {attr}"))

    # roles present
    for role in Role:
        if not by_role[role]:
            add(Problem("hosts", f"no host has role '{role}'; add '{role}' to the roles of at least one host"))

    # ZooKeeper quorum: odd controller count (the seed's note)
    n_ctrl = len(by_role[Role.CONTROLLER])
    if n_ctrl and n_ctrl % 2 == 0:
        add(Problem("hosts", f"{n_ctrl} hosts have role 'controller'; only an odd number is supported "
                    "(ZooKeeper leader election needs a strict majority): use "
                    f"{n_ctrl - 1} or {n_ctrl + 1} controllers"))

    # lb tier
    n_lb = len(by_role[Role.LB])
    if n_lb == 1:
        add(Problem("hosts", "only one host has role 'lb': the VIP has no fail-over; "
                    "add a second lb host for HA", "warning"))
    if n_ctrl == 1:
        add(Problem("hosts", "one controller: no HA for contrail-api, Cassandra, ZooKeeper, RabbitMQ "
                    "(development only)", "warning"))

    # replication factors
    rf_rules = [
        ("replication.config_db", t.replication.config_db, n_ctrl, "controller"),
        ("replication.analytics_db", t.replication.analytics_db, len(by_role[Role.ANALYTICSDB]), "analyticsdb"),
        ("replication.kafka", t.replication.kafka, len(by_role[Role.ANALYTICSDB]), "analyticsdb"),
    ]
    for path, rf, nodes, role_name in rf_rules:
        if nodes and rf > nodes:
            add(Problem(path, f"replication factor {rf} is more than the {nodes} '{role_name}' host(s); "
                        f"set it to at most {nodes} or add hosts"))
    if t.replication.kafka_min_insync > t.replication.kafka:
        add(Problem("replication.kafka_min_insync",
                    f"min.insync.replicas {t.replication.kafka_min_insync} is more than the Kafka "
                    f"replication factor {t.replication.kafka}; set it to at most {t.replication.kafka}"))

    # addressing
    c = t.cluster
    net = c.network
    router_ip = t.lb.router_ip or next(net.hosts(), None)
    if t.lb.router_ip is not None and (t.lb.router_ip not in net or t.lb.router_ip in (net.network_address,
                                                                                        net.broadcast_address)):
        add(Problem("lb.router_ip", f"{t.lb.router_ip} is not a usable address of cluster.network {net}; "
                    "the lbs peer with the router on the hosts' network"))
    if net.num_addresses < 4:
        add(Problem("cluster.network", f"{net} is too small; use a /29 or larger"))
    for i, h in enumerate(t.hosts):
        if h.ip not in net:
            add(Problem(f"hosts[{i}].ip", f"{h.ip} is outside cluster.network {net}; use an address inside it"))
        elif h.ip in (net.network_address, net.broadcast_address):
            add(Problem(f"hosts[{i}].ip", f"{h.ip} is the network or broadcast address of {net}"))
        elif h.ip == router_ip:
            add(Problem(f"hosts[{i}].ip", f"{h.ip} is the router's address (lb.router_ip, by default the "
                        f"first of {net}); use another address"))
    if c.vip in net:
        add(Problem("cluster.vip", f"VIP {c.vip} is inside cluster.network {net}; it must be outside the "
                    "hosts' network (it is announced by routing), e.g. in another /24"))
    for i, h in enumerate(t.hosts):
        if h.ip == c.vip:
            add(Problem("cluster.vip", f"VIP {c.vip} is the address of hosts[{i}] ({h.name}); "
                        "pick an address no host has"))
    if c.client_network.overlaps(net):
        add(Problem("cluster.client_network", f"{c.client_network} overlaps cluster.network {net}"))
    if c.vip in c.client_network:
        add(Problem("cluster.client_network", f"{c.client_network} contains the VIP {c.vip}"))
    if c.client_network.num_addresses < 4:
        add(Problem("cluster.client_network", "needs at least two usable addresses (a /30)"))
    if ipaddress.IPv4Address("127.0.0.1") in net:
        add(Problem("cluster.network", "loopback addresses cannot be a cluster network"))

    # pinned identities (a running cluster's record is checked where it is read: identity.with_record)
    for path, msg in check_pins(t):
        add(Problem(path, msg))

    # lb ASNs
    if t.lb.router_asn == t.lb.lb_asn:
        add(Problem("lb.lb_asn", "must differ from lb.router_asn (eBGP between lbs and the router)"))

    # the site's own VIP certificate: both files, readable, a certificate and its key
    if (t.tls.cert is None) != (t.tls.key is None):
        add(Problem("tls.key" if t.tls.key is None else "tls.cert",
                    "give both tls.cert and tls.key (the site's certificate and its key), or neither"))
    elif t.tls.cert is not None and t.tls.key is not None:
        for path, msg in site_certificate_problems(t.tls.cert, t.tls.key):
            add(Problem(path, msg))

    # port clashes on each host (colocation!)
    if not any(p.severity == "error" for p in out):
        plan = Plan(t)
        for h in t.hosts:
            binds = [b for inst in plan.on(h) for b in inst.bindings]
            for a_i, a in enumerate(binds):
                for b in binds[a_i + 1:]:
                    if a.clashes(b):
                        add(Problem(f"hosts[{host_idx[h.name]}]",
                                    f"port clash on {h.name}: {a} and {b} bind the same port; "
                                    + _clash_fix(a.owner, b.owner)))
    return out


def site_certificate_problems(cert: str, key: str) -> list[tuple[str, str]]:
    """What is wrong with the site's certificate and key files (nothing: ``[]``)."""
    from contrail_ha.rendering import pki

    try:
        pki.load_site(cert, key)
    except pki.SiteCertificateError as e:
        return [(f"tls.{e.field}", str(e))]
    return []


def _clash_fix(a: str, b: str) -> str:
    if "haproxy" in a or "haproxy" in b:
        return "set lb.bind: vip (HAProxy then listens on the VIP only) or change the port under ports"
    return "change one of the ports under ports"
