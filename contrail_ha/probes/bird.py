"""BIRD and VIP probes: ``birdc`` on each lb and on the router, ``ip route get`` in the router.

BIRD's control sockets are files under the cluster's state directory, so ``birdc -s`` needs
no namespace; only the kernel route lookup runs in the router's namespace (``ip -n``).

Checks:

- ``bird`` / ``<lb host>``: the lb's session with the router is Established (BGP), or the router
  is among its Babel neighbours; ``data`` says whether the lb currently exports the VIP.
- ``bird`` / ``router``: the router's BIRD answers and has at least one lb session (BGP) or
  Babel neighbour; per-lb states in ``data``.
- ``vip`` / ``cluster``: the router's kernel route to the VIP points at an lb whose BIRD check
  is ok.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from contrail_ha.errors import ContrailHaError
from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.bird import (
    LB_PROTO,
    ROUTER_BABEL_PROTO,
    ROUTER_IFACE,
    router_bgp_proto,
    router_socket_path,
    socket_path,
)
from contrail_ha.runtime import netns
from contrail_ha.topology.model import LbProtocol
from contrail_ha.topology.plan import BIRD, Instance, Plan

COMPONENT = BIRD
VIP_COMPONENT = "vip"
ROUTER_TARGET = netns.ROUTER
CLUSTER_TARGET = "cluster"
TIMEOUT = 3.0
BABEL_INFINITY = 0xFFFF

_ROUTE_RE = re.compile(
    r"^(?P<net>\S+)?\s+(?P<type>[a-z]+)\s+\[(?P<proto>[^\s\]]+)(?P<rest>[^\]]*)\]\s*(?P<primary>\*)?"
)
_VIA_RE = re.compile(r"^\s+via\s+(?P<via>\S+)\s+on\s+(?P<iface>\S+)")
_FROM_RE = re.compile(r"\bfrom\s+(\S+)")


class BirdError(ContrailHaError, RuntimeError):
    """birdc could not talk to BIRD, or BIRD refused the command."""


def birdc(sock: Path | str, *args: str, timeout: float = TIMEOUT) -> str:
    """Run one ``birdc -s <sock>`` command and return its output (without the banner)."""
    try:
        p = subprocess.run(["birdc", "-s", str(sock), *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BirdError(f"birdc -s {sock}: {e}") from e
    out = p.stdout
    if p.returncode != 0 or "Unable to connect" in out or "Unable to connect" in p.stderr:
        raise BirdError((p.stderr.strip() or out.strip() or f"birdc exited {p.returncode}")[:300])
    lines = [ln for ln in out.splitlines() if not ln.startswith("BIRD ") or " ready." not in ln]
    return "\n".join(lines)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_protocols(text: str) -> dict[str, dict[str, Any]]:
    """``show protocols [all]``: name -> proto, table, state, since, info and ``key: value`` details."""
    out: dict[str, dict[str, Any]] = {}
    cur: dict[str, Any] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("Name "):
            continue
        if not line[0].isspace():
            parts = line.split(None, 5)
            if len(parts) < 4:
                cur = None
                continue
            cur = {"proto": parts[1], "table": parts[2], "state": parts[3],
                   "since": parts[4] if len(parts) > 4 else "",
                   "info": parts[5].strip() if len(parts) > 5 else "", "details": {}}
            out[parts[0]] = cur
        elif cur is not None:
            k, sep, v = line.strip().partition(":")
            if sep and v.strip() and k.strip() not in cur["details"]:
                cur["details"][k.strip()] = v.strip()
    return out


def bgp_state(p: dict[str, Any]) -> str:
    """The BGP state of a parsed BGP protocol (``Established``, ``Active``, ``Connect``, ``Down`` ...)."""
    return str(p["details"].get("BGP state") or p["info"].split(" ")[0] or p["state"])


def parse_babel_neighbors(text: str) -> list[dict[str, Any]]:
    """``show babel neighbors``: address, interface, metric, routes, hellos, expires."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and _is_ip(f[0]):
            try:
                out.append({"address": f[0], "interface": f[1], "metric": int(f[2]), "routes": int(f[3]),
                            "hellos": int(f[4]), "expires": f[5]})
            except ValueError:
                continue
    return out


def parse_bfd_sessions(text: str) -> list[dict[str, str]]:
    """``show bfd sessions``: address, interface, state, since, interval, timeout."""
    out: list[dict[str, str]] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and _is_ip(f[0]):
            out.append({"address": f[0], "interface": f[1], "state": f[2], "since": f[3],
                        "interval": f[4], "timeout": f[5]})
    return out


