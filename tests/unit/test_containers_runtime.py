"""The container runtime's podman arguments (no engine): the host's network namespace, the host's
PID namespace (pids mean the same inside and out, so faults and status work unchanged), the state
root at its own path, the image's interpreter for our own processes."""

from __future__ import annotations

from pathlib import Path

from contrail_ha.rendering.base import Layout, ProcessSpec, python
from contrail_ha.runtime import containers
from contrail_ha.runtime.supervisor_state import GroupSpec
from contrail_ha.topology.validate import load_topology

REPO = Path(__file__).resolve().parents[2]


def test_run_args_join_the_hosts_namespaces_and_state() -> None:
    plan = load_topology(REPO / "examples" / "ha.yaml").plan()
    layout = Layout(Path("/var/lib/contrail-ha") / plan.cluster_id)
    spec = layout.root / "hosts" / "ctrl1" / "supervisor" / "controller" / "spec.json"
    args = containers.run_args(plan, layout, "ctrl1", "controller", spec, "localhost/contrail-ha:x")
    joined = " ".join(args)
    assert args[:2] == ["run", "-d"] and "--replace" in args
    assert f"--network ns:/run/netns/{plan.cluster_id}-ctrl1" in joined
    assert "--pid host" in joined and "--hostname ctrl1" in joined
    assert f"-v {layout.root}:{layout.root}" in joined
    assert f"--label {containers.LABEL}={plan.cluster_id}" in joined
    assert "--privileged" not in args
    assert args[-4:] == ["localhost/contrail-ha:x", "-m", "contrail_ha.runtime.supervisor", str(spec)]
    assert args[args.index("--entrypoint") + 1] == containers.IMAGE_PYTHON
    lb = containers.run_args(plan, layout, "lb1", "lb", spec, "img")
    assert "--privileged" in lb  # the VIP on lo and BIRD's routes


def test_our_processes_get_the_images_interpreter() -> None:
    spec = GroupSpec(host="h", role="r", run_dir="/r", log_dir="/l", processes=[
        ProcessSpec(name="api", argv=[python(), "-m", "contrail_ha.services.config_api", "/c.json"]),
        ProcessSpec(name="zk", argv=["java", "-cp", "/x.jar", "Main"])])
    out = containers.in_image(spec)
    api = out.processes[0].argv
    assert api[0] == containers.IMAGE_PYTHON and api[1:] == spec.processes[0].argv[1:]
    assert out.processes[1].argv == spec.processes[1].argv
