"""The ``contrail-ha`` command line: init, validate, render, export, up, scale, down, status, drill, ui, logs, image
(``cli_image``).

Exit status: 0 success; 1 the topology is invalid, the cluster degraded or an operation
failed; 2 usage error (bad option, unreadable file); 130 an interrupted drill. Commands report
errors by raising a :class:`CommandError` (exit 1, or its ``exit_code``) or a :class:`UsageProblem`
(exit 2); click prints them on stderr and exits with their code.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import click
from rich.table import Table

from contrail_ha.cli_common import (
    DEFAULT_TOPOLOGY,
    TopologyInvalid,
    _default_topology,
    _layout,
    _load,
    _plan,
    _print_report,
    _require_file,
    _require_root,
    console,
    state_opt,
    topology_opt,
)
from contrail_ha.cli_deploy import deploy
from contrail_ha.cli_errors import CommandError, DataLost, Degraded, Interrupted, UsageProblem, err
from contrail_ha.cli_hosts import hosts
from contrail_ha.cli_image import build_image, image
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime.record import deployed, runtime_of
from contrail_ha.runtime.supervisor_state import SupervisorDir
from contrail_ha.topology.validate import load_topology


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="contrail-ha")
def main() -> None:
    """contrail-ha: the containerized Contrail controller in high-availability mode."""


@main.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(path: Path | None, force: bool) -> None:
    """Write a commented example topology (the default HA cluster) to PATH or stdout."""
    text = DEFAULT_TOPOLOGY.read_text()
    if path is None:
        click.echo(text, nl=False)
        return
    if path.exists() and not force:
        raise UsageProblem(f"{path} exists; use --force to overwrite")
    path.write_text(text)
    console.print(f"wrote {path}; edit it, then `contrail-ha validate -t {path}`")


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
@topology_opt
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def validate(file: Path | None, topology: Path | None, as_json: bool) -> None:
    """Check a topology (FILE or -t FILE) without starting anything (exit 0 valid, 1 invalid)."""
    if file is not None and topology is not None and file.resolve() != topology.resolve():
        raise UsageProblem(f"two topology files given: {file} and -t {topology}; give one")
    path = file or topology or DEFAULT_TOPOLOGY
    _require_file(path)
    report = load_topology(path)
    if as_json:
        click.echo(json.dumps({"valid": report.ok, "problems": [p.__dict__ for p in report.problems]}, indent=2))
    elif report.ok:
        _print_report(report, path)
    if not report.ok:
        raise TopologyInvalid(report, path, quiet=as_json)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@topology_opt
def render(directory: Path, topology: Path | None) -> None:
    """Write every host's rendered configuration under DIRECTORY for inspection."""
    from contrail_ha.runtime import cluster

    plan, _ = _load(topology or DEFAULT_TOPOLOGY)
    layout = Layout(directory.resolve())
    gs = cluster.groups(plan, layout)
    for g in gs:
        SupervisorDir(Path(g.spec.run_dir)).write_spec(g.spec)
    n = sum(1 for p in layout.root.rglob("*") if p.is_file())
    console.print(f"rendered {n} files for {len(plan.topology.hosts)} hosts and the router into {layout.root}")


@main.command()
@click.argument("target", type=click.Choice(["compose", "kubernetes", "all"]))
@click.argument("directory", type=click.Path(file_okay=False, allow_dash=True, path_type=Path))
@topology_opt
@state_opt
@click.option("--image", default=None,
              help="container image (default localhost/contrail-ha:<version>, from `contrail-ha image build`; a "
                   "site registry's REPO@sha256:DIGEST is pulled Always)")
