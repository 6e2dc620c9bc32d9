"""Bring a cluster up and down locally: plan -> rendered files -> supervised processes.

``up`` is idempotent: it creates what is missing, re-renders every file, starts the role
supervisors and enables processes in readiness-driven waves (ZooKeeper quorum before Kafka,
Cassandra seeds before the other nodes, the stores before our services, our services before
the lb). ``down`` stops everything it started, by PID, and removes every namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from contrail_ha.errors import ContrailHaError
from contrail_ha.image.engine import Engine, EngineError
from contrail_ha.probes import bird as p_bird
from contrail_ha.probes import cassandra as p_cassandra
from contrail_ha.probes import haproxy as p_haproxy
from contrail_ha.probes import kafka as p_kafka
from contrail_ha.probes import rabbitmq as p_rabbitmq
from contrail_ha.probes import services as p_services
from contrail_ha.probes import zookeeper as p_zookeeper
from contrail_ha.rendering import bird as r_bird
from contrail_ha.rendering import cassandra as r_cassandra
from contrail_ha.rendering import haproxy as r_haproxy
from contrail_ha.rendering import kafka as r_kafka
from contrail_ha.rendering import pki
from contrail_ha.rendering import rabbitmq as r_rabbitmq
from contrail_ha.rendering import services as r_services
from contrail_ha.rendering import zookeeper as r_zookeeper
from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered, python
from contrail_ha.runtime import compose_run, containers, netns, network, ownership, pids, rollout
from contrail_ha.runtime.record import RUNTIME_FILE, check_code, runtime_of
from contrail_ha.runtime.record import write as record_runtime
from contrail_ha.runtime.steps import run_steps
from contrail_ha.runtime.supervisor import CONFIG_DIGEST, GroupSpec
from contrail_ha.runtime.supervisor_state import SupervisorDir
from contrail_ha.topology import identity
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import (
    AGGREGATOR,
    ANALYTICS_API,
    ANALYTICS_DB,
    BIRD,
    COLLECTOR,
    CONFIG_API,
    CONFIG_DB,
    GROUP_OF,
    HAPROXY,
    KAFKA,
    LB_AGENT,
    NODE_AGENT,
    NODE_GROUP,
    RABBITMQ,
    ZOOKEEPER,
    Instance,
    Plan,
)

Progress = Callable[[str], None]

# component -> (rendering module, probe module): an explicit registry, no module looked up by name
MODULES: dict[str, tuple[ModuleType, ModuleType]] = {
    ZOOKEEPER: (r_zookeeper, p_zookeeper),
    RABBITMQ: (r_rabbitmq, p_rabbitmq),
    CONFIG_DB: (r_cassandra, p_cassandra),
    ANALYTICS_DB: (r_cassandra, p_cassandra),
    KAFKA: (r_kafka, p_kafka),
    CONFIG_API: (r_services, p_services),
    ANALYTICS_API: (r_services, p_services),
    HAPROXY: (r_haproxy, p_haproxy),
    BIRD: (r_bird, p_bird),
    LB_AGENT: (r_services, p_services),
    COLLECTOR: (r_services, p_services),
    AGGREGATOR: (r_services, p_services),
    NODE_AGENT: (r_services, p_services),
}
GROUP_ORDER = [Role.CONTROLLER.value, Role.ANALYTICSDB.value, Role.ANALYTICS.value, Role.LB.value, NODE_GROUP]
ROUTER_ROLE = "router"
QUORUM_TIMEOUT_S = 90.0  # a ZooKeeper ensemble whose servers all started must settle on a leader within this
COMPONENT_ORDER = [ZOOKEEPER, RABBITMQ, CONFIG_DB, CONFIG_API, ANALYTICS_DB, KAFKA, COLLECTOR, AGGREGATOR,
                   ANALYTICS_API, HAPROXY, BIRD, LB_AGENT, NODE_AGENT]


class UpError(ContrailHaError, RuntimeError):
    """A wave did not become ready; the message says what and where, with the log tail."""


def renderer(component: str) -> Callable[[Plan, Instance, Layout], Rendered]:
    render: Callable[[Plan, Instance, Layout], Rendered] = MODULES[component][0].render
    return render


def prober(component: str) -> ModuleType:
    return MODULES[component][1]


# --- rendering ----------------------------------------------------------------------------------
def render_instance(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    r: Rendered = renderer(inst.component)(plan, inst, layout)
    # A config change must restart the process: fold the files' digest into its environment.
    digest = hashlib.sha256("".join(f"{k}\0{v}\0" for k, v in sorted((str(k), v) for k, v in r.files.items()))
                            .encode()).hexdigest()[:16]
    r.processes = [replace(p, env={**p.env, CONFIG_DIGEST: digest}) for p in r.processes]
    return r


def render_router(plan: Plan, layout: Layout) -> Rendered:
    return r_bird.render_router(plan, layout)


def write(r: Rendered) -> None:
    for d in r.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
    for path, text in r.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = r.modes.get(path, 0o644)
        if not path.exists() or path.read_text() != text:
            if path.exists():
                os.chmod(path, 0o600)
            path.write_text(text)
        os.chmod(path, mode)
    for d in r.dirs:  # directory modes too (e.g. the Erlang HOME, 0o700)
        if d in r.modes:
            os.chmod(d, r.modes[d])


@dataclass
class Group:
    """One role's supervised process group on one node."""

    node: str  # host name or "router"
    role: str
    spec: GroupSpec

    @property
    def run_dir(self) -> Path:
        return Path(self.spec.run_dir)


