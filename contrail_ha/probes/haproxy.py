"""HAProxy probes: ``show stat`` over each lb's admin stats socket (a unix socket file).

The socket is a file under the cluster's state directory, so no network namespace is
entered. One check per lb: ok when HAProxy answers and every backend has an UP server.
"""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path
from typing import Any

from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.haproxy import (
    ANALYTICS_API_FRONTEND,
    BACKENDS,
    CONFIG_API_FRONTEND,
    LAST_RESORT,
    stats_socket,
)
from contrail_ha.topology.plan import HAPROXY, Instance, Plan

COMPONENT = HAPROXY
TIMEOUT = 2.0
FRONTENDS = (CONFIG_API_FRONTEND, ANALYTICS_API_FRONTEND)
# svname of the aggregate rows; every other row of a backend is one server
AGGREGATES = ("FRONTEND", "BACKEND")
SERVER_FIELDS = ("status", "check_status", "check_code", "check_duration", "lastchg", "chkfail",
                 "wretr", "wredis", "scur", "stot", "hrsp_5xx", "addr")


def command(sock: Path | str, cmd: str, timeout: float = TIMEOUT) -> str:
    """Send one command to an HAProxy stats socket and return its whole answer."""
    chunks: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(cmd.encode() + b"\n")
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def parse_stat(text: str) -> list[dict[str, str]]:
    """Rows of a ``show stat`` CSV answer (its header line starts with ``# ``)."""
    text = text.strip()
    if not text.startswith("# "):
        raise ValueError(f"unexpected 'show stat' answer: {text[:120]!r}")
    return list(csv.DictReader(io.StringIO(text[2:])))


def is_up(status: str) -> bool:
    """UP, and UP going down (``UP 1/2``), serve traffic; DOWN, MAINT, DRAIN, NOLB do not."""
    return status == "UP" or status.startswith("UP ") or status == "no check"


def backends(rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Per backend: its servers (name -> selected stat fields) and how many are UP. The unchecked
    last-resort entries are not servers in rotation: they are left out."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        px, sv = r.get("pxname", ""), r.get("svname", "")
        if sv == "BACKEND":
            b = out.setdefault(px, {"servers": {}, "up": 0, "total": 0})
            b["status"] = r.get("status", "")
        elif sv not in AGGREGATES and r.get("type") == "2" and not sv.endswith(LAST_RESORT):  # type 2: server
            b = out.setdefault(px, {"servers": {}, "up": 0, "total": 0})
            b["servers"][sv] = {k: r.get(k, "") for k in SERVER_FIELDS}
            b["total"] += 1
            b["up"] += int(is_up(r.get("status", "")))
    return out


def frontends(rows: list[dict[str, str]]) -> dict[str, str]:
    """Frontend name -> status (``OPEN`` when it listens)."""
    return {r["pxname"]: r.get("status", "") for r in rows if r.get("svname") == "FRONTEND"}


def _check_stats(host: str, rows: list[dict[str, str]], sock: Path) -> Check:
    bes = backends(rows)
    fes = frontends(rows)
    problems: list[str] = []
    for name in BACKENDS:
        b = bes.get(name)
        if b is None:
            problems.append(f"{name} missing")
        elif b["up"] == 0:
            states = ", ".join(f"{s} {v['status']}" for s, v in b["servers"].items()) or "no servers"
            problems.append(f"{name}: no server UP ({states})")
    for name in FRONTENDS:
        if fes.get(name) != "OPEN":
            problems.append(f"frontend {name} {fes.get(name, 'missing')}")
    summary = ", ".join(f"{n} {bes[n]['up']}/{bes[n]['total']} UP" for n in BACKENDS if n in bes)
    data: dict[str, Any] = {"socket": str(sock), "frontends": fes,
                            "backends": {n: bes[n] for n in BACKENDS if n in bes}}
    if problems:
        return Check(COMPONENT, host, False, "; ".join(problems), data)
    return Check(COMPONENT, host, True, summary, data)


def lb_check(plan: Plan, layout: Layout, host: str) -> Check:
    """The check of the HAProxy on lb ``host``."""
    sock = stats_socket(layout, host)
    try:
        rows = parse_stat(command(sock, "show stat"))
    except (OSError, ValueError) as e:
        return Check(COMPONENT, host, False, f"stats socket {sock}: {e}", {"socket": str(sock)})
    return _check_stats(host, rows, sock)


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """One check per lb host: HAProxy answers and every backend has at least one UP server."""
    return [lb_check(plan, layout, h.name) for h in plan.lbs]


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    """Whether HAProxy of ``inst`` runs: its stats socket answers and both frontends are OPEN.

    Backend health is not required (HAProxy is ready before the APIs behind it are).
    """
    sock = stats_socket(layout, inst.host.name)
    try:
        rows = parse_stat(command(sock, "show stat"))
    except (OSError, ValueError) as e:
        return False, str(e) or type(e).__name__
    fes = frontends(rows)
    closed = [f"{n} {fes.get(n, 'missing')}" for n in FRONTENDS if fes.get(n) != "OPEN"]
    if closed:
        return False, "frontends not open: " + ", ".join(closed)
    return True, "frontends open"
