"""RabbitMQ probes: each node's view of the cluster from its management API; readiness and
post-formation configuration through ``rabbitmqctl``.

The CLI must run where the node's host runs (inside its namespace, when there is one), with
the node's cookie: every call goes through the module-level ``runner``, which by default
prefixes the command with ``netns.exec_argv`` when the host's namespace exists and runs it
directly otherwise (servers on loopback addresses in tests, rendered with ``shared_netns``).
Replace ``runner`` to run the CLI some other way.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from contrail_ha.probes.base import Check, read_login
from contrail_ha.rendering import rabbitmq as render
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import netns
from contrail_ha.topology.model import Host
from contrail_ha.topology.plan import RABBITMQ, Instance, Plan

CTL_TIMEOUT = 30.0  # seconds for one rabbitmqctl call (the CLI itself starts in ~0.8 s)
AWAIT_TIMEOUT = 10  # seconds ``await_startup`` waits for a booting node
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

HA_POLICY, HA_PATTERN, HA_DEFINITION = render.HA_POLICY, render.HA_PATTERN, render.HA_DEFINITION
HA_APPLY_TO, HA_PRIORITY = render.HA_APPLY_TO, render.HA_PRIORITY

Runner = Callable[[Plan, Host, list[str], dict[str, str]], subprocess.CompletedProcess[str]]


def prefix(plan: Plan, host: Host) -> list[str]:
    """argv prefix that runs a command on ``host``: its namespace if it exists, else nothing."""
    if netns.exists(netns.ns_name(plan, host.name)):
        return netns.exec_argv(plan, host.name, [])
    return []


def default_runner(plan: Plan, host: Host, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on ``host`` with ``env`` (plus PATH); a timeout becomes exit status 124."""
    full = [*prefix(plan, host), *argv]
    full_env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), **env}
    try:
        return subprocess.run(full, env=full_env, capture_output=True, text=True, timeout=CTL_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(full, 124, "", f"timed out after {CTL_TIMEOUT:.0f}s")


runner: Runner = default_runner


def shared_netns(plan: Plan, host: Host) -> bool:
    """A host without its own namespace shares the caller's (nodes on loopback addresses)."""
    return not netns.exists(netns.ns_name(plan, host.name))


def ctl(plan: Plan, layout: Layout, inst: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    """``rabbitmqctl <args>`` against ``inst``'s node, through ``runner``."""
    env = render.ctl_env(plan, inst, layout, shared_netns=shared_netns(plan, inst.host))
    return runner(plan, inst.host, render.ctl_argv(plan, inst, layout, *args), env)


def _error(cp: subprocess.CompletedProcess[str]) -> str:
    """The most useful line of a failed CLI call."""
    lines = [ln.strip() for ln in (cp.stderr + "\n" + cp.stdout).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Error"):
            i = lines.index(ln)
            return " ".join(lines[i:i + 2])[:300]
    return (lines[0][:300] if lines else f"exit status {cp.returncode}")


def ctl_json(plan: Plan, layout: Layout, inst: Instance, *args: str) -> Any:
    """``rabbitmqctl <args> --formatter json``, parsed; RuntimeError on failure."""
    cp = ctl(plan, layout, inst, *args, "--formatter", "json")
    if cp.returncode != 0:
        raise RuntimeError(_error(cp))
    try:
        return json.loads(cp.stdout)
    except ValueError as e:
        raise RuntimeError(f"unparsable output of {args[0]}: {cp.stdout.strip()[:200]!r}") from e


HTTP_TIMEOUT = 5.0


def monitor_credentials(layout: Layout, inst: Instance) -> tuple[str, str]:
    """The monitor user's name and password, as rendered for ``inst``'s host (readable there only)."""
    return read_login(render.paths(layout, inst)["monitor"], "RabbitMQ monitor credentials")


def cluster_status(plan: Plan, layout: Layout, inst: Instance, timeout: float = HTTP_TIMEOUT) -> dict[str, Any]:
    """The node's view of the cluster, from its management API, in ``cluster_status``'s shape:
    ``running_nodes``, ``disk_nodes``, ``partitions`` ({node: [unreachable nodes]}), ``alarms``,
    ``cluster_name``. RuntimeError when the node does not answer."""
    import httpx

    base = f"http://{inst.ip}:{render.mgmt_port(plan)}/api"
    try:
        with httpx.Client(auth=monitor_credentials(layout, inst), timeout=timeout) as c:
            nodes = c.get(f"{base}/nodes", params={"columns": "name,running,type,partitions,mem_alarm,"
                                                                "disk_free_alarm"}).raise_for_status().json()
            name = c.get(f"{base}/cluster-name").raise_for_status().json().get("name")
    except (httpx.HTTPError, ValueError) as e:
        raise RuntimeError(f"{e.__class__.__name__}: {e}"[:200]) from e
    alarms = [f"{n['name']}: {kind}" for n in nodes for kind in ("mem_alarm", "disk_free_alarm") if n.get(kind)]
    return {"running_nodes": sorted(n["name"] for n in nodes if n.get("running")),
            "disk_nodes": sorted(n["name"] for n in nodes if n.get("type") == "disc"),
            "partitions": {n["name"]: n["partitions"] for n in nodes if n.get("partitions")},
            "alarms": alarms, "cluster_name": name}


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    """Whether ``inst``'s node has fully booted (``await_startup``), with the reason if not."""
    cp = ctl(plan, layout, inst, "await_startup", "--timeout", str(AWAIT_TIMEOUT))
    if cp.returncode == 0:
        return True, "running"
    return False, _error(cp)


def _node(plan: Plan, inst: Instance) -> str:
    return plan.rabbitmq_node_name(inst.host)


def node_check(plan: Plan, layout: Layout, inst: Instance) -> Check:
    """One node's view of the cluster (its management API)."""
    me = _node(plan, inst)
    base: dict[str, Any] = {"node": me, "address": inst.address}
    try:
        st = cluster_status(plan, layout, inst)
    except RuntimeError as e:
        return Check(RABBITMQ, inst.host.name, False, f"unreachable: {e}", base)
    running = sorted(st.get("running_nodes") or [])
    partitions = st.get("partitions") or {}
    alarms = st.get("alarms") or []
    data = {**base, "running_nodes": running, "disk_nodes": sorted(st.get("disk_nodes") or []),
            "partitions": partitions, "alarms": alarms, "cluster_name": st.get("cluster_name")}
    detail = "running: " + (", ".join(running) or "none")
    if alarms:
        detail += f"; alarms: {alarms}"
    if partitions:
        detail += f"; partitions: {partitions}"
    return Check(RABBITMQ, inst.host.name, me in running and not alarms and not partitions, detail, data)


def cluster_check(plan: Plan, nodes: list[Check]) -> Check:
    """Every controller is a running member in every node's view, and nobody sees a partition."""
    expected = sorted(plan.rabbitmq_node_name(h) for h in plan.controllers)
    reachable = [c for c in nodes if "running_nodes" in c.data]
    problems: list[str] = []
    unreachable = [c.target for c in nodes if c not in reachable]
    if unreachable:
        problems.append(f"unreachable: {', '.join(unreachable)}")
    missing = sorted({n for c in reachable for n in expected if n not in c.data["running_nodes"]})
    if missing:
        problems.append(f"not running members: {', '.join(missing)}")
    strangers = sorted({n for c in reachable for n in c.data["running_nodes"] if n not in expected})
    if strangers:
        problems.append(f"unexpected members: {', '.join(strangers)}")
    partitioned = {c.target: c.data["partitions"] for c in reachable if c.data["partitions"]}
    if partitioned:
        problems.append(f"partitions: {partitioned}")
    names = sorted({str(c.data.get("cluster_name")) for c in reachable})
    if len(names) > 1:
        problems.append(f"cluster names differ: {', '.join(names)}")
    running = len(expected) - len(missing) if reachable else 0
    ok = not problems and bool(reachable)
    detail = f"{running}/{len(expected)} running, no partitions" if ok else "; ".join(problems) or "no nodes"
    return Check(RABBITMQ, "cluster", ok, detail,
                 {"expected": expected, "running": running, "total": len(expected),
                  "partitions": partitioned, "cluster_name": names[0] if len(names) == 1 else names})


def node_checks(plan: Plan, layout: Layout) -> list[Check]:
    """One check per RabbitMQ node, probed in parallel."""
    insts = plan.of(RABBITMQ)
    if not insts:
        return []
    with ThreadPoolExecutor(max_workers=len(insts)) as pool:
        return list(pool.map(lambda i: node_check(plan, layout, i), insts))


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """Per-node checks followed by the cluster check."""
    nodes = node_checks(plan, layout)
    if not nodes:
        return []
    return [*nodes, cluster_check(plan, nodes)]


def _definition(p: dict[str, Any]) -> dict[str, Any]:
    d = p.get("definition")
    if isinstance(d, str):
        try:
            d = json.loads(d)
        except ValueError:
            return {}
    return d if isinstance(d, dict) else {}


def policy_matches(p: dict[str, Any]) -> bool:
    """Whether a ``list_policies`` entry is exactly the HA policy we want."""
    return (p.get("name") == HA_POLICY and p.get("pattern") == HA_PATTERN
            and _definition(p) == HA_DEFINITION and p.get("apply-to") == HA_APPLY_TO
            and int(p.get("priority", 0)) == HA_PRIORITY)


def configure(plan: Plan, layout: Layout) -> str:
    """Contrail's mirroring policy (``ha`` on all but ``amq.*``) where it is missing; idempotent. The
    nodes import it at boot (``rendering.rabbitmq.definitions``): this only sets it on a cluster whose
    nodes booted without it (one started by an earlier version), so ``up`` reads "unchanged".

    Returns what was done ("unchanged" or "set"). Any running node will do: policies are
    cluster-wide. Raises RuntimeError when no node accepted it.
    """
    errors: list[str] = []
    for inst in plan.of(RABBITMQ):
        try:
            current = ctl_json(plan, layout, inst, "list_policies", "--vhost", "/")
        except RuntimeError as e:
            errors.append(f"{inst.host.name}: {e}")
            continue
        if any(policy_matches(p) for p in current or []):
            return "unchanged"
        cp = ctl(plan, layout, inst, "set_policy", "--vhost", "/", "--apply-to", HA_APPLY_TO,
                 "--priority", str(HA_PRIORITY), HA_POLICY, HA_PATTERN,
                 json.dumps(HA_DEFINITION, separators=(",", ":")))
        if cp.returncode == 0:
            return "set"
        errors.append(f"{inst.host.name}: {_error(cp)}")
    raise RuntimeError("could not set the ha policy: " + ("; ".join(errors) or "no rabbitmq nodes"))
