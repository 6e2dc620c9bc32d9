"""The supervisor of one container role on one host: a process group kept running.

Runs inside the host's namespaces as ``python -m contrail_ha.runtime.supervisor SPEC``.
Control is through files in its run directory (``runtime.supervisor_state.SupervisorDir``), so every
tool (and an operator) can see it:

- ``<proc>.enabled``: the process should run (the orchestrator enables processes in waves);
- ``<proc>.held``: do not restart it until the file is removed (drills inject faults this way);
- ``<proc>.fault-env``: extra environment (JSON) for its next starts (a drill's skewed clock);
- ``state.json``: pid, state and restart count of every process, rewritten on each change.

A process that exits is restarted with exponential back-off (0.5 s up to 10 s). SIGTERM stops
every process in reverse order (stop signal, then SIGKILL after its stop timeout) and exits;
SIGHUP re-reads the spec and restarts processes whose command or environment changed.

``--container`` is the container contract: every process runs from the start (no orchestrator
enables them), each line a process writes goes to the supervisor's own stdout prefixed with its
name (the container's log, which the engine keeps and rotates), and a process that crash-loops
(:data:`CRASHLOOP_EXITS` exits in a row, each within :data:`STABLE_AFTER` of its start) makes the
supervisor stop the others and exit 1, so that the engine restarts the container and reports
it, instead of the container showing "Up" around a dead component.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from contrail_ha.rendering.base import ProcessSpec
from contrail_ha.runtime import ownership, pids
from contrail_ha.runtime.supervisor_state import GroupSpec, SupervisorDir  # GroupSpec: also imported from here

TICK = 0.2
BACKOFF_MIN, BACKOFF_MAX, STABLE_AFTER = 0.5, 10.0, 30.0
ORCHESTRATED_ENV = "CONTRAIL_HA_ORCHESTRATED"  # --container under an orchestrator: it enables the processes
CRASHLOOP_EXITS = 5  # --container: this many quick exits in a row end the supervisor (exit 1)
CRASHLOOP_STATUS = 1
_out_lock = threading.Lock()


@dataclass
class _Proc:
    spec: ProcessSpec
    pid: int | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_MIN
    next_start: float = 0.0
    last_exit: str = ""
    quick_exits: int = 0  # exits in a row, each within STABLE_AFTER of its start
    joinable: bool = False  # its join gate opened (or it has none): it may start
    gate: threading.Thread | None = None


CONFIG_DIGEST = "CONTRAIL_HA_CONFIG"  # the rendered files' digest the orchestrator puts in each environment


_GATE = {"join_after": [], "join_any": False, "fresh_dir": ""}  # ProcessSpec fields of the join gate
GATE_POLL = 2.0  # seconds between two looks at a closed join gate


def _gate_only_changed(old: ProcessSpec, new: ProcessSpec) -> bool:
    """Only the join gate differs: it applies to a first start, so a running process keeps running."""
    return replace(old, **_GATE) == replace(new, **_GATE)  # type: ignore[arg-type]


def is_fresh(path: str) -> bool:
    """No file under ``path`` (directories alone do not count: renderers create them empty)."""
    root = Path(path)
    return not root.exists() or not any(f.is_file() or f.is_symlink() for f in root.rglob("*"))


def gate_waits_for(spec: ProcessSpec, probe: Callable[[str], str | None]) -> list[str]:
    """What the join gate still waits for (empty: open). ``probe`` is :func:`health.probe`."""
    if not spec.join_after or not is_fresh(spec.fresh_dir):
        return []
    failing = [why for url in spec.join_after if (why := probe(url))]
    if spec.join_any and len(failing) < len(spec.join_after):
        return []
    return failing


def _only_config_changed(old: ProcessSpec, new: ProcessSpec) -> bool:
    """The command is the same; only the digest of the rendered files differs."""
    strip = {CONFIG_DIGEST: ""}
    return replace(old, env={**old.env, **strip}) == replace(new, env={**new.env, **strip})


def _realtime(priority: int) -> None:
    """In the child before exec, so every thread it starts inherits the policy."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:  # no CAP_SYS_NICE, or a cgroup without real-time budget: start anyway
        os.write(2, f"supervisor: SCHED_FIFO {priority} not permitted ({e.strerror}); normal scheduler\n".encode())


