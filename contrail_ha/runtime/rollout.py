"""Changing a running cluster's API replicas without a client seeing an error (``scale``).

HAProxy must only ever route to replicas that serve. So the order of a change matters:

- a departing replica is first put in maintenance on every lb (no new request goes to it) and
  its in-flight requests finish; only then may its supervisor stop it;
- an arriving replica enters the lbs' configuration only once it is ready: the lb groups' new
  files and specs wait for the API waves (:func:`contrail_ha.runtime.cluster.up` holds them).

Otherwise HAProxy's retries (``retries 2``) meet several refusing servers in a row and a client
gets a 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from contrail_ha.probes import haproxy as p_haproxy
from contrail_ha.rendering.base import Layout
from contrail_ha.rendering.haproxy import LAST_RESORT, planned_servers, stats_socket
from contrail_ha.topology.plan import Plan

DRAIN_TIMEOUT_S = 30.0  # in-flight requests of a departing replica; then it is stopped anyway


def _stat(layout: Layout, host: str) -> list[dict[str, str]]:
    """``show stat`` of lb ``host``'s HAProxy; empty when it does not answer."""
    try:
        return p_haproxy.parse_stat(p_haproxy.command(stats_socket(layout, host), "show stat"))
    except (OSError, ValueError):
        return []


def departing(plan: Plan, layout: Layout, host: str) -> list[tuple[str, str]]:
    """(backend, server) pairs the running HAProxy of lb ``host`` has and ``plan`` no longer does.

    Empty when that HAProxy does not answer (not up yet: nothing to drain)."""
    rows = _stat(layout, host)
    wanted = planned_servers(plan)
    return sorted((be, sv) for be, b in p_haproxy.backends(rows).items() if be in wanted
                  for sv in b["servers"] if sv not in wanted[be])


def _sessions(layout: Layout, host: str, servers: list[tuple[str, str]]) -> int:
    """Requests the lb still has in flight to ``servers`` (their last-resort entries included); none
    when that HAProxy is gone."""
    rows = _stat(layout, host)
    names = {(be, s) for be, sv in servers for s in (sv, sv + LAST_RESORT)}
    return sum(int(r.get("scur") or 0) for r in rows if (r.get("pxname"), r.get("svname")) in names)


def drain(plan: Plan, layout: Layout, progress: Callable[[str], None],
          timeout: float = DRAIN_TIMEOUT_S) -> list[str]:
    """Put every departing replica in maintenance on every lb and wait for its in-flight requests.

    Returns the servers drained (``lb:backend/server``)."""
    todo = {h.name: departing(plan, layout, h.name) for h in plan.lbs}
    todo = {h: s for h, s in todo.items() if s}
    drained: list[str] = []
    for host, servers in todo.items():
        sock = stats_socket(layout, host)
        for be, sv in servers:
            try:
                answers = [p_haproxy.command(sock, f"set server {be}/{name} state maint").strip()
                           for name in (sv, sv + LAST_RESORT)]
            except OSError as e:  # that lb went away meanwhile: nothing routes through it
                progress(f"lb {host}: {e}")
                continue
            if any(answers):
                progress(f"lb {host}: set server {be}/{sv} state maint: {'; '.join(a for a in answers if a)}")
                continue
            drained.append(f"{host}:{be}/{sv}")
    if not drained:
        return []
    progress(f"draining {len(drained)} departing replicas: {', '.join(drained)}")
    deadline = time.monotonic() + timeout
    while (busy := sum(_sessions(layout, h, s) for h, s in todo.items())) and time.monotonic() < deadline:
        time.sleep(0.1)
    progress("drained" if not busy else f"{busy} requests still in flight after {timeout:.0f}s; stopping anyway")
    return drained
