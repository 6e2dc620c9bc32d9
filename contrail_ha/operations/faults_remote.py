"""Process faults on a cluster deployed over SSH: the same kill (held down), release and state as
:mod:`.faults`, done inside the process's container on its host (:mod:`.fault_agent` through
``podman exec``, as the user the container's processes run as) over the cluster's SSH."""

from __future__ import annotations

import json
import shlex
from typing import Any

from contrail_ha.deploy import remote
from contrail_ha.remote import ssh
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime import containers, ownership
from contrail_ha.topology.plan import Plan, group_of_process

TIMEOUT_S = 60
RECOVER_TIMEOUT_S = 600  # docker-compose up of a whole host


def _agent(plan: Plan, layout: Layout, host: str, verb: str, proc: str) -> dict[str, Any]:
    role = group_of_process(proc)
    user = "0:0" if role in containers.PRIVILEGED else ownership.RUN_AS  # kill needs the processes' own uid
    root = DEFAULT_STATE_ROOT / plan.cluster_id  # where the container mounts its host's project state
    cmd = (f"CONTAINERS_CONF={shlex.quote(remote.engine_conf(plan, host))} podman exec --user {user} "
           f"{containers.name(host, role)} {containers.IMAGE_PYTHON} -m contrail_ha.operations.fault_agent "
           f"{root} {shlex.quote(host)} {verb} {shlex.quote(proc)}")
    out = ssh.run(layout, host, ["sh", "-c", cmd], timeout=TIMEOUT_S, via=remote.via(layout))
    return dict(json.loads(out.strip().splitlines()[-1]))


def process_state(plan: Plan, layout: Layout, host: str, proc: str) -> dict[str, Any]:
    return _agent(plan, layout, host, "state", proc)


def kill(plan: Plan, layout: Layout, host: str, proc: str, hold: bool = True) -> list[int]:
    """kill -9 ``proc`` on ``host`` in its container; held down (``hold``) until :func:`heal`. The
    pids are the container's own."""
    st = _agent(plan, layout, host, "kill" if hold else "kill-restart", proc)
    return [p for p in (st.get("server_pid"), st.get("pid")) if p]


def heal(plan: Plan, layout: Layout, host: str, proc: str) -> None:
    _agent(plan, layout, host, "heal", proc)


def kill_host(plan: Plan, layout: Layout, host: str) -> int:
    """Every container of the cluster on ``host`` killed at once (SIGKILL to each container's main
    process, which takes its whole PID namespace): the host lost power, seen from its containers.
    Returns how many containers were killed."""
    cmd = (f"export CONTAINERS_CONF={shlex.quote(remote.engine_conf(plan, host))}\n"
           f"ids=$(podman ps -q {remote.ours_filter(plan, host)} --filter status=running)\n"
           "[ -z \"$ids\" ] || podman kill --signal KILL $ids >/dev/null\n"
           "echo $ids | wc -w\n")
    out = ssh.run(layout, host, ["sh", "-c", cmd], timeout=TIMEOUT_S, via=remote.via(layout))
    return int(out.strip().splitlines()[-1])


def recover_host(plan: Plan, layout: Layout, host: str) -> None:
    """What an operator does when the host is back: its Compose project up again (``docker-compose
    up -d`` there starts whatever the engine has not restarted by itself)."""
    d = remote.project_dir(plan, host)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in remote.compose_env(plan, host).items())
    ssh.run(layout, host, ["sh", "-c", f"cd {shlex.quote(d)} && {env} docker-compose up -d"],
            timeout=RECOVER_TIMEOUT_S, via=remote.via(layout))
