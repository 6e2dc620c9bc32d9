"""Stand-in machines: each host of a topology a namespace running Debian's sshd, reached only over
SSH to its address from the operator's side (the client namespace), with the cluster's key and
strictly checked host keys; Ansible reaches them through the generated inventory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from contrail_ha.remote import machines, ssh
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime import netns, pids
from contrail_ha.topology.validate import parse

CLI = [sys.executable, "-m", "contrail_ha.cli"]
BIN = Path(sys.executable).parent
TOPOLOGY = {
    "cluster": {"id": "sshtest", "vip": "10.77.100.10", "network": "10.77.0.0/24",
                "client_network": "10.251.0.0/30"},
    "replication": {"config_db": 1, "analytics_db": 1, "kafka": 1, "kafka_min_insync": 1},
    "hosts": [{"name": "lb1", "ip": "10.77.0.11", "roles": ["lb"]},
              {"name": "n1", "ip": "10.77.0.21", "roles": ["controller", "analytics", "analyticsdb"]}],
}


@pytest.fixture(scope="module")
def machine_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Layout]]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    d = tmp_path_factory.mktemp("ssh")
    topo, state = d / "t.yaml", d / "state"
    topo.write_text(yaml.safe_dump(TOPOLOGY))
    try:
        p = subprocess.run([*CLI, "hosts", "up", "-t", str(topo), "--state-root", str(state)], capture_output=True,
                           text=True, timeout=180)
        assert p.returncode == 0, p.stdout + p.stderr
        yield topo, state, Layout(state / "sshtest")
    finally:
        subprocess.run([*CLI, "down", "--purge", "-t", str(topo), "--state-root", str(state)], capture_output=True,
                       text=True, timeout=180)


def _plan():
    return parse(TOPOLOGY).plan()


def _ssh(layout: Layout, host: str, *cmd: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["-o", f"IdentityFile={key}"] if key else []
    return subprocess.run([*machines.client_argv(_plan()), "ssh", "-F", str(ssh.config_path(layout)), *extra, host,
                           "--", *cmd], capture_output=True, text=True, timeout=60)


def test_each_host_answers_ssh_on_its_own_address(machine_set: tuple[Path, Path, Layout]) -> None:
    _, _, layout = machine_set
    for name, ip in (("lb1", "10.77.0.11"), ("n1", "10.77.0.21")):
        out = ssh.run(layout, name, ["sh", "-c", "hostname; ip -4 -o addr show"], via=machines.client_argv(_plan()))
        assert out.splitlines()[0] == name and f"inet {ip}/24" in out, out
    # by IP too, and the host key is checked (known_hosts has both)
    assert _ssh(layout, "10.77.0.21", "true").returncode == 0


def test_only_the_clusters_key_gets_in(machine_set: tuple[Path, Path, Layout], tmp_path: Path) -> None:
    _, _, layout = machine_set
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    p = subprocess.run([*machines.client_argv(_plan()), "ssh", "-F", "/dev/null", "-i", str(other),
                        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "root@10.77.0.21", "true"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 255 and "Permission denied (publickey)" in p.stderr, p.stderr
    with pytest.raises(ssh.SshError, match="n1: `false` exited 1"):
        ssh.run(layout, "n1", ["false"], via=machines.client_argv(_plan()))


def test_from_the_root_namespace_the_hosts_are_not_reachable(machine_set: tuple[Path, Path, Layout]) -> None:
    """The operator's side is the client's namespace; this machine's own network is untouched."""
    _, _, layout = machine_set
    p = subprocess.run(["ssh", "-F", str(ssh.config_path(layout)), "-o", "ConnectTimeout=2", "n1", "true"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 255


def test_ansible_reaches_every_host_through_the_inventory(machine_set: tuple[Path, Path, Layout]) -> None:
    _, _, layout = machine_set
    inv = ssh.ssh_dir(layout) / "inventory.yaml"
    groups = yaml.safe_load(inv.read_text())["all"]["children"]
    assert set(groups["lb"]["hosts"]) == {"lb1"} and set(groups["controller"]["hosts"]) == {"n1"}
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_NOCOLOR": "1"}
    p = subprocess.run([*machines.client_argv(_plan()), str(BIN / "ansible"), "all", "-i", str(inv), "-m",
                        "ansible.builtin.command", "-a", "hostname"], capture_output=True, text=True, timeout=300,
                       env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "lb1 | CHANGED | rc=0 >>\nlb1" in p.stdout and "n1 | CHANGED | rc=0 >>\nn1" in p.stdout, p.stdout


def test_a_container_engine_runs_over_ssh_with_the_hosts_network(machine_set: tuple[Path, Path, Layout]) -> None:
    """What the deployment needs of a machine: Podman, started in an SSH session, runs a container,
    and a host-network container is on that host's network (its address, its name)."""
    from contrail_ha.image.build import BASE
    from contrail_ha.image.engine import Engine

    engine = Engine()
    if not engine.available() or not engine.image_exists(BASE):
        pytest.skip("needs Podman and the base image (scripts/install.sh)")
    out = ssh.run(layout := machine_set[2], "n1", ["env", f"CONTAINERS_CONF={engine.conf}", "podman", "run", "--rm",
                                                   "--network", "host", "--add-host", "lb1:10.77.0.11", BASE, "sh",
                                                   "-c", "grep -c '10.77.0.21' /proc/net/fib_trie; getent hosts lb1"],
                  via=machines.client_argv(_plan()), timeout=120)
    lines = out.split()
    assert int(lines[0]) >= 1 and "10.77.0.11" in lines and "lb1" in lines, out
    assert layout.root.exists()


def test_the_router_runs_for_the_stand_in_hosts(machine_set: tuple[Path, Path, Layout]) -> None:
    """The upstream router (the operator's network) is up with the machines: its BIRD answers."""
    import time

    from contrail_ha.rendering.bird import router_socket_path

    _, _, layout = machine_set
    deadline = time.monotonic() + 60  # the supervisor starts BIRD: wait for its answer, no fixed sleep
    while True:
        p = subprocess.run(netns.exec_argv(_plan(), netns.ROUTER, ["birdc", "-s", str(router_socket_path(layout)),
                                                                   "show", "status"]),
                           capture_output=True, text=True, timeout=30)
        if "Daemon is up and running" in p.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert p.returncode == 0 and "Daemon is up and running" in p.stdout, p.stdout + p.stderr


def test_hosts_up_is_idempotent_and_down_stops_every_sshd(machine_set: tuple[Path, Path, Layout]) -> None:
    topo, state, layout = machine_set
    before = {h: machines.pid_file(layout, h).read_text() for h in ("lb1", "n1")}
    p = subprocess.run([*CLI, "hosts", "up", "-t", str(topo), "--state-root", str(state)], capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert {h: machines.pid_file(layout, h).read_text() for h in ("lb1", "n1")} == before
    sshd = [int(v.split()[0]) for v in before.values()]
    p = subprocess.run([*CLI, "down", "-t", str(topo), "--state-root", str(state)], capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not any(pids.alive(pid) for pid in sshd)
    assert not netns.exists(netns.ns_name(_plan(), "n1"))
