"""What every ``contrail-ha`` command shares: the console, the topology and state-root options,
loading and validating the topology, the root check."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console

from contrail_ha.cli_errors import CommandError, UsageProblem, err
from contrail_ha.errors import ContrailHaError
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.runtime.supervisor_state import SupervisorDir
from contrail_ha.topology import identity
from contrail_ha.topology.plan import Plan
from contrail_ha.topology.validate import Problem, Report, load_topology

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = REPO / "examples" / "ha.yaml"
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


class TopologyInvalid(CommandError):
    """The topology file has errors (exit 1); shows the validation report unless ``quiet``."""

    def __init__(self, report: Report, path: Path, *, quiet: bool = False) -> None:
        super().__init__(f"invalid: {path}: {len(report.errors)} error(s)")
        self.report, self.path, self.quiet = report, path, quiet

    def show(self, file: IO[Any] | None = None) -> None:
        if not self.quiet:
            _print_report(self.report, self.path)


def _default_topology() -> Path:
    """The topology of the one cluster that is up, else the default HA example."""
    live = [p for p in DEFAULT_STATE_ROOT.glob("*/topology.yaml") if _is_up(p.parent)]
    return live[0] if len(live) == 1 else DEFAULT_TOPOLOGY


def _is_up(root: Path) -> bool:
    try:
        return json.loads((root / "cluster.json").read_text()).get("state") == "up"
    except (OSError, ValueError):
        return any(d.pid_file.exists() for d in SupervisorDir.all_in(Layout(root), router=False))


def _print_report(report: Report, path: Path) -> None:
    for p in report.problems:
        (err if p.severity == "error" else console).print(
            f"[{'red' if p.severity == 'error' else 'yellow'}]{p.severity}[/]: {p.path}: {p.message}")
    if report.ok and report.topology is not None:
        console.print(f"[green]valid[/]: {path} ({len(report.topology.hosts)} hosts)")
    else:
        err.print(f"[red]invalid[/]: {path}: {len(report.errors)} error(s); nothing was started")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise UsageProblem(f"topology file {path} does not exist")


def _load(topology: Path | None, quiet: bool = False, state_root: Path = DEFAULT_STATE_ROOT,
          strict: bool = True) -> tuple[Plan, Path]:
    """The plan of a topology file, its members' identities as the cluster in ``state_root``
    recorded them. ``strict``: a topology that would renumber a member is invalid (exit 1);
    otherwise (``down``) what the file says is used."""
    path = topology or _default_topology()
    _require_file(path)
    report = load_topology(path)
    if not report.ok:
        raise TopologyInvalid(report, path)
    if not quiet:
        for p in report.warnings:
            console.print(f"[yellow]warning[/]: {p.path}: {p.message}")
    return _plan(report, path, state_root, strict), path


def _plan(report: Report, path: Path, state_root: Path, strict: bool = True) -> Plan:
    """``report``'s topology resolved against the identities its running cluster recorded."""
    assert report.topology is not None
    try:
        record = identity.recorded(state_root / report.topology.cluster.id)
    except ContrailHaError as e:
        raise CommandError(str(e)) from e
    resolved, problems = identity.resolve(report.topology, record)
    if problems and strict:
        report.problems += [Problem(key, msg) for key, msg in problems]
        raise TopologyInvalid(report, path)
    return Plan(resolved if not problems else report.topology)


def _layout(plan: Plan, state_root: Path) -> Layout:
    return Layout(state_root / plan.cluster_id)


def _require_root() -> None:
    import os

    if os.geteuid() != 0:
        raise UsageProblem("this command manages network namespaces and must run as root")


topology_opt = click.option("-t", "--topology", type=click.Path(path_type=Path, dir_okay=False),
                            help="topology file (default: the running cluster's, else examples/ha.yaml)")
state_opt = click.option("--state-root", type=click.Path(path_type=Path, file_okay=False),
                         default=DEFAULT_STATE_ROOT, show_default=True, help="where clusters keep their files")