def export(target: str, directory: Path, topology: Path | None, state_root: Path, image: str | None) -> None:
    """Write production artifacts for the topology: Docker Compose per host and/or Kubernetes manifests.

    DIRECTORY gets a README.md, a manifest.json, compose/<host>/docker-compose.yaml with the
    host's rendered tree in compose/<host>/state, and kubernetes/<cluster-id>.yaml; `-` with
    `kubernetes` writes the manifests to stdout (`| kubectl apply -f -`). The cluster's secrets are
    made once and kept in its state root, so every export carries the same ones.
    """
    import shutil

    from contrail_ha import export as ex
    from contrail_ha.export import compose, kubernetes

    plan, _ = _load(topology or DEFAULT_TOPOLOGY, quiet=str(directory) == "-", state_root=state_root)
    root = DEFAULT_STATE_ROOT / plan.cluster_id  # where the hosts keep the state (the containers' mounts)
    kept = state_root / plan.cluster_id  # where this machine keeps the cluster's secrets
    if str(directory) == "-" and target != "kubernetes":
        raise UsageProblem("`-` (stdout) is for `export kubernetes` only")
    try:
        units = ex.units(plan, kept, root)
    except PermissionError as e:
        raise UsageProblem(f"the cluster's secrets are kept in {kept / 'secrets'}: {e.strerror}; run as root or "
                           "give a --state-root you can write") from e
    if str(directory) == "-":
        click.echo(kubernetes.text(plan, units, root, image), nl=False)
        return
    out = directory.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(kept / "secrets", out / "secrets", dirs_exist_ok=True)
    (out / "manifest.json").write_text(ex.manifest(units))
    (out / "README.md").write_text(ex.readme(plan, root))
    if target in ("compose", "all"):
        files = ex.write(units, out / "compose")
        paths = compose.write(plan, units, out / "compose", root, image)
        console.print(f"compose: {len(paths)} hosts, {files} rendered files under {out / 'compose'}")
    if target in ("kubernetes", "all"):
        f = kubernetes.write(plan, units, out / "kubernetes", root, image)
        console.print(f"kubernetes: {f} ({len({u.group for u in units})} DaemonSets)")
    console.print("image: `contrail-ha image build`, then `contrail-ha image save FILE` and `podman load -i FILE` on "
                  "each host (see the README there)")


@main.command()
@topology_opt
@state_opt
@click.option("--containers/--processes", "in_containers", default=None,
              help="every host's roles as containers of the product's image (the default; built first if "
                   "needed), or as supervised processes; a running cluster keeps its own")
@click.option("--all-at-once", is_flag=True,
              help="containers of a stopped cluster: start every host's containers together with no waves, as "
                   "`docker compose up` of the exported files on each host does (slower on 2 cores)")
def up(topology: Path | None, state_root: Path, in_containers: bool | None, all_at_once: bool) -> None:
    """Bring the cluster up locally (idempotent): namespaces, then every component in waves."""
    from contrail_ha.runtime import at_once, cluster, record

    _require_root()
    plan, path = _load(topology or DEFAULT_TOPOLOGY, state_root=state_root)
    layout = _layout(plan, state_root)
    if all_at_once and in_containers is False:
        raise UsageProblem("--all-at-once starts containers; it cannot be combined with --processes")
    try:
        in_containers = record.choose(layout, True if all_at_once else in_containers) == record.CONTAINERS
    except record.RuntimeMismatch as e:
        raise UsageProblem(str(e)) from e
    t0 = time.monotonic()

    def progress(m: str) -> None:
        console.print(f"[dim]{time.monotonic() - t0:6.1f}s[/] {m}")

    image = build_image(progress) if in_containers else None
    try:
        if all_at_once:
            assert image is not None
            at_once.up(plan, layout, image, progress=progress, topology_text=path.read_text())
        else:
            cluster.up(plan, layout, progress=progress, topology_text=path.read_text(), image=image)
    except record.RuntimeMismatch as e:
        raise UsageProblem(str(e)) from e
    except cluster.UpError as e:
        raise CommandError(f"[red]up failed[/]: {e}\n"
                           "the cluster is partly up; `contrail-ha status` shows what runs, `contrail-ha down` stops it"
                           ) from e
    console.print("run `contrail-ha status` to see every component's health")


