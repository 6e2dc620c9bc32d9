"""BIRD on the lb hosts and on the upstream router: announcing the VIP.

Each lb carries the VIP as a /32 on ``lo`` (put there by the runtime). BIRD's ``direct``
protocol turns that address into a route, so the lb announces the VIP exactly while the
address is on ``lo``: the lb's health watcher withdraws the VIP by removing the address (or
by stopping BIRD with SIGTERM, which retracts routes gracefully). Killing HAProxy alone does
*not* withdraw anything.

The router learns the VIP from every lb and installs it into its kernel table (``protocol
kernel``), so the client, whose default route points at the router, reaches the VIP.

Protocols (``lb.protocol``):

- ``bgp``: eBGP, router ``router_asn`` <-> each lb ``lb_asn``, with BFD
  (``bfd_interval_ms`` x ``bfd_multiplier``, 300 ms by default) for failure detection; hold 3 s /
  keepalive 1 s only matter if BFD itself fails. ``error wait time 1, 5`` keeps a flapping
  session from idling for minutes (BIRD's default is 60-300 s); graceful restart is off so a
  dead lb's route is dropped at once instead of kept stale.
- ``babel``: over the IPv6 link-local addresses of the host's ``interface`` (``eth0`` by default;
  IPv6 must stay enabled there),
  hello/update intervals from the topology; no BFD (BIRD 2.0.12's Babel has none). The lbs
  randomize their Babel router id at each start: a restarted lb would otherwise announce with a
  sequence number its peers consider old and be ignored for minutes.

**Several lbs: active/backup without failback** (the default). The router installs one
path. With BGP, all lbs announce equal routes and the router's ``prefer older`` keeps the
route it already uses, so an lb that comes back does not take the VIP over again: traffic
moves only when the active lb fails (its TCP connections are lost anyway). Babel behaves the
same way by itself (its route selection keeps the current route among equal metrics). Both
protocols thus behave alike, and no connection is broken by a recovery. The price: one lb
carries all traffic while the other stands by (HAProxy is cheap; the APIs behind it are still
balanced across all replicas).

The alternative, ``render_router(..., ecmp=True)`` (BGP only: BIRD's Babel installs one
route per prefix), merges the lbs' routes into one multipath kernel route (``merge paths``).
Linux hashes each flow onto one next hop, spreading clients over the lbs, but every change of
the next-hop set re-hashes flows: when an lb returns, the flows moved onto it reach an lb that
has no socket for them and are reset. That is a failback that breaks connections, which is
why it is not the default.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered
from contrail_ha.topology.model import Host, LbProtocol, Role
from contrail_ha.topology.plan import BIRD, Instance, Plan

NAME = "bird"
CONFIG_FILE = "bird.conf"
SOCKET_FILE = "bird.sock"
PID_FILE = "bird.pid"

ROUTER_IFACE = "eth0"  # the router's link to the bridge (eth1 goes to the client)
VIP_IFACE = "lo"

LB_PROTO = "uplink"  # on an lb: its session (BGP) or Babel instance toward the router
ROUTER_BABEL_PROTO = "lbs"
BFD_PROTO = "bfd_lbs"

HOLD_TIME_S = 3  # BIRD's minimum
KEEPALIVE_TIME_S = 1
CONNECT_DELAY_S = 1
CONNECT_RETRY_S = 2
STARTUP_HOLD_S = 5
# The router stands in for the fabric's router, whose control plane does not share CPUs with the hosts.
# Here it shares 2 cores with every host: behind a busy cluster its BFD (300 ms detection) stalled for
# 435 ms and both lbs' sessions dropped, so it runs under SCHED_FIFO (measured: docs/containers.md).
ROUTER_RT_PRIORITY = 10
STOP_TIMEOUT_S = 10.0
MAX_SOCKET_PATH = 107


def config_path(layout: Layout, host: str) -> Path:
    """bird.conf of lb ``host``."""
    return layout.conf(host, NAME) / CONFIG_FILE


def socket_path(layout: Layout, host: str) -> Path:
    """BIRD's control socket on lb ``host`` (``birdc -s``)."""
    return layout.run(host, NAME) / SOCKET_FILE