def host_groups(plan: Plan, layout: Layout) -> list[tuple[Group, list[Rendered]]]:
    """Every host's supervisor groups with the rendered files of their processes (nothing is written)."""
    out: list[tuple[Group, list[Rendered]]] = []
    for h in plan.topology.hosts:
        by_role: dict[str, list[ProcessSpec]] = {}
        files: dict[str, list[Rendered]] = {}
        for comp in COMPONENT_ORDER:
            for inst in plan.of(comp):
                if inst.host.name != h.name:
                    continue
                r = render_instance(plan, inst, layout)
                by_role.setdefault(GROUP_OF[comp], []).extend(r.processes)
                files.setdefault(GROUP_OF[comp], []).append(r)
        for role in GROUP_ORDER:
            procs = by_role.get(role)
            if procs:
                spec = replace(_spec(layout, h.name, role, procs),
                               writable=sorted({str(d) for r in files[role] for d in r.dirs}))
                out.append((Group(h.name, role, spec), files[role]))
    return out


def groups(plan: Plan, layout: Layout) -> list[Group]:
    """Render everything and return the supervisor groups (files are written)."""
    out: list[Group] = []
    for g, rendered in rendered_groups(plan, layout):
        for r in rendered:
            write(r)
        out.append(g)
    return out


def rendered_groups(plan: Plan, layout: Layout) -> list[tuple[Group, list[Rendered]]]:
    """Every supervisor group, the router's included, with its rendered files (nothing is written)."""
    rr = render_router(plan, layout)
    router = Group(netns.ROUTER, ROUTER_ROLE, _spec(layout, netns.ROUTER, ROUTER_ROLE, rr.processes))
    return [*host_groups(plan, layout), (router, [rr])]


def apply(plan: Plan, layout: Layout, g: Group, rendered: list[Rendered]) -> int:
    """Write a group's files and start its supervisor, or have the running one reload its spec."""
    for r in rendered:
        write(r)
    return start_supervisor(plan, g, layout)


def _spec(layout: Layout, node: str, role: str, procs: list[ProcessSpec]) -> GroupSpec:
    base = layout.root / "hosts" / node if node != netns.ROUTER else layout.router_dir
    return GroupSpec(host=node, role=role, run_dir=str(base / "supervisor" / role),
                     log_dir=str(base / "logs"), processes=procs)


# --- supervisors ----------------------------------------------------------------------------------
def supervisor_pid(g: Group) -> int | None:
    return SupervisorDir(g.run_dir).running_pid()


def start_supervisor(plan: Plan, g: Group, layout: Layout) -> int:
    rt = runtime_of(layout)
    container = rt["runtime"] == "containers" and g.node != netns.ROUTER
    spec = containers.in_image(g.spec) if container else g.spec
    if spec.run_as:  # what was written since the container started (or before it) is its user's too
        ownership.hand_over(spec.owned(), *ownership.parse(spec.run_as))
    sd = SupervisorDir(g.run_dir)
    changed = sd.write_spec(spec)
    spec_file = sd.spec_file
    pid = supervisor_pid(g)
    if pid:
        if changed:
            os.kill(pid, signal.SIGHUP)
        return pid
    Path(g.spec.log_dir).mkdir(parents=True, exist_ok=True)
    if container:
        compose_run.up(Engine(), layout, g.node, g.role)
    else:
        argv = netns.exec_argv(plan, g.node, [python(), "-m", "contrail_ha.runtime.supervisor", str(spec_file)])
        with open(Path(g.spec.log_dir) / f"supervisor-{g.role}.out", "ab") as out:
            subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd="/")
    deadline = time.monotonic() + (60 if container else 20)
    while time.monotonic() < deadline:
        pid = supervisor_pid(g)
        if pid:
            return pid
        time.sleep(0.05)
    where = f"`podman logs {containers.name(g.node, g.role)}`" if container else \
        f"{g.spec.log_dir}/supervisor-{g.role}.out"
    raise UpError(f"supervisor {g.node}/{g.role} did not start; see {where}")