@main.command()
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=REPLICAS...")
@topology_opt
@state_opt
@click.option("--no-apply", is_flag=True, help="only edit and validate the topology file")
def scale(assignments: tuple[str, ...], topology: Path | None, state_root: Path, no_apply: bool) -> None:
    """Set how many contrail-api / contrail-analytics-api replicas run per host, e.g. `scale config-api=2`.

    Edits the topology file (comments kept), validates it, then applies it to the running cluster:
    new replicas start and join HAProxy's backends (HAProxy reloads, no connection is dropped);
    removed ones stop. Deployed over SSH: re-deployed, changed containers recreated host by host.
    """
    import tempfile

    from contrail_ha.topology.edit import EditError, parse_assignments, set_services

    path = topology or _default_topology()
    _require_file(path)
    try:
        values = parse_assignments(assignments)
        text = set_services(path.read_text(), values)
    except EditError as e:
        raise UsageProblem(str(e)) from e
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=path.parent, delete=False) as tmp:
        tmp.write(text)
    report = load_topology(Path(tmp.name))
    if not report.ok:
        Path(tmp.name).unlink()
        raise TopologyInvalid(report, path)
    Path(tmp.name).replace(path)
    console.print(f"{path}: " + ", ".join(f"services.{k} = {v}" for k, v in values.items()))
    if no_apply:
        return
    from contrail_ha.runtime import cluster, netns, record

    plan = _plan(report, path, state_root)
    layout = _layout(plan, state_root)
    if deployed(layout):  # on hosts over SSH: the deployment rolls what changed, one host at a time
        from contrail_ha.cli_deploy import deploy_cluster

        deploy_cluster(plan, layout, runtime_of(layout).get("image") or None)
        return
    if not netns.exists(netns.ns_name(plan, netns.CLIENT)):
        console.print(f"cluster {plan.cluster_id} is not up: `contrail-ha up -t {path}` starts it scaled")
        return
    _require_root()
    t0 = time.monotonic()
    try:
        cluster.up(plan, layout, topology_text=text, progress=lambda m: console.print(
            f"[dim]{time.monotonic() - t0:6.1f}s[/] {m}"))
    except record.RuntimeMismatch as e:
        raise UsageProblem(str(e)) from e
    except cluster.UpError as e:
        raise CommandError(f"[red]scale failed[/]: {e}") from e


@main.command()
@topology_opt
@state_opt
@click.option("--purge", is_flag=True, help="also delete the cluster's data and rendered files")
def down(topology: Path | None, state_root: Path, purge: bool) -> None:
    """Stop every process and remove every namespace, veth and mount of the cluster."""
    from contrail_ha.runtime import cluster

    plan, _ = _load(topology, quiet=True, state_root=state_root, strict=False)
    layout = _layout(plan, state_root)
    if deployed(layout):  # on hosts over SSH: stopped there first
        from contrail_ha.cli_deploy import down_deployed

        down_deployed(plan, layout, purge)
    _require_root()
    leftovers = cluster.down(plan, layout, purge=purge, progress=lambda m: console.print(m))
    if leftovers:
        raise CommandError(f"[red]left behind[/]: {leftovers}")
    console.print(f"cluster {plan.cluster_id} is down")


@main.command()
@topology_opt
@state_opt
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(topology: Path | None, state_root: Path, as_json: bool) -> None:
    """Health read from the components themselves; exit 1 when anything is degraded."""
    from contrail_ha.operations.status import collect
    from contrail_ha.runtime import netns

    plan, _ = _load(topology, quiet=True, state_root=state_root)
    layout = _layout(plan, state_root)
    if deployed(layout):
        from contrail_ha.cli_deploy import status_deployed

        status_deployed(plan, layout, as_json)
        return
    _require_root()
    client = netns.ns_name(plan, netns.CLIENT)
    if not netns.exists(client):
        msg = f"cluster {plan.cluster_id} is not up (no namespace {client}); run `contrail-ha up`"
        if as_json:
            click.echo(json.dumps({"cluster": plan.cluster_id, "healthy": False, "error": msg}))
            raise Degraded()
        raise Degraded(msg)
    netns.enter(client)
    checks = collect(plan, layout)
    healthy = all(c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"cluster": plan.cluster_id, "healthy": healthy,
                               "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        t = Table(title=f"cluster {plan.cluster_id}  VIP {plan.vip}")
        for col in ("component", "where", "state", "detail"):
            t.add_column(col)
        for c in checks:
            t.add_row(c.component, c.target, "[green]ok[/]" if c.ok else "[red]DEGRADED[/]", c.detail)
        console.print(t)
        bad = [c for c in checks if not c.ok]
        if bad:
            raise Degraded("[red]degraded[/]: " + "; ".join(f"{c.component} on {c.target}: {c.detail}" for c in bad))
        console.print(f"[green]healthy[/]: {len(checks)} checks")
    if not healthy:
        raise Degraded()


@main.command()
@topology_opt
@state_opt
@click.option("--fault", "fault_names", multiple=True, metavar="NAME",
              help="fault to inject (repeatable; NAME+NAME injects several at once; default: every fault "
                   "the topology survives)")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100), help="runs of each fault")
@click.option("--seconds", default=8.0, show_default=True, type=click.FloatRange(1, 600),
              help="how long each fault is held before it is healed")
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(1, 1000),
              help="workload requests per second through the VIP (open loop)")
