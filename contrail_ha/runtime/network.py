"""The local network: one namespace per host on a bridge, an upstream router and a client.

Layout (all namespaces named ``<cluster-id>-<name>``)::

    client --(eth0 / router eth1)-- router --(eth0)--+
                                                     |  bridge br0 in namespace ``sw``
    lb1, lb2, ctrl1 ... --(eth0: hosts[].interface)--+

The root namespace is never touched: the bridge lives in its own namespace, so no route
to the cluster's addresses exists outside it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from contrail_ha.errors import ContrailHaError
from contrail_ha.rendering.bird import ROUTER_IFACE
from contrail_ha.runtime.netns import CLIENT, NETNS_DIR, ROUTER, SWITCH, UTS_DIR, exists, ns_name, uts_file
from contrail_ha.topology.plan import Plan

ETC_NETNS = Path("/etc/netns")
BRIDGE = "br0"


class NetworkError(ContrailHaError, RuntimeError):
    """A namespace or link operation failed."""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def node_names(plan: Plan) -> list[str]:
    """Every namespace of the cluster except the switch: hosts, router, client."""
    return [h.name for h in plan.topology.hosts] + [ROUTER, CLIENT]


def port_name(node: str) -> str:
    """The bridge-side veth of ``node`` inside the switch namespace (<= 15 characters)."""
    return f"p-{node}"[:15]


def _hosts_file(plan: Plan, node: str) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{node}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{h.ip}\t{h.name}" for h in plan.topology.hosts]
    lines.append(f"{plan.router_ip}\t{ROUTER}")
    return "\n".join(lines) + "\n"


def _etc(plan: Plan, node: str) -> None:
    d = ETC_NETNS / ns_name(plan, node)
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts").write_text(_hosts_file(plan, node))
    # A namespace cannot reach the root resolver: fail fast instead of hanging 5 s per lookup.
    (d / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


def _uts(plan: Plan, node: str) -> None:
    f = uts_file(plan, node)
    if f.exists() and _is_mount(f):
        return
    UTS_DIR.mkdir(parents=True, exist_ok=True)
    f.touch()
    _run(["unshare", f"--uts={f}", "hostname", node])


def _is_mount(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def _add_ns(ns: str) -> None:
    if not exists(ns):
        _run(["ip", "netns", "add", ns])
    _run(["ip", "-n", ns, "link", "set", "lo", "up"])


def _link_exists(ns: str, dev: str) -> bool:
    return _run(["ip", "-n", ns, "link", "show", dev], check=False).returncode == 0


def _sysctl(ns: str, key: str, value: str) -> None:
    _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])


def create(plan: Plan, progress: Callable[[str], None] = lambda _m: None) -> None:
    """Create (idempotently) every namespace, link, address and route of the cluster."""
    sw = ns_name(plan, SWITCH)
    _add_ns(sw)
    if not _link_exists(sw, BRIDGE):
        _run(["ip", "-n", sw, "link", "add", BRIDGE, "type", "bridge"])
    _run(["ip", "-n", sw, "link", "set", BRIDGE, "up"])
    prefix = plan.network.prefixlen
    # (namespace, address, interface): each host's link is named as its topology says (BIRD runs on it)
    nodes: list[tuple[str, str, str]] = [(ROUTER, plan.router_ip, ROUTER_IFACE)] + [
        (h.name, str(h.ip), h.interface) for h in plan.topology.hosts]
    for node, ip, iface in nodes:
        ns = ns_name(plan, node)
        _add_ns(ns)
        port = port_name(node)
        if not _link_exists(sw, port):
            _run(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", iface, "netns", ns])
        _run(["ip", "-n", sw, "link", "set", port, "master", BRIDGE, "up"])
        _run(["ip", "-n", ns, "addr", "replace", f"{ip}/{prefix}", "dev", iface])
        _run(["ip", "-n", ns, "link", "set", iface, "up"])
        if node != ROUTER:
            _run(["ip", "-n", ns, "route", "replace", "default", "via", plan.router_ip])
        _etc(plan, node)
        _uts(plan, node)
        progress(f"namespace {ns} ({ip})")
    # the client's own link to the router
    rtr, cli = ns_name(plan, ROUTER), ns_name(plan, CLIENT)
    r_ip, c_ip = plan.client_link
    cprefix = plan.topology.cluster.client_network.prefixlen
    _add_ns(cli)
    if not _link_exists(rtr, "eth1"):
        _run(["ip", "-n", rtr, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", cli])
    _run(["ip", "-n", rtr, "addr", "replace", f"{r_ip}/{cprefix}", "dev", "eth1"])
    _run(["ip", "-n", rtr, "link", "set", "eth1", "up"])
    _run(["ip", "-n", cli, "addr", "replace", f"{c_ip}/{cprefix}", "dev", "eth0"])
    _run(["ip", "-n", cli, "link", "set", "eth0", "up"])
    _run(["ip", "-n", cli, "route", "replace", "default", "via", r_ip])
    _sysctl(rtr, "net.ipv4.ip_forward", "1")
    _etc(plan, CLIENT)
    _uts(plan, CLIENT)
    progress(f"namespace {cli} ({c_ip})")
    for h in plan.lbs:
        ns = ns_name(plan, h.name)
        # HAProxy may bind the VIP even while the lb agent has withdrawn it from lo.
        _sysctl(ns, "net.ipv4.ip_nonlocal_bind", "1")
        _run(["ip", "-n", ns, "addr", "replace", f"{plan.vip}/32", "dev", "lo"])


def namespaces(plan: Plan) -> list[str]:
    """Every namespace of the cluster that exists now."""
    names = [ns_name(plan, n) for n in [*node_names(plan), SWITCH]]
    return [n for n in names if exists(n)]


def pids_in(ns: str) -> list[int]:
    p = _run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split()]


def destroy(plan: Plan) -> list[str]:
    """Delete every namespace, UTS mount and /etc/netns entry of the cluster. Returns what remained."""
    leftovers: list[str] = []
    for node in [*node_names(plan), SWITCH]:
        ns = ns_name(plan, node)
        if exists(ns):
            p = _run(["ip", "netns", "del", ns], check=False)
            if p.returncode != 0:
                leftovers.append(f"namespace {ns}: {p.stderr.strip()}")
        f = uts_file(plan, node)
        if f.exists():
            if _is_mount(f):
                _run(["umount", str(f)], check=False)
            if _is_mount(f):
                leftovers.append(f"uts mount {f}")
            else:
                f.unlink(missing_ok=True)
        d = ETC_NETNS / ns
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
    for node in [*node_names(plan), SWITCH]:
        if (NETNS_DIR / ns_name(plan, node)).exists():
            leftovers.append(f"namespace {ns_name(plan, node)}")
    return leftovers


def set_link(plan: Plan, node: str, up: bool) -> None:
    """Pull or plug ``node``'s cable (its port on the bridge)."""
    _run(["ip", "-n", ns_name(plan, SWITCH), "link", "set", port_name(node), "up" if up else "down"])


def link_is_up(plan: Plan, node: str) -> bool:
    """Whether ``node``'s cable (its port on the bridge) is plugged (administratively up)."""
    p = subprocess.run(["ip", "-n", ns_name(plan, SWITCH), "-o", "link", "show", port_name(node)],
                       capture_output=True, text=True)
    flags = p.stdout.split("<", 1)[-1].split(">", 1)[0].split(",")
    return p.returncode == 0 and "UP" in flags


def nft_has_table(plan: Plan, node: str, table: str, family: str = "inet") -> bool:
    """Whether ``node``'s namespace has the nftables table."""
    p = subprocess.run(["ip", "netns", "exec", ns_name(plan, node), "nft", "list", "table", family, table],
                       capture_output=True, text=True)
    return p.returncode == 0


def nft(plan: Plan, node: str, script: str) -> None:
    """Apply an nftables script inside ``node``'s namespace (the fault drills' partitions)."""
    p = subprocess.run(["ip", "netns", "exec", ns_name(plan, node), "nft", "-f", "-"], input=script,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise NetworkError(f"nft in {node}: {p.stderr.strip() or p.stdout.strip()}")
