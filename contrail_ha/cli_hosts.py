"""``contrail-ha hosts``: the topology's hosts stood up on this machine as machines reached over
SSH (a network namespace each, running sshd), for the deployment over SSH to be tested as it runs
on real machines; and the SSH configuration and Ansible inventory of a cluster's hosts."""

from __future__ import annotations

import time
from pathlib import Path

import click

from contrail_ha.cli_common import DEFAULT_TOPOLOGY, _layout, _load, _require_root, console, state_opt, topology_opt
from contrail_ha.cli_errors import CommandError


@click.group()
def hosts() -> None:
    """Stand-in machines on this one (sshd in a namespace per host), and how to reach hosts over SSH."""


@hosts.command("up")
@topology_opt
@state_opt
def hosts_up(topology: Path | None, state_root: Path) -> None:
    """Every host of the topology a namespace on this machine running sshd on its IP (idempotent):
    `ssh -F <state-root>/<cluster-id>/ssh/config HOST` from the client namespace reaches it."""
    from contrail_ha.remote import machines

    _require_root()
    plan, _ = _load(topology or DEFAULT_TOPOLOGY, state_root=state_root)
    layout = _layout(plan, state_root)
    t0 = time.monotonic()
    try:
        cfg = machines.up(plan, layout, progress=lambda m: console.print(f"[dim]{time.monotonic() - t0:6.1f}s[/] {m}"))
    except machines.MachinesError as e:
        raise CommandError(f"[red]hosts up failed[/]: {e}") from e
    console.print(f"{len(plan.topology.hosts)} hosts answer SSH; ssh -F {cfg} HOST "
                  f"(from `ip netns exec {machines.client_argv(plan)[-1]}`); inventory {cfg.parent / 'inventory.yaml'}")


@hosts.command("ssh-config")
@topology_opt
@state_opt
def hosts_ssh_config(topology: Path | None, state_root: Path) -> None:
    """Write the cluster's `ssh -F` configuration and Ansible inventory; print their paths."""
    from contrail_ha.remote import ssh

    plan, _ = _load(topology or DEFAULT_TOPOLOGY, quiet=True, state_root=state_root)
    layout = _layout(plan, state_root)
    console.print(ssh.write_config(plan, layout))
    console.print(ssh.write_inventory(plan, layout))