@click.option("--keep", is_flag=True, help="keep the objects the drill created (default: delete them after the check)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--heal", "heal_only", is_flag=True,
              help="inject nothing: undo what a drill killed mid-fault left (held processes, cables, partitions)")
def drill(topology: Path | None, state_root: Path, fault_names: tuple[str, ...], repeat: int, seconds: float,
          rate: float, keep: bool, as_json: bool, heal_only: bool) -> None:
    """Inject real faults one at a time under a steady workload through the VIP; check no data is lost."""
    import asyncio

    from contrail_ha.operations.drill import FAULTS, as_dict, run_fault, save
    from contrail_ha.operations.drill_faults import fault_named
    from contrail_ha.operations.faults import heal_all
    from contrail_ha.runtime import netns, record

    _require_root()
    plan, _ = _load(topology, quiet=True, state_root=state_root)
    try:  # a heal re-renders: not into containers of another contrail-ha's image
        record.check_code(_layout(plan, state_root))
    except record.RuntimeMismatch as e:
        raise UsageProblem(str(e)) from e
    if heal_only:
        if not netns.exists(netns.ns_name(plan, netns.CLIENT)):
            raise CommandError(f"cluster {plan.cluster_id} is not up; nothing to heal")
        healed = heal_all(plan, _layout(plan, state_root))
        for line in healed:
            console.print(f"healed: {line}")
        console.print(f"{len(healed)} fault(s) healed" if healed else "nothing to heal")
        return
    unknown = [p for n in fault_names for p in n.split("+") if p not in FAULTS]
    if unknown:
        raise UsageProblem(f"unknown fault(s) {', '.join(unknown)}; faults: {', '.join(FAULTS)} "
                           "(several at once: NAME+NAME)")
    chosen = [fault_named(n) for n in (fault_names or FAULTS)]
    refused = [(f.name, why) for f in chosen if (why := f.needs(plan))]
    if refused and fault_names:
        raise CommandError("\n".join(f"refusing to inject {name}: the topology cannot survive it: {why}"
                                     for name, why in refused))
    for name, why in refused:
        console.print(f"[yellow]skipping[/] {name}: {why}")
    chosen = [f for f in chosen if not f.needs(plan)]
    client = netns.ns_name(plan, netns.CLIENT)
    layout = _layout(plan, state_root)
    if deployed(layout):  # on hosts over SSH: the faults kill processes in their containers there
        unsupported = [f.name for f in chosen if not f.over_ssh]
        if unsupported:
            raise UsageProblem("on a cluster deployed over SSH the drill injects "
                               f"{', '.join(n for n, f in FAULTS.items() if f.over_ssh)}; not yet: "
                               f"{', '.join(unsupported)}")
    elif not netns.exists(client):
        raise CommandError(f"cluster {plan.cluster_id} is not up; run `contrail-ha up`")
    if netns.exists(client):  # the operator's side of stand-in or local hosts (real hosts: this machine's)
        netns.enter(client)

    async def all_faults() -> list:
        # SIGTERM as Ctrl-C: the drill heals the fault it holds, then stops
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        for _ in range(repeat):
            for f in chosen:
                results.append(await run_fault(plan, layout, f, fault_seconds=seconds, rate=rate, keep=keep,
                                               progress=err.print if as_json else console.print))
                save(results, layout, path)  # after each fault: an interrupted matrix keeps what it measured
        return results

    results: list = []
    path = save([], layout)
    try:
        asyncio.run(all_faults())
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise Interrupted(f"drill interrupted (the fault in progress was healed); results so far: {path}") from None
    if as_json:
        click.echo(json.dumps([as_dict(r) for r in results], indent=2))
    else:
        t = Table(title=f"drill results ({path})")
        for col in ("fault", "requests", "failed", "longest outage s", "gap s", "writes back s", "p99 ms", "recovery s",
                    "acked", "lost", "dup names", "dup ids", "replicas differ", "messages", "msgs lost",
                    "register ops", "graph ops", "data"):
            t.add_column(col)
        for r in results:
            t.add_row(r.fault, str(r.requests), str(sum(r.failed.values())), str(r.longest_outage_s),
                      str(r.longest_gap_s), str(r.writes_back_s), str(r.p99_during_fault_ms),
                      str(r.recovery_s) + ("" if r.recovered else " (not recovered)"), str(r.acked_creates),
                      str(r.lost), str(r.duplicate_fq_names), str(r.duplicate_vn_ids), str(r.replicas_disagree),
                      str(r.analytics_sent), str(r.analytics_lost + r.analytics_duplicates),
                      f"{r.register_ops}" + ("" if r.register_linearizable else " NOT linearizable"),
                      f"{r.graph_ops}" + (f" {r.graph_violations} violations" if r.graph_violations else ""),
                      "[green]ok[/]" if r.data_ok else "[red]LOST/DUP[/]")
        console.print(t)
        for r in results:
            if not r.register_linearizable:
                console.print(f"[red]{r.fault}: the register's history is not linearizable[/]; the smallest "
                              "window that cannot be ordered:\n  " + "\n  ".join(r.register_window))
            if r.graph_violations:
                console.print(f"[red]{r.fault}: {r.graph_violations} violations in the object graph[/]; the first:\n  "
                              + "\n  ".join(r.graph_examples))
    if not all(r.data_ok for r in results):
        raise DataLost()


