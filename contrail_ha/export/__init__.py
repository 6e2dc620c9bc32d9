"""Production targets as generated artifacts: Docker Compose per host and Kubernetes manifests.

Both run the same thing as the local runtime: one container per role group on each host (the
seed's contrail-lb, contrail-controller, contrail-analytics, contrail-analyticsdb, plus the
host's node agent), each a role supervisor (``python -m contrail_ha.runtime.supervisor
--container``: every process of the group runs, its output in the container's log, a
crash-looping one fails the container) over the configuration rendered from the topology, with
the host's network (``network_mode: host`` / ``hostNetwork``), as Contrail's containers ran. The
image is the product's own (``contrail-ha image build``, carried to hosts with ``image save``
and ``podman load`` / ``docker load``): it holds the runtime, the pinned jars and contrail-ha, so
nothing of the exporting machine is mounted into the containers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout, ProcessSpec, python
from contrail_ha.runtime.cluster import host_groups
from contrail_ha.runtime.supervisor import GroupSpec
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import NODE_GROUP, Plan

IMAGE_PYTHON = "/opt/contrail-ha/venv/bin/python"
CONTAINER_NAMES = {Role.LB.value: "contrail-lb", Role.CONTROLLER.value: "contrail-controller",
                   Role.ANALYTICS.value: "contrail-analytics", Role.ANALYTICSDB.value: "contrail-analyticsdb",
                   NODE_GROUP: "contrail-node-agent"}
PRIVILEGED = {Role.LB.value}  # the VIP on lo, BIRD's routes, ip_nonlocal_bind (Contrail ran contrail-lb privileged)


@dataclass(frozen=True)
class ExportLayout(Layout):
    """The containers' layout (``root`` is their state root); its secrets are kept in the export directory,
    not in a local cluster's state."""

    secrets_root: Path = Path(".")  # secrets live in <secrets_root>/secrets/<name>

    def secret(self, name: str) -> str:
        return Layout(self.secrets_root).secret(name)


@dataclass
class Unit:
    """One container: a role group on one host, with its rendered files (paths under the state root)."""

    host: str
    group: str
    spec: GroupSpec
    files: dict[str, str]  # path relative to the state root -> text
    modes: dict[str, int]  # path relative to the state root -> mode, where not 0o644 (files) / default (dirs)
    dirs: list[str]  # directories the processes need (data, logs, sockets), relative to the state root

    @property
    def name(self) -> str:
        return CONTAINER_NAMES[self.group]

    def command(self) -> list[str]:
        spec = Path(self.spec.run_dir) / "spec.json"
        return [IMAGE_PYTHON, "-m", "contrail_ha.runtime.supervisor", "--container", str(spec)]


def _image_argv(p: ProcessSpec) -> ProcessSpec:
    """Our own processes run with the image's interpreter."""
    argv = [IMAGE_PYTHON if a == python() else a for a in p.argv]
    return replace(p, argv=argv)


def units(plan: Plan, out: Path, root: Path | None = None) -> list[Unit]:
    """Every container of the cluster (the upstream router is the operator's network: not exported).
    Secrets (the Erlang cookie) are made once and kept under ``out``."""
    root = root or DEFAULT_STATE_ROOT / plan.cluster_id
    layout = ExportLayout(root, secrets_root=out)

    def rel(p: Path | str) -> str:
        return str(Path(p).relative_to(root))

    result: list[Unit] = []
    for g, rendered in host_groups(plan, layout):
        spec = replace(g.spec, processes=[_image_argv(p) for p in g.spec.processes])
        files = {rel(path): text for r in rendered for path, text in r.files.items()}
        files[rel(Path(spec.run_dir) / "spec.json")] = spec.to_json()
        modes = {rel(path): mode for r in rendered for path, mode in r.modes.items()}
        dirs = sorted({rel(d) for r in rendered for d in r.dirs} | {rel(spec.run_dir), rel(spec.log_dir)})
        result.append(Unit(g.node, g.role, spec, files, modes, dirs))
    return result


def place(root: Path, files: dict[str, str], modes: dict[str, int], dirs: list[str]) -> int:
    """Create ``dirs`` and ``files`` (paths relative to ``root``) with their ``modes``; returns the number of files."""
    import os

    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
        if d in modes:
            os.chmod(root / d, modes[d])
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if f.exists():
            os.chmod(f, 0o600)
        f.write_text(text)
        os.chmod(f, modes.get(rel, 0o644))
    return len(files)


def write(units_: list[Unit], out: Path) -> int:
    """Each unit's tree under ``out/<host>/state`` (what the host mounts as the state root); files written."""
    return sum(place(out / u.host / "state", u.files, u.modes, u.dirs) for u in units_)


def readme(plan: Plan, root: Path) -> str:
    """How to run the exported artifacts."""
    lbs = ", ".join(h.name for h in plan.lbs)
    return f"""# contrail-ha cluster `{plan.cluster_id}`: production artifacts

Generated by `contrail-ha export` from the topology; regenerate after every topology change.
Each host of the topology is a machine with the topology's IP; every container uses the host's
network (as Contrail's containers did), so the rendered configurations apply unchanged.

1. Build the image once, on a Debian 12 machine with a clone of contrail-ha (`scripts/install.sh`
   first): `contrail-ha image build`, then `contrail-ha image save contrail-ha.tar`; copy the file
   to every host and `podman load -i contrail-ha.tar` (or `docker load -i`). No registry is needed.
2. On the lb hosts ({lbs}): `sysctl -w net.ipv4.ip_nonlocal_bind=1` (HAProxy binds the VIP
   {plan.vip} before the lb agent puts it on `lo`), and peer BIRD with your upstream router
   (AS {plan.topology.lb.router_asn}, the lbs in AS {plan.topology.lb.lb_asn}).
3. Docker Compose: copy `compose/<host>/` to each host (it holds `docker-compose.yaml` and the host's
   rendered tree, `state/`, mounted as `{root}`), then `docker compose up -d` there. Start the
   controllers first (ZooKeeper, Cassandra, RabbitMQ), then the analyticsdb hosts, then the others;
   every process retries its dependencies, so the order only shortens the start.
4. Kubernetes: label nothing; the Deployments are pinned with `kubernetes.io/hostname`, so the node
   names must be the topology's host names. `kubectl apply -f kubernetes/{plan.cluster_id}.yaml`.
   Data stays on each node under `{root}` (hostPath).

`secrets/` holds the cluster's Erlang cookie: keep it, and keep it private.
"""


def manifest(units_: list[Unit]) -> str:
    """What was exported, for tools and tests."""
    return json.dumps([{"host": u.host, "group": u.group, "container": u.name, "files": sorted(u.files),
                        "dirs": u.dirs} for u in units_], indent=2) + "\n"