def router_config_path(layout: Layout) -> Path:
    """bird.conf of the router."""
    return layout.router_dir / CONFIG_FILE


def router_socket_path(layout: Layout) -> Path:
    """BIRD's control socket on the router."""
    return layout.router_dir / SOCKET_FILE


def router_bgp_proto(host: Host | str) -> str:
    """Name of the router's BGP session with lb ``host`` (BIRD symbols allow no '-')."""
    name = host if isinstance(host, str) else host.name
    return "lb_" + name.replace("-", "_")


def _header(title: str, plan: Plan, router_id: str) -> list[str]:
    return [
        f"# contrail-ha: BIRD of {title} (cluster {plan.cluster_id}); rendered, do not edit.",
        "log stderr all;",
        f"router id {router_id};",
        "debug protocols { states };",
        "",
        "protocol device {",
        "  scan time 10;",
        "}",
        "",
    ]


def _bfd(plan: Plan, iface: str) -> list[str]:
    lb = plan.topology.lb
    return [
        f"protocol bfd {BFD_PROTO} {{",
        f'  interface "{iface}" {{',
        f"    interval {lb.bfd_interval_ms} ms;",
        f"    multiplier {lb.bfd_multiplier};",
        "  };",
        "}",
        "",
    ]


def _bgp_timers(indent: str = "  ") -> list[str]:
    return [
        f"{indent}hold time {HOLD_TIME_S};",
        f"{indent}keepalive time {KEEPALIVE_TIME_S};",
        f"{indent}startup hold time {STARTUP_HOLD_S};",
        f"{indent}connect delay time {CONNECT_DELAY_S};",
        f"{indent}connect retry time {CONNECT_RETRY_S};",
        f"{indent}error wait time 1, 5;",
        f"{indent}graceful restart off;",
        f"{indent}bfd on;",
    ]


def _babel_iface(plan: Plan, iface: str, next_hop: str | None) -> list[str]:
    lb = plan.topology.lb
    lines = [
        f'  interface "{iface}" {{',
        "    type wired;",
        "    check link yes;",
        f"    hello interval {lb.babel_hello_ms} ms;",
        f"    update interval {lb.babel_update_ms} ms;",
    ]
    if next_hop:
        lines.append(f"    next hop ipv4 {next_hop};")
    return [*lines, "  };"]


def render_lb_config(plan: Plan, inst: Instance) -> str:
    """bird.conf of the lb host of ``inst``: announce the VIP /32 found on ``lo``."""
    lb = plan.topology.lb
    vip = f"{plan.vip}/32"
    out = _header(f"lb {inst.host.name}", plan, inst.ip)
    out += [
        "# The VIP as a route while it is on lo (the health watcher removes it to withdraw).",
        "protocol direct vip {",
        f"  ipv4 {{ import where net = {vip}; }};",
        f'  interface "{VIP_IFACE}";',
        "}",
        "",
    ]
    export = f"export where net = {vip} && source = RTS_DEVICE;"
    if lb.protocol == LbProtocol.BGP:
        out += _bfd(plan, inst.host.interface)
        out += [
            f"protocol bgp {LB_PROTO} {{",
            f"  description \"lb {inst.host.name} -> router\";",
            f"  local {inst.ip} as {lb.lb_asn};",
            f"  neighbor {plan.router_ip} as {lb.router_asn};",
            *_bgp_timers(),
            "  ipv4 {",
            "    import none;",
            f"    {export}",
            "  };",
            "}",
            "",
        ]
    else:
        out += [
            f"protocol babel {LB_PROTO} {{",
            "  randomize router id yes;",
            "  ipv4 {",
            "    import none;",
            f"    {export}",
            "  };",
            *_babel_iface(plan, inst.host.interface, next_hop=inst.ip),
            "}",
            "",
        ]
    return "\n".join(out)


