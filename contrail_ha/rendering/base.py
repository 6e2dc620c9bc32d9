"""What every renderer produces: files for one instance on one host, and the processes to run.

One module per component (``rendering/<component>.py``) exposes
``render(plan: Plan, inst: Instance, layout: Layout) -> Rendered``. Renderers are pure:
they read the plan and return text; the runtime writes the files and starts the processes.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from contrail_ha.topology.model import Host, Topology

DEFAULT_STATE_ROOT = Path("/var/lib/contrail-ha")
DEFAULT_CACHE = Path("/var/cache/contrail-ha")


@dataclass(frozen=True)
class Layout:
    """Where a cluster's files live. ``root`` is per cluster, e.g. /var/lib/contrail-ha/<cluster-id>."""

    root: Path
    cache: Path = DEFAULT_CACHE  # jar cache: <cache>/classpath/<component>.txt

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def conf(self, host: str, name: str) -> Path:
        """Rendered configuration of process ``name`` on ``host``."""
        return self.host_dir(host) / name / "conf"

    def data(self, host: str, name: str) -> Path:
        return self.host_dir(host) / name / "data"

    def logs(self, host: str, name: str) -> Path:
        return self.host_dir(host) / name / "log"

    def run(self, host: str, name: str) -> Path:
        """Sockets and pid files."""
        return self.host_dir(host) / name / "run"

    @property
    def router_dir(self) -> Path:
        return self.root / "router"

    @property
    def secrets_dir(self) -> Path:
        """Where this cluster's secrets are kept (the CA's key among them): ``<root>/secrets``."""
        return self.root / "secrets"

    def secret(self, name: str) -> str:
        """A random secret of this cluster, made once and kept under the root (e.g. the Erlang cookie seed)."""
        import secrets

        f = self.secrets_dir / name
        try:
            return f.read_text().strip()
        except FileNotFoundError:
            f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            value = secrets.token_hex(16)
            # written whole under a temporary name, then linked in: a concurrent maker of the same
            # secret either wins (and both use its value) or loses and reads the winner's
            tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(value + "\n")
            try:
                os.link(tmp, f)
            except FileExistsError:
                return f.read_text().strip()
            finally:
                tmp.unlink()
            return value

    def classpath(self, component: str) -> str:
        """The resolved Maven classpath of ``cassandra``, ``kafka`` or ``zookeeper``."""
        f = self.cache / "classpath" / f"{component}.txt"
        try:
            return f.read_text().strip()
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{f} is missing: run scripts/install.sh to fetch the jars") from e


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process. ``argv`` runs inside the host's namespace as it is."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    # When the real server is a child of argv[0] (rabbitmq-server -> beam.smp), its pid file.
    pid_file: str | None = None
    # A signal that makes the running process re-read its (rewritten) configuration: a change of the
    # rendered files alone then reloads it instead of restarting it (HAProxy: SIGUSR2, no downtime).
    reload_signal: int | None = None
    # How the container's health check sees that it serves (contrail_ha.runtime.health): tcp://, zk://,
    # http:// or unix:// URL; empty: running is enough.
    health: str = ""
    # SCHED_FIFO priority (1-99) for a process whose timers must not wait behind busy CPUs; 0: the normal
    # scheduler. Where the engine or cgroup forbids it the process still starts, with the normal scheduler.
    realtime_priority: int = 0
    # A new member's first start waits until these health-probe URLs answer (all of them, or one with
    # ``join_any``): a RabbitMQ node joins a running node, a Cassandra node bootstraps after the nodes
    # before it. The container keeps the order the local orchestrator's waves give, so a cluster
    # started from the exported files alone forms the same way. Only while ``fresh_dir`` holds no
    # file: a member with data rejoins at once, whoever else is down.
    join_after: list[str] = field(default_factory=list)
    join_any: bool = False
    fresh_dir: str = ""


@dataclass
class Rendered:
    """Files (absolute path -> text) and processes for one instance."""

    files: dict[Path, str] = field(default_factory=dict)
    modes: dict[Path, int] = field(default_factory=dict)  # file modes other than 0o644
    dirs: list[Path] = field(default_factory=list)  # directories to create (data, logs, run)
    processes: list[ProcessSpec] = field(default_factory=list)

    def merge(self, other: Rendered) -> Rendered:
        self.files.update(other.files)
        self.modes.update(other.modes)
        self.dirs.extend(other.dirs)
        self.processes.extend(other.processes)
        return self


def python() -> str:
    """The interpreter our own processes run with: the environment's ``bin/python``, however this one was
    started (``.venv/bin/python3`` by the console script, ``.venv/bin/python`` by ``python -m``), so that the
    rendered command - and the config digest a restart depends on - does not change between callers."""
    import sys

    candidate = Path(sys.prefix) / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def jvm_heap_flags(heap_mb: int, topology: Topology, host: Host) -> list[str]:
    """Every JVM gets an explicit heap and sizes its GC and pools for the CPUs the topology gives
    its host (``jvm.cpus``, ``hosts[].cpus``): it would otherwise count every CPU it sees, shared
    or not."""
    return [f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", "-XX:+UseG1GC", f"-XX:ActiveProcessorCount={topology.cpus(host)}",
            "-XX:+ExitOnOutOfMemoryError"]