def parse_routes(text: str) -> list[dict[str, Any]]:
    """``show route [for X] [all]``: one entry per route with net, type, proto, primary, via list."""
    routes: list[dict[str, Any]] = []
    net = ""
    for line in text.splitlines():
        if line.startswith("Table ") or not line.strip():
            continue
        m = _ROUTE_RE.match(line)
        if m and m.group("type") not in ("via", "dev"):
            net = m.group("net") or net
            frm = _FROM_RE.search(m.group("rest"))
            routes.append({"net": net, "type": m.group("type"), "proto": m.group("proto"),
                           "primary": bool(m.group("primary")), "from": frm.group(1) if frm else None,
                           "via": []})
            continue
        v = _VIA_RE.match(line)
        if v and routes:
            routes[-1]["via"].append({"address": v.group("via"), "interface": v.group("iface")})
    return routes


def _router_link_local(plan: Plan) -> str | None:
    """The router's IPv6 link-local address on its bridge link (its Babel identity), if found."""
    ns = netns.ns_name(plan, netns.ROUTER)
    try:
        p = subprocess.run(["ip", "-n", ns, "-j", "-6", "addr", "show", "dev", ROUTER_IFACE, "scope", "link"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        for link in json.loads(p.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("family") == "inet6":
                    return str(a["local"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        return None
    return None


def _exports_vip(plan: Plan, sock: Path, proto: str) -> bool | None:
    try:
        text = birdc(sock, "show", "route", "export", proto)
    except BirdError:
        return None
    return any(r["net"] == f"{plan.vip}/32" for r in parse_routes(text))


def lb_check(plan: Plan, layout: Layout, host: str, router_ll: str | None = None) -> Check:
    """The BIRD check of lb ``host``: its session with the router (BGP) or the router as Babel neighbour."""
    sock = socket_path(layout, host)
    data: dict[str, Any] = {"socket": str(sock), "protocol": str(plan.topology.lb.protocol)}
    try:
        protos = parse_protocols(birdc(sock, "show", "protocols", "all", LB_PROTO))
    except BirdError as e:
        return Check(COMPONENT, host, False, f"BIRD not answering: {e}", data)
    p = protos.get(LB_PROTO)
    if p is None:
        return Check(COMPONENT, host, False, f"protocol {LB_PROTO} missing", data)
    exporting = _exports_vip(plan, sock, LB_PROTO)
    data["announcing_vip"] = exporting
    announce = {True: "announcing the VIP", False: "not announcing the VIP (VIP off lo?)",
                None: "VIP export unknown"}[exporting]
    if plan.topology.lb.protocol == LbProtocol.BGP:
        state = bgp_state(p)
        data.update(bgp_state=state, last_error=p["details"].get("Last error"),
                    neighbor=p["details"].get("Neighbor address"))
        try:
            data["bfd"] = parse_bfd_sessions(birdc(sock, "show", "bfd", "sessions"))
        except BirdError:
            data["bfd"] = None
        if state != "Established":
            why = p["details"].get("Last error") or p["info"]
            return Check(COMPONENT, host, False, f"BGP {state} with router {plan.router_ip}: {why}", data)
        return Check(COMPONENT, host, True, f"BGP Established with router {plan.router_ip}, {announce}", data)
    try:
        neighbours = parse_babel_neighbors(birdc(sock, "show", "babel", "neighbors", LB_PROTO))
    except BirdError as e:
        return Check(COMPONENT, host, False, f"show babel neighbors: {e}", data)
    live = [n for n in neighbours if n["metric"] < BABEL_INFINITY]
    data.update(state=p["state"], neighbours=neighbours, router_link_local=router_ll)
    if p["state"] != "up":
        return Check(COMPONENT, host, False, f"Babel protocol {p['state']} {p['info']}".strip(), data)
    if router_ll is not None:
        ok = any(n["address"] == router_ll for n in live)
        what = f"router ({router_ll}) {'is' if ok else 'is not'} a Babel neighbour"
    else:
        ok = bool(live)
        what = f"{len(live)} Babel neighbour(s) (router address unknown)"
    return Check(COMPONENT, host, ok, f"{what}, {announce}", data)


def router_check(plan: Plan, layout: Layout) -> Check:
    """The router's BIRD: answers, and has at least one live lb session or Babel neighbour."""
    sock = router_socket_path(layout)
    data: dict[str, Any] = {"socket": str(sock), "protocol": str(plan.topology.lb.protocol)}
    try:
        protos = parse_protocols(birdc(sock, "show", "protocols", "all"))
    except BirdError as e:
        return Check(COMPONENT, ROUTER_TARGET, False, f"BIRD not answering: {e}", data)
    if plan.topology.lb.protocol == LbProtocol.BGP:
        sessions: dict[str, str] = {}
        for h in plan.lbs:
            p = protos.get(router_bgp_proto(h))
            sessions[h.name] = bgp_state(p) if p else "missing"
        data["sessions"] = sessions
        up = [n for n, s in sessions.items() if s == "Established"]
        detail = f"{len(up)}/{len(sessions)} lb sessions Established"
        if len(up) < len(sessions):
            detail += " (" + ", ".join(f"{n} {s}" for n, s in sessions.items() if s != "Established") + ")"
        return Check(COMPONENT, ROUTER_TARGET, bool(up), detail, data)
    p = protos.get(ROUTER_BABEL_PROTO)
    if p is None:
        return Check(COMPONENT, ROUTER_TARGET, False, f"protocol {ROUTER_BABEL_PROTO} missing", data)
    try:
        neighbours = parse_babel_neighbors(birdc(sock, "show", "babel", "neighbors", ROUTER_BABEL_PROTO))
    except BirdError as e:
        return Check(COMPONENT, ROUTER_TARGET, False, f"show babel neighbors: {e}", data)
    live = [n for n in neighbours if n["metric"] < BABEL_INFINITY]
    data.update(state=p["state"], neighbours=neighbours)
    ok = p["state"] == "up" and bool(live)
    return Check(COMPONENT, ROUTER_TARGET, ok, f"Babel {p['state']}, {len(live)} neighbour(s)", data)


def kernel_route(plan: Plan) -> dict[str, Any]:
    """``ip -j route get <vip>`` in the router's namespace (raises RuntimeError when there is none)."""
    ns = netns.ns_name(plan, netns.ROUTER)
    if not netns.exists(ns):
        raise RuntimeError(f"router namespace {ns} does not exist")
    try:
        p = subprocess.run(["ip", "-n", ns, "-j", "route", "get", plan.vip], capture_output=True, text=True,
                           timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"ip route get: {e}") from e
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or f"ip route get exited {p.returncode}")
    routes = json.loads(p.stdout or "[]")
    if not routes:
        raise RuntimeError("no route")
    return dict(routes[0])


def vip_check(plan: Plan, layout: Layout, lb_checks: dict[str, Check]) -> Check:
    """The router's kernel route to the VIP goes through an lb whose BIRD check is ok."""
    data: dict[str, Any] = {"vip": plan.vip}
    try:
        data["bird_routes"] = parse_routes(birdc(router_socket_path(layout), "show", "route", "for", plan.vip,
                                                 "all"))
    except BirdError:
        data["bird_routes"] = None
    try:
        route = kernel_route(plan)
    except (RuntimeError, ValueError) as e:
        return Check(VIP_COMPONENT, CLUSTER_TARGET, False, f"no route to {plan.vip} on the router: {e}", data)
    gw = route.get("gateway")
    data.update(gateway=gw, dev=route.get("dev"))
    by_ip = {str(h.ip): h.name for h in plan.lbs}
    lb = by_ip.get(gw or "")
    data["lb"] = lb
    if lb is None:
        return Check(VIP_COMPONENT, CLUSTER_TARGET, False,
                     f"{plan.vip} routed via {gw or route.get('dev')}, which is not an lb", data)
    c = lb_checks.get(lb)
    if c is None or not c.ok:
        why = c.detail if c else "not probed"
        return Check(VIP_COMPONENT, CLUSTER_TARGET, False, f"{plan.vip} via {lb} ({gw}), whose BIRD is not ok: {why}",
                     data)
    return Check(VIP_COMPONENT, CLUSTER_TARGET, True, f"{plan.vip} via {lb} ({gw})", data)


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """Per-lb BIRD checks, the router's BIRD check and the VIP route check."""
    router_ll = _router_link_local(plan) if plan.topology.lb.protocol == LbProtocol.BABEL else None
    lbs = {h.name: lb_check(plan, layout, h.name, router_ll) for h in plan.lbs}
    return [*lbs.values(), router_check(plan, layout), vip_check(plan, layout, lbs)]


def _ready(sock: Path) -> tuple[bool, str]:
    try:
        text = birdc(sock, "show", "status")
    except BirdError as e:
        return False, str(e)
    if "Daemon is up and running" in text:
        return True, "up and running"
    lines = text.strip().splitlines()
    return False, lines[-1] if lines else "no status"


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    """Whether the lb's BIRD of ``inst`` runs (its control socket answers); sessions may still be coming up."""
    return _ready(socket_path(layout, inst.host.name))


def router_ready(plan: Plan, layout: Layout) -> tuple[bool, str]:
    """Whether the router's BIRD runs."""
    return _ready(router_socket_path(layout))
