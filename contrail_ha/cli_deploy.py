"""``contrail-ha deploy``: the cluster on the topology's hosts, reached over SSH, with Ansible
(:mod:`contrail_ha.deploy`). ``status``, ``logs`` and ``down`` of a deployed cluster go over SSH
too (the runtime record says how the hosts are reached)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from contrail_ha.cli_common import DEFAULT_TOPOLOGY, _layout, _load, console, state_opt, topology_opt
from contrail_ha.cli_errors import CommandError, UsageProblem
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime.record import runtime_of
from contrail_ha.topology.plan import Plan


@click.command()
@topology_opt
@state_opt
@click.option("--image", "image", default=None, metavar="TAG",
              help="the image to run (default: this tree's, `contrail-ha image build`, built if missing)")
@click.option("--registry", default="", metavar="HOST[:PORT]/PATH",
              help="pull the image from the site's registry on hosts that lack it (default: save it here once and "
                   "copy it to them)")
@click.option("--image-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="where the saved image is (made if missing; default <state-root>/<cluster-id>/deploy/image.tar)")
def deploy(topology: Path | None, state_root: Path, image: str | None, registry: str,
           image_file: Path | None) -> None:
    """Deploy the cluster to the topology's hosts over SSH: engine, image, each host's Compose project
    and secrets, then every role tier by tier, each healthy before the next. Idempotent: a second run
    changes nothing; a changed topology or image rolls the changed containers one host at a time.

    The hosts are reached as `ssh -F <state-root>/<cluster-id>/ssh/config HOST` (root, the
    cluster's key: `contrail-ha hosts ssh-config`); `contrail-ha hosts up` stands them in on this
    machine."""
    plan, _ = _load(topology or DEFAULT_TOPOLOGY, state_root=state_root)
    deploy_cluster(plan, _layout(plan, state_root), image, registry=registry, image_file=image_file)


def deploy_cluster(plan: Plan, layout: Layout, image: str | None, *, registry: str = "",
                   image_file: Path | None = None) -> None:
    """Deploy (or re-deploy: roll what changed) ``plan`` to its hosts; ``deploy`` and ``scale`` of a
    deployed cluster."""
    from contrail_ha.cli_image import build_image
    from contrail_ha.deploy import bundle, runner
    from contrail_ha.remote import machines
    from contrail_ha.rendering.base import DEFAULT_STATE_ROOT
    from contrail_ha.runtime import netns, record
    from contrail_ha.topology import identity

    running = record.recorded_runtime(layout)
    if running in (record.PROCESSES, record.CONTAINERS):
        raise UsageProblem(f"cluster {plan.cluster_id} runs on this machine ({running}): `contrail-ha down` first")
    t0 = time.monotonic()

    def progress(m: str) -> None:
        console.print(f"[dim]{time.monotonic() - t0:6.1f}s[/] {m}")

    standin = netns.exists(netns.ns_name(plan, netns.CLIENT)) and all(
        machines.running(layout, h.name) for h in plan.topology.hosts)
    via = machines.client_argv(plan) if standin else []
    tag = image or build_image(progress)
    # the members' identities are the recorded ones (checked by _load), then recorded
    identity.write_record(layout.root, identity.with_record(plan.topology, layout.root))
    paths = bundle.write(plan, layout.root, DEFAULT_STATE_ROOT / plan.cluster_id, tag,
                         runner.deploy_dir(layout) / "bundles")
    progress(f"{len(paths)} host projects in {runner.deploy_dir(layout) / 'bundles'}; image {tag}"
             + (" (stand-in hosts: from the client namespace)" if standin else ""))
    record.write_deployed(layout, tag, via)
    variables = runner.variables(plan, layout, tag, registry=registry, image_file=image_file, standin=standin)
    try:
        out = runner.run(plan, layout, "site.yaml", variables, via, progress=progress)
    except runner.DeployError as e:
        raise CommandError(f"[red]deploy failed[/]: {e}") from e
    for line in _recap(out):
        console.print(f"  {line}")
    console.print(f"cluster {plan.cluster_id} deployed on {len(plan.topology.hosts)} hosts in "
                  f"{time.monotonic() - t0:.1f}s; VIP {plan.vip}; `contrail-ha status` reads it over SSH")


def status_deployed(plan: Plan, layout: Layout, as_json: bool) -> None:
    """``status`` of a deployed cluster: each host's containers over SSH, and the VIP's APIs."""
    import json

    from rich.table import Table

    from contrail_ha.cli_errors import Degraded
    from contrail_ha.deploy import remote

    rows = remote.status(plan, layout)
    healthy = all(r.ok for r in rows)
    if as_json:
        click.echo(json.dumps({"cluster": plan.cluster_id, "runtime": "deployed", "healthy": healthy,
                               "containers": [r.as_dict() for r in rows]}, indent=2))
        if not healthy:
            raise Degraded()
        return
    t = Table(title=f"cluster {plan.cluster_id} (deployed over SSH)  VIP {plan.vip}")
    for col in ("host", "container", "state", "health", "detail"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.host, r.container, r.state, "[green]healthy[/]" if r.ok else f"[red]{r.health}[/]", r.detail)
    console.print(t)
    if not healthy:
        raise Degraded("[red]degraded[/]: " + "; ".join(f"{r.container} on {r.host}: {r.state}/{r.health}"
                                                         for r in rows if not r.ok))
    console.print(f"[green]healthy[/]: {len(rows)} containers and APIs")


def down_deployed(plan: Plan, layout: Layout, purge: bool) -> None:
    """Stop and remove the cluster's containers on every host over SSH (``ansible/down.yaml``); with
    ``purge``, their projects and data too."""
    from contrail_ha.deploy import remote, runner

    tag = runtime_of(layout).get("image", "")
    variables = runner.variables(plan, layout, tag, purge=purge)
    try:
        out = runner.run(plan, layout, "down.yaml", variables, remote.via(layout),
                         progress=lambda m: console.print(f"[dim]{m}[/]"))
    except runner.DeployError as e:
        raise CommandError(f"[red]down failed on the hosts[/] (the record is kept: run it again): {e}") from e
    for line in _recap(out):
        console.print(f"  {line}")
    console.print(f"cluster {plan.cluster_id}: containers stopped and removed on every host"
                  + (", projects and data purged" if purge else " (projects and data kept)"))


def _recap(ansible_output: str) -> list[str]:
    """The PLAY RECAP lines: per host, how many tasks ran, changed something, failed."""
    return [ln.strip() for ln in ansible_output.splitlines() if " : ok=" in ln]