def enable(layout: Layout, plan: Plan, node: str, role: str, names: list[str]) -> None:
    d = SupervisorDir.of(layout, node, role)
    for n in names:
        d.enable(n)


def process_names(plan: Plan, layout: Layout, inst: Instance) -> list[str]:
    return [p.name for p in renderer(inst.component)(plan, inst, layout).processes]


def log_tail(layout: Layout, node: str, name: str, lines: int = 15) -> str:
    if runtime_of(layout)["runtime"] == "containers":
        role = next((g.role for g in recorded_groups(layout)
                     if g.node == node and any(p.name == name for p in g.spec.processes)), None)
        if role is not None:
            return containers.logs(Engine(), containers.name(node, role), lines, name)
    f = layout.root / "hosts" / node / "logs" / f"{name}.out"
    try:
        return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- waves ----------------------------------------------------------------------------------------
def wait_ready(plan: Plan, layout: Layout, insts: list[Instance], timeout: float, progress: Progress,
               abort: threading.Event | None = None) -> None:
    """Poll every instance's readiness probe until all are ready (no fixed sleeps)."""
    t0 = time.monotonic()
    pending = {(i.component, i.host.name, i.name): i for i in insts}
    last: dict[tuple[str, str, str], str] = {}
    while pending:
        for key, inst in list(pending.items()):
            try:
                ok, detail = prober(inst.component).ready(plan, layout, inst)
            except Exception as e:
                ok, detail = False, f"{e.__class__.__name__}: {e}"
            last[key] = detail
            if ok:
                del pending[key]
                progress(f"  ready: {inst.name} on {inst.host.name} ({detail}) after {time.monotonic() - t0:.1f}s")
        if not pending:
            break
        if abort is not None and abort.is_set():
            raise UpError("aborted: another start-up step failed")
        if time.monotonic() - t0 > timeout:
            key, inst = next(iter(pending.items()))
            raise UpError(f"{inst.name} on {inst.host.name} not ready after {timeout:.0f}s: {last.get(key)}\n"
                          f"last log lines ({layout.root}/hosts/{inst.host.name}/logs/{inst.name}.out):\n"
                          f"{log_tail(layout, inst.host.name, inst.name)}")
        time.sleep(0.3)


def _start_wave(plan: Plan, layout: Layout, insts: list[Instance], timeout: float, progress: Progress,
                abort: threading.Event | None = None) -> None:
    if not insts:
        return
    t0 = time.monotonic()
    progress(f"starting {insts[0].component} on {', '.join(sorted({i.host.name for i in insts}))}")
    for inst in insts:
        enable(layout, plan, inst.host.name, GROUP_OF[inst.component], process_names(plan, layout, inst))
    wait_ready(plan, layout, insts, timeout, progress, abort)
    progress(f"{insts[0].component}: {len(insts)} ready in {time.monotonic() - t0:.1f}s")


def prepare(plan: Plan, layout: Layout, progress: Progress, topology_text: str | None, image: str | None,
            orchestrated: bool = True) -> list[tuple[Group, list[Rendered]]]:
    """What comes before any supervisor starts: the runtime recorded, the namespaces, the rendered
    groups and, on containers, each host's Compose project."""
    layout.root.mkdir(parents=True, exist_ok=True)
    check_code(layout)  # refused before anything changes, as a renumbering topology is:
    # the members' identities must be the recorded ones, then are recorded (new hosts get theirs)
    identity.write_record(layout.root, identity.with_record(plan.topology, layout.root))
    if topology_text is not None:
        (layout.root / "topology.yaml").write_text(topology_text)
    record_runtime(layout, image)
    progress("network: creating namespaces, bridge, router and client")
    network.create(plan, progress=lambda m: progress(f"  {m}"))
    progress("rendering configuration")
    gs = rendered_groups(plan, layout)
    rt = runtime_of(layout)
    if rt["runtime"] == "containers":  # each host's Compose project, before any container starts
        for host in plan.topology.hosts:
            specs = [containers.in_image(g.spec) for g, _ in gs if g.node == host.name]
            compose_run.write_project(plan, layout, host.name, specs, rt["image"], orchestrated)
    return gs