def _read_pid(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _become_subreaper() -> None:
    """Orphaned descendants (e.g. beam.smp when its wrapper dies) are reparented here and reaped."""
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


class Supervisor:
    """Keeps one role's processes running."""

    def __init__(self, spec_path: Path, *, container: bool = False) -> None:
        self.spec_path = spec_path
        self.container = container
        self.crashlooped: str | None = None
        self.spec = GroupSpec.from_json(spec_path.read_text())
        self.run_dir = Path(self.spec.run_dir)
        self.dir = SupervisorDir(self.run_dir)
        self.log_dir = Path(self.spec.log_dir)
        self.procs = {p.name: _Proc(p) for p in self.spec.processes}
        self.stopping = False
        self.reload = False
        self._state_cache = ""

    # --- process handling -----------------------------------------------------------------------
    def _start(self, p: _Proc) -> None:
        spec = p.spec
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
               "LANG": "C.UTF-8", **spec.env, **self.dir.fault_env(spec.name)}
        banner = f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} supervisor: starting {spec.name}\n".encode()
        if self.container:  # a pipe to the supervisor's stdout, each line prefixed with the process's name
            rfd, wfd = os.pipe()
            _emit(spec.name, banner)
        else:
            with open(self.log_dir / f"{spec.name}.out", "ab") as out:
                out.write(banner)
                wfd = os.dup(out.fileno())
            rfd = -1
        pid = os.fork()
        if pid == 0:  # child: own session/process group, stdio to the log
            try:
                os.setsid()
                os.dup2(wfd, 1)
                os.dup2(wfd, 2)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                if spec.cwd:
                    os.chdir(spec.cwd)
                if spec.realtime_priority:
                    _realtime(spec.realtime_priority)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.execvpe(spec.argv[0], spec.argv, env)
            except BaseException as e:
                os.write(2, f"supervisor: exec {spec.argv[0]} failed: {e}\n".encode())
            finally:
                os._exit(127)
        os.close(wfd)
        if rfd >= 0:
            threading.Thread(target=_relay, args=(spec.name, rfd), daemon=True).start()
        p.pid = pid
        p.started = time.monotonic()

    def _signal_group(self, p: _Proc, sig: int) -> None:
        for pid in (p.pid, _read_pid(p.spec.pid_file)):
            if pid:
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass

    def _stop(self, p: _Proc) -> None:
        if p.pid is None:
            return
        self._signal_group(p, p.spec.stop_signal)
        deadline = time.monotonic() + p.spec.stop_timeout
        while time.monotonic() < deadline:
            self._reap()
            if p.pid is None:
                break
            time.sleep(0.1)
        if p.pid is not None:
            self._signal_group(p, signal.SIGKILL)
            while p.pid is not None and time.monotonic() < deadline + 5:
                self._reap()
                time.sleep(0.05)
        # the server behind a wrapper (e.g. beam.smp behind rabbitmq-server) must be gone too
        extra = _read_pid(p.spec.pid_file)
        if extra and pids.alive(extra):
            try:
                os.kill(extra, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for p in self.procs.values():
                if p.pid == pid:
                    p.pid = None
                    if os.WIFSIGNALED(status):
                        p.last_exit = f"killed by signal {os.WTERMSIG(status)}"
                    else:
                        p.last_exit = f"exit {os.WEXITSTATUS(status)}"
                    ran = time.monotonic() - p.started
                    p.backoff = BACKOFF_MIN if ran > STABLE_AFTER else min(p.backoff * 2, BACKOFF_MAX)
                    p.next_start = time.monotonic() + (0 if ran > STABLE_AFTER else p.backoff)
                    p.quick_exits = 0 if ran > STABLE_AFTER else p.quick_exits + 1
                    self._log(f"{p.spec.name} (pid {pid}) ended: {p.last_exit} after {ran:.1f}s")
                    if self.container and p.quick_exits >= CRASHLOOP_EXITS and not self.stopping:
                        self.crashlooped = (f"{p.spec.name} crash-loops ({p.quick_exits} exits in a row, each "
                                            f"within {STABLE_AFTER:.0f} s of its start; last: {p.last_exit})")
                        self.stopping = True

    def _joinable(self, p: _Proc) -> bool:
        """Whether ``p`` may start; a closed join gate is watched on a thread of its own (its probes
        take seconds when the peers do not answer, the supervisor's loop must not)."""
        if p.joinable or not p.spec.join_after:
            return True
        if p.gate is None or not p.gate.is_alive():
            p.gate = threading.Thread(target=self._watch_gate, args=(p,), name=f"gate-{p.spec.name}", daemon=True)
            p.gate.start()
        return False

    def _watch_gate(self, p: _Proc) -> None:
        from contrail_ha.runtime.health import probe

        said = False
        while not self.stopping:
            waits = gate_waits_for(p.spec, probe)
            if not waits:
                p.joinable = True
                self._log(f"{p.spec.name}: its peers answer; starting it" if said else
                          f"{p.spec.name} is a new member (nothing in {p.spec.fresh_dir}): its peers answer; "
                          "starting it")
                return
            if not said:
                which = "one of" if p.spec.join_any else "all of"
                self._log(f"{p.spec.name} is a new member (nothing in {p.spec.fresh_dir}): its first start waits "
                          f"for {which} {', '.join(p.spec.join_after)} ({'; '.join(waits)[:300]})")
                said = True
            time.sleep(GATE_POLL)

    def _log(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {self.spec.host}/{self.spec.role}: {msg}\n"
        with _out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def _write_state(self) -> None:
        state: dict[str, Any] = {"supervisor_pid": os.getpid(), "host": self.spec.host, "role": self.spec.role,
                                 "processes": {}}
        for name, p in self.procs.items():
            enabled, held = self.dir.enabled(name), self.dir.held(name)
            if p.pid is not None:
                st = "running"
            elif held:
                st = "held"
            elif enabled:
                st = "backoff" if p.restarts else ("joining" if not p.joinable and p.spec.join_after else "starting")
            else:
                st = "disabled"
            state["processes"][name] = {
                "state": st, "pid": p.pid, "server_pid": _read_pid(p.spec.pid_file) if p.pid else None,
                "restarts": p.restarts, "last_exit": p.last_exit,
                "uptime": round(time.monotonic() - p.started, 1) if p.pid else 0,
            }
        text = json.dumps(state, indent=1, sort_keys=True)
        if text != self._state_cache:
            self.dir.write_state(text)
            self._state_cache = text

    def _reload(self) -> None:
        new = GroupSpec.from_json(self.spec_path.read_text())
        self._log("reloading spec")
        new_names = {p.name for p in new.processes}
        for name in list(self.procs):
            if name not in new_names:
                self._stop(self.procs.pop(name))
        for spec in new.processes:
            cur = self.procs.get(spec.name)
            if cur is None:
                self.procs[spec.name] = _Proc(spec)
            elif cur.spec != spec:
                if _gate_only_changed(cur.spec, spec):
                    cur.spec = spec
                    continue
                if cur.pid is not None and spec.reload_signal and _only_config_changed(cur.spec, spec):
                    self._log(f"reloading {spec.name} (signal {spec.reload_signal}): its configuration changed")
                    os.kill(cur.pid, spec.reload_signal)
                    cur.spec = spec
                    continue
                self._stop(cur)
                cur.spec = spec
                cur.next_start = 0
        self.spec = new

    def run(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _become_subreaper()
        self.dir.write_pid(os.getpid())
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload", True))
        self._log(f"supervising {', '.join(self.procs)}")
        while not self.stopping:
            if self.reload:
                self.reload = False
                self._reload()
            self._reap()
            now = time.monotonic()
            for name, p in self.procs.items():
                want = self.dir.enabled(name) and not self.dir.held(name)
                if p.pid is None and want and now >= p.next_start and self._joinable(p):
                    if p.started:
                        p.restarts += 1
                    self._start(p)
                    self._log(f"started {name} (pid {p.pid})")
                elif p.pid is not None and not self.dir.enabled(name):
                    self._log(f"stopping disabled {name}")
                    self._stop(p)
            self._write_state()
            time.sleep(TICK)
        self._log("stopping all processes")
        for p in reversed(list(self.procs.values())):
            self._stop(p)
        self._write_state()
        self.dir.remove_pid()
        if self.crashlooped:
            self._log(f"{self.crashlooped}: exiting {CRASHLOOP_STATUS} so that the engine restarts the container")
            sys.exit(CRASHLOOP_STATUS)
        self._log("stopped")


def _emit(name: str, line: bytes) -> None:
    with _out_lock:
        sys.stdout.flush()
        os.write(1, name.encode() + b" | " + line)


def _relay(name: str, fd: int) -> None:
    """Copy a process's output to stdout line by line, prefixed (until every writer closed the pipe)."""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        buf = b""
        while chunk := pipe.read(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                _emit(name, line + b"\n")
        if buf:
            _emit(name, buf + b"\n")


def main() -> None:
    args = sys.argv[1:]
    container = "--container" in args  # the container contract (see the module's docstring)
    # every process runs from the start, unless an orchestrator enables them (the local runtime's waves)
    enable_all = (container and not os.environ.get(ORCHESTRATED_ENV)) or "--enable-all" in args
    args = [a for a in args if a not in ("--enable-all", "--container")]
    if len(args) != 1:
        sys.stderr.write("usage: python -m contrail_ha.runtime.supervisor [--enable-all | --container] SPEC.json\n")
        sys.exit(2)
    sup = Supervisor(Path(args[0]), container=container)
    if container and sup.spec.run_as and os.geteuid() == 0:  # own the role's directories, then drop root
        uid, gid = ownership.parse(sup.spec.run_as)
        ownership.hand_over(sup.spec.owned(), uid, gid)
        ownership.drop(uid, gid)
    if enable_all:
        sup.run_dir.mkdir(parents=True, exist_ok=True)
        for name in sup.procs:
            sup.dir.enable(name)
    sup.run()


if __name__ == "__main__":
    main()