def render_router_config(plan: Plan, ecmp: bool = False) -> str:
    """bird.conf of the router: learn the VIP from every lb, install it into the kernel."""
    lb = plan.topology.lb
    if ecmp and lb.protocol != LbProtocol.BGP:
        raise ValueError("ECMP needs BGP: BIRD's Babel installs a single route per prefix")
    vip = f"{plan.vip}/32"
    out = _header("the router", plan, plan.router_ip)
    out += [
        "# Install the VIP route learned from the lbs; forwarding (ip_forward) is the runtime's.",
        "protocol kernel {",
        "  ipv4 {",
        "    import none;",
        f"    export where net = {vip};",
        "  };",
        "  learn off;",
        "  persist off;",
    ]
    if ecmp:
        out.append("  merge paths on;  # ECMP: one multipath route over every announcing lb")
    out += ["}", ""]
    if lb.protocol == LbProtocol.BGP:
        out += _bfd(plan, ROUTER_IFACE)
        out += [
            "template bgp lb {",
            f"  local {plan.router_ip} as {lb.router_asn};",
            *_bgp_timers(),
        ]
        if not ecmp:
            out.append("  prefer older on;  # active/backup: keep the current lb, no failback")
        out += [
            "  ipv4 {",
            f"    import where net = {vip};",
            "    export none;",
            "  };",
            "}",
            "",
        ]
        for h in plan.lbs:
            out += [
                f"protocol bgp {router_bgp_proto(h)} from lb {{",
                f"  description \"router -> lb {h.name}\";",
                f"  neighbor {h.ip} as {lb.lb_asn};",
                "}",
                "",
            ]
    else:
        out += [
            f"protocol babel {ROUTER_BABEL_PROTO} {{",
            "  ipv4 {",
            f"    import where net = {vip};",
            "    export none;",
            "  };",
            *_babel_iface(plan, ROUTER_IFACE, next_hop=None),
            "}",
            "",
        ]
    return "\n".join(out)


# The lb BIRD's group, and so its control socket's (0660): the image's user's (uid and gid 10001,
# contrail_ha.runtime.ownership), as which the host's node agent reads BIRD's state from its own container.
SOCKET_GROUP = 10001


def _process(conf: Path, sock: Path, pid: Path, realtime_priority: int = 0, group: int | None = None) -> ProcessSpec:
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise ValueError(f"control socket path too long for a unix socket ({len(str(sock))} bytes): {sock}")
    # SIGTERM is a graceful shutdown: BGP sends a Cease, Babel retracts, kernel routes are removed.
    return ProcessSpec(
        name=NAME,
        argv=["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(pid),
              *(["-g", str(group)] if group is not None else [])],
        stop_signal=signal.SIGTERM,
        stop_timeout=STOP_TIMEOUT_S,
        health=f"unix://{sock}",
        realtime_priority=realtime_priority,
    )


def render(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    """bird.conf and the ``bird`` process of the lb host of ``inst``."""
    if inst.component != BIRD or not inst.host.has(Role.LB):
        raise ValueError(f"{inst.component} on {inst.host.name} is not an lb's BIRD")
    host = inst.host.name
    conf = config_path(layout, host)
    run = layout.run(host, NAME)
    return Rendered(
        files={conf: render_lb_config(plan, inst)},
        dirs=[conf.parent, run],
        processes=[_process(conf, socket_path(layout, host), run / PID_FILE, group=SOCKET_GROUP)],
    )


def render_router(plan: Plan, layout: Layout, ecmp: bool = False) -> Rendered:
    """bird.conf and the ``bird`` process of the router namespace (files in ``layout.router_dir``)."""
    conf = router_config_path(layout)
    return Rendered(
        files={conf: render_router_config(plan, ecmp=ecmp)},
        dirs=[layout.router_dir],
        processes=[_process(conf, router_socket_path(layout), layout.router_dir / PID_FILE,
                            realtime_priority=ROUTER_RT_PRIORITY)],
    )


def check_config(path: Path | str) -> tuple[bool, str]:
    """Validate a configuration with the real parser (``bird -p -c``): (ok, its output)."""
    try:
        p = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bird -p: {e}"
    return p.returncode == 0, (p.stdout + p.stderr).strip()