@main.command()
@topology_opt
@state_opt
@click.option("--listen", default="127.0.0.1:8180", show_default=True, metavar="IP:PORT",
              help="where the UI listens (in this machine's own network namespace)")
def ui(topology: Path | None, state_root: Path, listen: str) -> None:
    """Serve the web UI: status, topology, alarms, UVEs, drill results and config objects."""
    from contrail_ha.operations.status import collect
    from contrail_ha.runtime import netns
    from contrail_ha.ui import server

    _require_root()
    plan, _ = _load(topology, quiet=True, state_root=state_root)
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageProblem(f"--listen {listen!r}: expected IP:PORT")
    try:
        sock = server.listen(host.strip("[]"), int(port))  # bound here, before moving to the client namespace
    except OSError as e:
        raise CommandError(f"error: cannot listen on {listen}: {e}") from e
    client = netns.ns_name(plan, netns.CLIENT)
    if netns.exists(client):
        netns.enter(client)  # the cluster is reached from the client namespace, as users reach it
    else:
        console.print(f"[yellow]cluster {plan.cluster_id} is not up[/]: the UI shows what it can")
    console.print(f"contrail-ha UI of cluster {plan.cluster_id}: http://{listen}/")
    server.serve(server.build(plan, _layout(plan, state_root), collect), sock)


@main.command()
@click.argument("host")
@click.argument("service", required=False)
@topology_opt
@state_opt
@click.option("-n", "--lines", default=50, show_default=True, help="lines per file")
def logs(host: str, service: str | None, topology: Path | None, state_root: Path, lines: int) -> None:
    """Show the last lines of HOST's logs (of SERVICE only, if given)."""
    plan, _ = _load(topology, quiet=True, state_root=state_root)
    layout = _layout(plan, state_root)
    hosts = [h.name for h in plan.topology.hosts] + ["router"]
    if host not in hosts:
        raise UsageProblem(f"unknown host {host!r}; hosts: {', '.join(hosts)}")
    from contrail_ha.runtime import cluster, containers

    if host != "router" and deployed(layout):  # on the host, over SSH
        from contrail_ha.deploy import remote

        click.echo(remote.logs(plan, layout, host, lines, service) or f"no log lines of {service} on {host}")
        return
    if host != "router" and cluster.runtime_of(layout)["runtime"] == "containers":  # the engine keeps them
        from contrail_ha.image.engine import Engine

        for g in (g for g in cluster.recorded_groups(layout) if g.node == host):
            if text := containers.logs(Engine(), containers.name(host, g.role), lines, service):
                console.rule(f"container {containers.name(host, g.role)}")
                click.echo(text)
    base = layout.router_dir if host == "router" else layout.host_dir(host)
    files = sorted((base / "logs").glob("*.out"))
    if service:
        files = [f for f in files if f.stem.startswith(service)]
        files += sorted((base / service / "log").glob("*")) if (base / service / "log").exists() else []
    if not files and cluster.runtime_of(layout)["runtime"] != "containers":
        raise CommandError(f"error: no logs for {host}{'/' + service if service else ''} under {base}")
    for f in files:
        if f.is_file():
            console.rule(str(f))
            click.echo("\n".join(f.read_text(errors="replace").splitlines()[-lines:]))


main.add_command(image)
main.add_command(hosts)
main.add_command(deploy)

if __name__ == "__main__":
    main()
