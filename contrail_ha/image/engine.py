"""The container engine boundary: every ``podman`` call goes through :class:`Engine`.

Podman as Debian installs it does not start containers on this machine kind (cgroups v1,
no ``CAP_SYS_RESOURCE``; see ``docs/containers.md``). The project therefore ships its own engine
configuration, rendered from what the machine allows and passed as ``CONTAINERS_CONF``, instead
of editing ``/etc/containers``: an operator's own Podman set-up is left as it is.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from contrail_ha.errors import ContrailHaError

DEFAULT_CONF_DIR = Path("/var/lib/contrail-ha/engine")
# Podman's own bridge stays off 10.0.0.0/8, where the topologies' networks live.
BRIDGE_SUBNET = "172.30.88.0/24"
BRIDGE_POOL = "172.30.100.0/22"


class EngineError(ContrailHaError, RuntimeError):
    """A podman command failed (or is missing); the message carries its stderr."""


def containers_conf(nofile: int | str | None = None) -> str:
    """The engine configuration: runc with cgroupfs (crun refuses hybrid cgroups), ulimits no
    higher than the machine's hard limit (nothing here may raise one), events to a file (no
    journald without systemd). ``nofile``: that limit (default this machine's; a placeholder for
    another machine's, filled in there)."""
    hard = nofile or resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 1_048_576 if hard == resource.RLIM_INFINITY else hard
    return f"""# contrail-ha's Podman configuration (CONTAINERS_CONF); rendered by contrail-ha, do not edit
[containers]
default_ulimits = ["nofile={hard}:{hard}", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
default_subnet = "{BRIDGE_SUBNET}"
default_subnet_pools = [{{"base" = "{BRIDGE_POOL}", "size" = 24}}]
"""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Engine:
    """``podman`` with contrail-ha's configuration; every call has a timeout."""

    def __init__(self, conf_dir: Path = DEFAULT_CONF_DIR, binary: str = "podman") -> None:
        self.conf_dir, self.binary = conf_dir, binary

    @property
    def conf(self) -> Path:
        return self.conf_dir / "containers.conf"

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def _env(self) -> dict[str, str]:
        text = containers_conf()
        if not self.conf.exists() or self.conf.read_text() != text:
            self.conf_dir.mkdir(parents=True, exist_ok=True)
            self.conf.write_text(text)
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(self, *args: str, timeout: float = 120.0, check: bool = True, input: bytes | None = None) -> Result:
        """``podman ARGS``; raises :class:`EngineError` on a non-zero exit when ``check``."""
        if not self.available():
            raise EngineError(f"{self.binary} is not installed: run scripts/install.sh")
        try:
            p = subprocess.run([self.binary, *args], env=self._env(), capture_output=True, timeout=timeout,
                               input=input)
        except subprocess.TimeoutExpired as e:
            raise EngineError(f"{self.binary} {' '.join(args[:3])}: no answer within {timeout:.0f} s") from e
        out = Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
        if check and p.returncode != 0:
            raise EngineError(f"{self.binary} {' '.join(args[:4])} failed ({p.returncode}): "
                              f"{out.stderr.strip()[-2000:]}")
        return out

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False, timeout=30).returncode == 0

    def image_size(self, ref: str) -> int:
        """The image's size in bytes (uncompressed, all layers)."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref, timeout=30).stdout.strip())
