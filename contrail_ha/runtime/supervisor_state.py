"""The on-disk state of a role supervisor, for the supervisor itself and for every tool that reads or steers it.

One directory per supervisor group: ``<root>/hosts/<host>/supervisor/<role>/`` (the router's:
``<root>/router/supervisor/<role>/``), holding

- ``spec.json``: what the supervisor runs (``GroupSpec``), written by the orchestrator;
- ``supervisor.pid``: the supervisor's pid while it runs;
- ``state.json``: pid, state and restart count of every process, rewritten on each change;
- ``<process>.enabled``: the process should run (the orchestrator enables processes in waves);
- ``<process>.held``: do not restart it until the file is removed (drills inject faults this way).

``SupervisorDir`` names these files and reads and writes them; nothing else should build their paths.
It imports nothing but ``rendering.base``: the supervisor process stays as light as it is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contrail_ha.rendering.base import Layout, ProcessSpec

ROUTER = "router"  # the router's node name (runtime.netns.ROUTER): its groups live under Layout.router_dir
SPEC_FILE = "spec.json"
STATE_FILE = "state.json"
PID_FILE = "supervisor.pid"
ENABLED = "enabled"  # control file suffixes: <process>.enabled, <process>.held
HELD = "held"
PAUSED = "paused"  # control file: the pids a pause fault stopped
FAULT_ENV = "fault-env"  # control file: extra environment a fault gives the process (JSON)


@dataclass
class GroupSpec:
    """What a supervisor runs: written by the orchestrator as JSON."""

    host: str
    role: str
    run_dir: str
    log_dir: str
    processes: list[ProcessSpec] = field(default_factory=list)
    # The directories the processes write (data, logs, sockets; the run and log dirs implied), and in a
    # container the user the supervisor drops to once they are that user's (contrail_ha.runtime.ownership).
    writable: list[str] = field(default_factory=list)
    run_as: str = ""

    def owned(self) -> list[str]:
        """Every directory a dropped supervisor and its processes must own."""
        return list(dict.fromkeys([self.run_dir, self.log_dir, *self.writable]))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GroupSpec:
        d = json.loads(text)
        d["processes"] = [ProcessSpec(**p) for p in d["processes"]]
        return cls(**d)


def node_dir(layout: Layout, node: str) -> Path:
    """Where a node's files live: ``<root>/hosts/<host>``, or ``<root>/router`` for the router."""
    return layout.router_dir if node == ROUTER else layout.host_dir(node)