def up(plan: Plan, layout: Layout, progress: Progress = print, topology_text: str | None = None,
       image: str | None = None) -> float:
    """Bring the whole cluster up (idempotent). Returns the wall time in seconds. With ``image``,
    every host's supervisors run as containers of that image (:mod:`.containers`)."""
    t0 = time.monotonic()
    gs = prepare(plan, layout, progress, topology_text, image)
    rt = runtime_of(layout)
    # On a running cluster (scale): replicas leaving HAProxy's backends are drained before their
    # supervisors stop them, and running lbs take their new backends only once the API waves are
    # ready (the HAProxy step), so HAProxy never routes to a replica that does not serve.
    rollout.drain(plan, layout, progress)
    held = [(g, r) for g, r in gs if g.role == Role.LB.value and supervisor_pid(g)]
    for g, r in gs:
        if not any(g is h for h, _ in held):
            apply(plan, layout, g, r)
    progress(f"supervisors: {len(gs) - len(held)} running ({rt['runtime']})"
             + (f", {len(held)} lbs to reload after the APIs" if held else ""))
    # Probes reach the hosts from the client namespace, as a user would.
    netns.enter(netns.ns_name(plan, netns.CLIENT))

    enable(layout, plan, netns.ROUTER, ROUTER_ROLE, [p.name for p in render_router(plan, layout).processes])
    abort = threading.Event()

    def wave(insts: list[Instance], timeout: float) -> None:
        _start_wave(plan, layout, insts, timeout, progress, abort)

    def zookeeper() -> None:
        wave(plan.of(ZOOKEEPER), 120)
        # Every server served once; on starved cores a follower may still miss its leader's epoch
        # (initLimit) and trigger a new election: wait for a stable quorum, not one sample of it.
        deadline = time.monotonic() + QUORUM_TIMEOUT_S
        while not (quorum := _quorum(plan, layout))[0]:
            if abort.is_set() or time.monotonic() > deadline:
                raise UpError(f"ZooKeeper has no quorum after {QUORUM_TIMEOUT_S:.0f}s: {quorum[1]}")
            time.sleep(0.25)
        progress(f"zookeeper quorum: {quorum[1]}")

    def rabbitmq() -> None:
        rabbit = plan.of(RABBITMQ)
        # The first node forms the cluster; the others join it (avoids split-brain at formation).
        wave(rabbit[:1], 180)
        wave(rabbit[1:], 180)
        progress(f"rabbitmq: HA queue policy {prober(RABBITMQ).configure(plan, layout)}")

    def haproxy() -> None:
        for g, r in held:
            apply(plan, layout, g, r)
        wave(plan.of(HAPROXY), 60)

    def cassandra(comp: str) -> Callable[[], None]:
        def run() -> None:
            nodes = plan.of(comp)
            seeds = {h.name for h in plan.seeds(comp)}
            wave([i for i in nodes if i.host.name in seeds], 300)
            for inst in nodes:  # non-seeds bootstrap one at a time, after the seeds
                if inst.host.name not in seeds:
                    wave([inst], 300)
        return run

    # Independent tracks start together; each step waits only for what it needs.
    steps: dict[str, tuple[list[str], Callable[[], None]]] = {
        ZOOKEEPER: ([], zookeeper),
        RABBITMQ: ([], rabbitmq),
        CONFIG_DB: ([], cassandra(CONFIG_DB)),
        ANALYTICS_DB: ([CONFIG_DB], cassandra(ANALYTICS_DB)),  # one Cassandra burst at a time on 2 cores
        KAFKA: ([ZOOKEEPER], lambda: wave(plan.of(KAFKA), 180)),
        COLLECTOR: ([KAFKA], lambda: wave(plan.of(COLLECTOR), 120)),  # each makes the analytics topics
        AGGREGATOR: ([COLLECTOR, ANALYTICS_DB], lambda: wave(plan.of(AGGREGATOR), 120)),
        CONFIG_API: ([ZOOKEEPER, RABBITMQ, CONFIG_DB], lambda: wave(plan.of(CONFIG_API), 120)),
        ANALYTICS_API: ([ANALYTICS_DB], lambda: wave(plan.of(ANALYTICS_API), 120)),
        HAPROXY: ([CONFIG_API, ANALYTICS_API], haproxy),
        BIRD: ([HAPROXY], lambda: wave(plan.of(BIRD), 60)),
        LB_AGENT: ([BIRD], lambda: wave(plan.of(LB_AGENT), 60)),
        "vip": ([LB_AGENT], lambda: _wait_vip(plan, layout, progress)),
        # Last: the node agents report every process of their host, so they start once all run.
        NODE_AGENT: (["vip", AGGREGATOR], lambda: wave(plan.of(NODE_AGENT), 60)),
    }
    run_steps(steps, abort)
    elapsed = time.monotonic() - t0
    (layout.root / "cluster.json").write_text(json.dumps({"state": "up", "up_seconds": round(elapsed, 1),
                                                         "at": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    progress(f"cluster {plan.cluster_id} is up in {elapsed:.1f}s; {pki.endpoints(plan, layout)}")
    return elapsed


def _quorum(plan: Plan, layout: Layout) -> tuple[bool, str]:
    for c in prober(ZOOKEEPER).checks(plan, layout):
        if c.target == "cluster":
            return c.ok, c.detail
    return False, "no quorum check"


def _wait_vip(plan: Plan, layout: Layout, progress: Progress, timeout: float = 60) -> None:
    t0 = time.monotonic()
    mod = prober(BIRD)
    last = ""
    while time.monotonic() - t0 < timeout:
        vip = [c for c in mod.checks(plan, layout) if c.component == "vip"]
        if vip and all(c.ok for c in vip):
            progress(f"vip {plan.vip}: {vip[0].detail} after {time.monotonic() - t0:.1f}s")
            return
        last = "; ".join(c.detail for c in vip) or "no route"
        time.sleep(0.3)
    raise UpError(f"VIP {plan.vip} not routed on the router after {timeout:.0f}s: {last}")


# --- down -----------------------------------------------------------------------------------------
def recorded_groups(layout: Layout) -> list[Group]:
    """Groups as recorded on disk (so down works without re-rendering)."""
    out = []
    for spec_file in sorted(layout.root.glob("hosts/*/supervisor/*/spec.json")) + sorted(
            layout.router_dir.glob("supervisor/*/spec.json")):
        spec = GroupSpec.from_json(spec_file.read_text())
        out.append(Group(spec.host, spec.role, spec))
    return out


def down(plan: Plan, layout: Layout, purge: bool = False, progress: Progress = print) -> list[str]:
    """Stop every process, remove every namespace; with ``purge`` also the data. Returns leftovers."""
    order = [NODE_GROUP, Role.LB.value, Role.ANALYTICS.value, Role.ANALYTICSDB.value, Role.CONTROLLER.value,
             ROUTER_ROLE]
    gs = recorded_groups(layout) if layout.root.exists() else []
    engine = Engine()
    running = set(containers.ours(engine, plan.cluster_id)) if engine.available() else set()
    for role in order:
        # a container is stopped by the engine (its restart policy then leaves it stopped), gracefully
        containers.stop(engine, [n for g in gs if g.role == role and g.node != netns.ROUTER
                                 if (n := containers.name(g.node, g.role)) in running])
        batch = [(g, pid) for g in gs if g.role == role if (pid := supervisor_pid(g))]
        for _g, pid in batch:
            os.kill(pid, signal.SIGTERM)
        for g, pid in batch:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and pids.alive(pid):
                time.sleep(0.1)
            if pids.alive(pid):
                os.kill(pid, signal.SIGKILL)
            progress(f"stopped {g.node}/{g.role}")
    # Anything still running inside a host or router namespace was started there by us (a stand-in
    # machine's sshd too: `contrail-ha hosts up`): kill it.
    # The client namespace is the user's (shells, this very command): never kill there.
    client = netns.ns_name(plan, netns.CLIENT)
    mine = {os.getpid(), os.getppid()}
    for ns in network.namespaces(plan):
        if ns == client:
            continue
        for pid in network.pids_in(ns):
            if pid in mine:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                progress(f"killed leftover pid {pid} in {ns}")
            except ProcessLookupError:
                pass
    if engine.available():  # a cluster up on containers: remove them (stopped with their supervisors)
        try:
            if removed := containers.remove_all(engine, plan.cluster_id):
                progress(f"removed {len(removed)} containers")
            compose_run.ApiService(engine).stop()
        except EngineError as e:
            progress(f"containers not removed: {e}")
    leftovers = network.destroy(plan)
    progress("network removed" if not leftovers else f"left behind: {leftovers}")
    if layout.root.exists():
        if purge:
            shutil.rmtree(layout.root)
            progress(f"purged {layout.root}")
        else:
            (layout.root / RUNTIME_FILE).unlink(missing_ok=True)
            state = layout.root / "cluster.json"
            state.write_text(json.dumps({"state": "down", "at": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return leftovers
