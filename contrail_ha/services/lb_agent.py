"""The lb agent: keeps this lb's VIP announced only while its HAProxy can serve.

Runs on every lb host (``python -m contrail_ha.services.lb_agent agent.json``). Every
``interval`` it reads HAProxy's stats socket; when HAProxy does not answer, or no backend
has an UP server, it removes the VIP from ``lo`` — BIRD's ``direct`` protocol then withdraws
the route and the router moves clients to another lb — and puts it back once HAProxy has
been healthy again for ``rise`` checks. Killing HAProxy alone would otherwise leave a route
to a dead lb (local-cluster-notes: the address stays on ``lo``).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from contrail_ha.probes.haproxy import backends, command, is_up, parse_stat
from contrail_ha.rendering.haproxy import BACKENDS

log = logging.getLogger("lb-agent")


@dataclass(frozen=True)
class AgentConfig:
    host: str
    vip: str
    stats_socket: str
    state_file: str
    interval: float = 0.2
    fall: int = 2  # consecutive failed checks before the VIP is withdrawn
    rise: int = 3  # consecutive good checks before it is announced again
    device: str = "lo"

    @classmethod
    def load(cls, path: str) -> AgentConfig:
        return cls(**json.loads(Path(path).read_text()))


def haproxy_healthy(sock: str) -> tuple[bool, str]:
    """HAProxy answers and at least one backend has an UP server."""
    try:
        rows = parse_stat(command(sock, "show stat", timeout=1.0))
    except (OSError, ValueError) as e:
        return False, f"haproxy not answering: {e.__class__.__name__}"
    bes = {name: b for name, b in backends(rows).items() if name in BACKENDS}
    up = {name: sum(1 for s in b["servers"].values() if is_up(s["status"])) for name, b in bes.items()}
    if not any(up.values()):
        return False, "no backend has an UP server"
    return True, ", ".join(f"{n} {u} UP" for n, u in sorted(up.items()))


def vip_present(cfg: AgentConfig) -> bool:
    out = subprocess.run(["ip", "-o", "addr", "show", "dev", cfg.device], capture_output=True, text=True).stdout
    return f" {cfg.vip}/32 " in out


def set_vip(cfg: AgentConfig, present: bool) -> None:
    op = "add" if present else "del"
    p = subprocess.run(["ip", "addr", op, f"{cfg.vip}/32", "dev", cfg.device], capture_output=True, text=True)
    if p.returncode != 0 and "File exists" not in p.stderr and "Cannot assign" not in p.stderr:
        log.error("ip addr %s %s: %s", op, cfg.vip, p.stderr.strip())


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.good = self.bad = 0
        self.announced = vip_present(cfg)
        self.reason = "starting"
        self.stopping = False

    def step(self) -> None:
        ok, why = haproxy_healthy(self.cfg.stats_socket)
        self.reason = why
        if ok:
            self.good, self.bad = self.good + 1, 0
        else:
            self.good, self.bad = 0, self.bad + 1
        if self.announced and self.bad >= self.cfg.fall:
            set_vip(self.cfg, False)
            self.announced = False
            log.warning("VIP %s withdrawn: %s", self.cfg.vip, why)
        elif not self.announced and self.good >= self.cfg.rise:
            set_vip(self.cfg, True)
            self.announced = True
            log.warning("VIP %s announced: %s", self.cfg.vip, why)
        self._state()

    def _state(self) -> None:
        f = Path(self.cfg.state_file)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": self.cfg.host, "vip": self.cfg.vip, "announced": self.announced,
                                   "reason": self.reason, "at": time.time()}))
        tmp.replace(f)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        log.info("watching %s for VIP %s", self.cfg.stats_socket, self.cfg.vip)
        while not self.stopping:
            self.step()
            time.sleep(self.cfg.interval)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Agent(AgentConfig.load(sys.argv[1])).run()


if __name__ == "__main__":
    main()