@dataclass(frozen=True, order=True)
class SupervisorDir:
    """The directory of one role supervisor (``path`` is its ``GroupSpec.run_dir``)."""

    path: Path

    @classmethod
    def of(cls, layout: Layout, node: str, role: str) -> SupervisorDir:
        """The supervisor of ``role`` on ``node`` (a host name, or ``router``)."""
        return cls(node_dir(layout, node) / "supervisor" / role)

    @classmethod
    def of_host(cls, layout: Layout, host: str, role: str) -> SupervisorDir:
        """The supervisor of ``role`` on the topology host ``host`` (under ``hosts/``, whatever its name)."""
        return cls(layout.host_dir(host) / "supervisor" / role)

    @classmethod
    def all_of(cls, layout: Layout, node: str) -> list[SupervisorDir]:
        """The supervisor directories that exist on ``node``, sorted."""
        return [cls(p) for p in sorted((node_dir(layout, node) / "supervisor").glob("*")) if p.is_dir()]

    @classmethod
    def all_in(cls, layout: Layout, *, router: bool = True) -> list[SupervisorDir]:
        """Every supervisor directory that exists: the hosts' (sorted), then the router's (sorted)."""
        found = sorted(layout.root.glob("hosts/*/supervisor/*"))
        if router:
            found += sorted((layout.router_dir / "supervisor").glob("*"))
        return [cls(p) for p in found if p.is_dir()]

    @property
    def node(self) -> str:
        """The host name (or ``router``) this directory belongs to."""
        return self.path.parent.parent.name

    @property
    def role(self) -> str:
        return self.path.name

    # --- spec.json ------------------------------------------------------------------------------------
    @property
    def spec_file(self) -> Path:
        return self.path / SPEC_FILE

    def spec(self) -> GroupSpec:
        """The group spec (raises OSError / ValueError when missing or invalid)."""
        return GroupSpec.from_json(self.spec_file.read_text())

    def write_spec(self, spec: GroupSpec) -> bool:
        """Write ``spec.json`` (creating the directory); True if its text changed."""
        self.path.mkdir(parents=True, exist_ok=True)
        text = spec.to_json()
        changed = not self.spec_file.exists() or self.spec_file.read_text() != text
        self.spec_file.write_text(text)
        return changed

    # --- supervisor.pid -------------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.path / PID_FILE

    def supervisor_pid(self) -> int | None:
        """The pid in ``supervisor.pid`` (None when missing or unreadable); the process may be gone."""
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The supervisor's pid if that process runs and is a supervisor (not a reused pid)."""
        pid = self.supervisor_pid()
        if pid is None:
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"contrail_ha.runtime.supervisor" in cmd else None

    def write_pid(self, pid: int) -> None:
        self.pid_file.write_text(f"{pid}\n")

    def remove_pid(self) -> None:
        self.pid_file.unlink(missing_ok=True)

    # --- state.json -----------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def read_state(self) -> dict[str, Any]:
        """``state.json`` as written (raises OSError / ValueError when missing or unreadable)."""
        d: dict[str, Any] = json.loads(self.state_file.read_text())
        return d

    def state(self) -> dict[str, Any] | None:
        """``state.json``, None when missing, unreadable or not an object."""
        try:
            d = self.read_state()
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    def process(self, process: str) -> dict[str, Any]:
        """``process``'s entry in ``state.json`` (raises OSError / ValueError / KeyError)."""
        entry: dict[str, Any] = self.read_state()["processes"][process]
        return entry

    def pid(self, process: str) -> int | None:
        """``process``'s pid as ``state.json`` shows it (None: not running, or no state)."""
        st = self.state()
        p = (st.get("processes") or {}).get(process) if st else None
        pid = p.get("pid") if isinstance(p, dict) else None
        return pid if isinstance(pid, int) else None

    def write_state(self, text: str) -> None:
        """Replace ``state.json`` atomically (through ``state.json.tmp``)."""
        tmp = self.path / f"{STATE_FILE}.tmp"
        tmp.write_text(text)
        tmp.replace(self.state_file)

    # --- control files --------------------------------------------------------------------------------
    def enabled_file(self, process: str) -> Path:
        return self.path / f"{process}.{ENABLED}"

    def held_file(self, process: str) -> Path:
        return self.path / f"{process}.{HELD}"

    def enabled(self, process: str) -> bool:
        return self.enabled_file(process).exists()

    def enable(self, process: str) -> None:
        self.enabled_file(process).touch()

    def disable(self, process: str) -> None:
        self.enabled_file(process).unlink(missing_ok=True)

    def held(self, process: str) -> bool:
        return self.held_file(process).exists()

    def hold(self, process: str) -> None:
        """Keep ``process`` down: the supervisor does not restart it until released."""
        self.held_file(process).touch()

    def release(self, process: str) -> None:
        """Let the supervisor restart a held process."""
        self.held_file(process).unlink(missing_ok=True)

    def fault_env_file(self, process: str) -> Path:
        return self.path / f"{process}.{FAULT_ENV}"

    def set_fault_env(self, process: str, env: dict[str, str]) -> None:
        """Extra environment for the next starts of ``process`` (a fault: e.g. a skewed clock)."""
        self.fault_env_file(process).write_text(json.dumps(env))

    def fault_env(self, process: str) -> dict[str, str]:
        try:
            data = json.loads(self.fault_env_file(process).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def clear_fault_env(self, process: str) -> None:
        self.fault_env_file(process).unlink(missing_ok=True)

    def fault_env_processes(self) -> list[str]:
        return [p.name[: -len(FAULT_ENV) - 1] for p in sorted(self.path.glob(f"*.{FAULT_ENV}"))]

    def paused_file(self, process: str) -> Path:
        return self.path / f"{process}.{PAUSED}"

    def record_paused(self, process: str, pids: list[int]) -> None:
        """Remember the pids a fault stopped (SIGSTOP), so a heal finds them after a crash."""
        self.paused_file(process).write_text(" ".join(str(p) for p in pids))

    def paused_pids(self, process: str) -> list[int]:
        try:
            return [int(x) for x in self.paused_file(process).read_text().split()]
        except (OSError, ValueError):
            return []

    def forget_paused(self, process: str) -> None:
        self.paused_file(process).unlink(missing_ok=True)

    def paused_processes(self) -> list[str]:
        return [p.name[: -len(PAUSED) - 1] for p in sorted(self.path.glob(f"*.{PAUSED}"))]

    def held_processes(self) -> list[str]:
        """The processes held in this directory, sorted by their control file's name."""
        return [p.name[: -len(HELD) - 1] for p in sorted(self.path.glob(f"*.{HELD}"))]
