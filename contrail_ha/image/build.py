"""The product's image, built with no image registry: ``localhost/contrail-ha:<version>-<inputs>``.

Two layers of work, each skipped when its result exists:

1. The **base**: Debian 12 from ``debootstrap --variant=minbase`` of the Debian mirror apt
   already uses, imported as ``localhost/contrail-ha-base:bookworm`` (no ``FROM debian:12``:
   no registry is reachable here, nor at air-gapped sites).
2. The **image**: the runtime only - HAProxy, BIRD, RabbitMQ, a JRE, Python - pinned to the
   versions the Debian mirror offers when the image is planned (apt's candidates), the pinned jars at the paths the
   rendered command lines name, and contrail-ha in a venv from wheels of ``requirements.lock``
   (exact versions), installed offline. No compiler, Maven, browser or test tool. A non-root
   user ``contrail`` (uid 10001) is the default; only the lb's BIRD and VIP agent need root.

The tag carries a hash of every input (the Containerfile, the lock, the package's files, the
jars' classpaths), so an unchanged tree reuses its image and a changed one gets a new tag.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contrail_ha import __version__
from contrail_ha.image.engine import Engine, EngineError
from contrail_ha.runtime.containers import HEALTH_INTERVAL, HEALTH_RETRIES, HEALTH_START_PERIOD, HEALTH_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
BASE = "localhost/contrail-ha-base:bookworm"
NAME = "localhost/contrail-ha"
CACHE = Path(os.environ.get("CONTRAIL_HA_CACHE", "/var/cache/contrail-ha"))
UID = 10001
VENV = "/opt/contrail-ha/venv"
# What the containers run (pinned to apt's candidate versions: candidate_versions).
PACKAGES = ("python3", "python3-venv", "haproxy", "bird2", "rabbitmq-server", "openjdk-17-jre-headless",
            "iproute2", "nftables", "procps", "tini", "libfaketime", "ca-certificates")
SOURCES = ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list")


class ImageError(EngineError):
    """The image cannot be built, saved or loaded (a missing input, a failed step)."""


@dataclass(frozen=True)
class Plan:
    """What a build would make: its tag and the Containerfile (inputs hashed into the tag)."""

    tag: str
    containerfile: str
    inputs: str  # the hash


def mirror() -> str:
    """The Debian mirror apt uses here (debootstrap fetches the base from it)."""
    for path in SOURCES:
        p = Path(path)
        if not p.exists():
            continue
        text = p.read_text()
        m = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or \
            re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm\s", text, re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def candidate_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``package -> version`` the Debian mirror offers now (apt's candidate, from the lists
    install.sh refreshed), for pinning: the image gets exactly these, whatever apt would pick on
    another day. A package apt does not know is left unpinned."""
    p = subprocess.run(["apt-cache", "policy", *packages], capture_output=True, text=True, timeout=60, check=False)
    out: dict[str, str] = {}
    current = ""
    for line in p.stdout.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
        elif line.strip().startswith("Candidate:") and current in packages:
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                out[current] = version
    return out


def jar_paths(cache: Path = CACHE) -> list[Path]:
    """Every jar the components' classpath files name (what the image must carry)."""
    files = sorted((cache / "classpath").glob("*.txt"))
    if not files:
        raise ImageError(f"no classpath files under {cache}/classpath: run scripts/install.sh first")
    jars = {Path(j) for f in files for j in f.read_text().strip().split(":") if j}
    missing = [j for j in jars if not j.exists()]
    if missing:
        raise ImageError(f"{len(missing)} jars named by the classpaths are missing (e.g. {missing[0]}): "
                         "run scripts/install.sh")
    return sorted(jars)


def containerfile(pins: dict[str, str], inputs: str) -> str:
    pkgs = " ".join(f"{p}={pins[p]}" if p in pins else p for p in PACKAGES)
    # Slow, rarely changing layers first (packages, jars, locked dependencies), so that a change of
    # contrail-ha's own code rebuilds one small layer; the inputs label comes last for the same reason.
    return f"""# contrail-ha {__version__}: the image of every contrail-ha container (contrail-ha image build)
FROM {BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 CONTRAIL_HA_CACHE={CACHE} \\
    PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# this machine's apt sources (updates and security too: the pinned versions may come from them);
# packages must not start their daemons at install time (policy-rc.d), nor keep apt's lists
COPY apt /etc/apt/sources.list.d/
RUN rm -f /etc/apt/sources.list \\
 && printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \\
 && apt-get update -q && apt-get install -y -q --no-install-recommends {pkgs} \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \\
 && groupadd --system --gid {UID} contrail \\
 && useradd --system --uid {UID} --gid {UID} --home-dir /var/lib/contrail-ha --no-create-home contrail \\
 && mkdir -p /var/lib/contrail-ha && chown {UID}:{UID} /var/lib/contrail-ha
COPY cache {CACHE}
COPY deps /tmp/deps
RUN python3 -m venv {VENV} \\
 && {VENV}/bin/pip install -q --no-index --no-cache-dir --find-links /tmp/deps -r /tmp/deps/requirements.lock \\
 && rm -rf /tmp/deps
COPY app /tmp/app
RUN {VENV}/bin/pip install -q --no-index --no-cache-dir --no-deps /tmp/app/*.whl && rm -rf /tmp/app
USER {UID}
WORKDIR /var/lib/contrail-ha
HEALTHCHECK --interval={HEALTH_INTERVAL} --timeout={HEALTH_TIMEOUT} --retries={HEALTH_RETRIES} \\
  --start-period={HEALTH_START_PERIOD} CMD ["{VENV}/bin/python", "-m", "contrail_ha.runtime.health"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["contrail-ha", "--version"]
LABEL org.opencontainers.image.title="contrail-ha" org.opencontainers.image.version="{__version__}" \\
      io.contrail-ha.inputs="{inputs}"
"""


def package_files() -> list[Path]:
    """contrail-ha's own files that go into the image (their digest names its code)."""
    pkg = REPO / "contrail_ha"
    files = [p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted([*files, REPO / "pyproject.toml", REPO / "requirements.lock"])


def plan(cache: Path = CACHE) -> Plan:
    """The tag and Containerfile of this tree's image, without building anything."""
    pins = candidate_versions()
    h = hashlib.sha256()
    h.update(containerfile(pins, "").encode())
    for f in package_files():
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    for f in sorted((cache / "classpath").glob("*.txt")):
        h.update(f.read_bytes())
    inputs = h.hexdigest()[:12]
    return Plan(f"{NAME}:{__version__}-{inputs}", containerfile(pins, inputs), inputs)


def build_base(engine: Engine, log: Callable[[str], None] = print, *, timeout: float = 900) -> None:
    """The debootstrapped base image, unless it exists."""
    if engine.image_exists(BASE):
        return
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: run scripts/install.sh")
    with tempfile.TemporaryDirectory(prefix="contrail-ha-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _say(log, f"base: debootstrap bookworm from {mirror()}")
        p = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror()],
                           capture_output=True, text=True, timeout=timeout, check=False)
        if p.returncode != 0:
            raise ImageError(f"debootstrap failed ({p.returncode}): {(p.stderr or p.stdout)[-2000:]}")
        tar = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar, "w") as t:
            t.add(rootfs, arcname=".")  # numeric owners are kept (root)
        _say(log, f"base: importing {BASE}")
        engine.run("import", str(tar), BASE, timeout=timeout)


def build_requirements() -> list[str]:
    """contrail-ha's own build backend (``[build-system] requires`` of pyproject.toml)."""
    import tomllib

    reqs: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    return reqs


def wheels(deps: Path, app: Path, log: Callable[[str], None] = print, *, timeout: float = 1800) -> None:
    """Wheels of every locked dependency in ``deps`` and of contrail-ha in ``app``.

    The locked wheels and contrail-ha's build backend are fetched once per lock into the cache; every
    build after that is offline (``--no-index``): a site that copied the cache needs no package index."""
    lock = REPO / "requirements.lock"
    reqs = build_requirements()
    key = hashlib.sha256(lock.read_bytes() + "\n".join(reqs).encode()).hexdigest()[:12]
    cached = CACHE / "wheels" / key
    backend = cached / "build-backend"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if not (cached / ".complete").exists():
        _say(log, "wheels: building the locked dependencies' wheels and fetching the build backend")
        cached.mkdir(parents=True, exist_ok=True)
        _run([*pip, "wheel", "-q", "-w", str(cached), "-r", str(lock)], timeout)
        _run([*pip, "download", "-q", "--only-binary=:all:", "-d", str(backend), *reqs], timeout)
        (cached / ".complete").touch()
    deps.mkdir(parents=True, exist_ok=True)
    for w in cached.glob("*.whl"):
        shutil.copy2(w, deps / w.name)
    shutil.copy2(lock, deps / "requirements.lock")
    app.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="contrail-ha-src-") as src:  # pip builds in the tree it is given
        shutil.copytree(REPO / "contrail_ha", Path(src) / "contrail_ha", ignore=shutil.ignore_patterns("__pycache__"))
        for f in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / f, Path(src) / f)
        _run([*pip, "wheel", "-q", "--no-deps", "--no-index", "--find-links", str(backend), "-w", str(app), src],
             timeout)


def apt_sources(into: Path) -> None:
    """This machine's apt sources, for the image's apt (deb822 and one-line forms)."""
    into.mkdir(parents=True, exist_ok=True)
    found = False
    for path in [Path(SOURCES[0]), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.is_file():
            shutil.copy2(path, into / path.name)
            found = True
    legacy = Path(SOURCES[1])
    if legacy.is_file() and re.search(r"^deb\s", legacy.read_text(), re.M):
        shutil.copy2(legacy, into / "host.list")
        found = True
    if not found:
        (into / "debian.list").write_text(f"deb {mirror()} bookworm main\n")


def build(engine: Engine, log: Callable[[str], None] = print, *, timeout: float = 1800) -> str:
    """Build this tree's image unless its tag exists; returns the tag."""
    p = plan()
    if engine.image_exists(p.tag):
        _say(log, f"image: {p.tag} exists (inputs unchanged)")
        return p.tag
    jars = jar_paths()
    build_base(engine, log)
    with tempfile.TemporaryDirectory(prefix="contrail-ha-image-") as tmp:
        ctx = Path(tmp)
        (ctx / "Containerfile").write_text(p.containerfile)
        (ctx / ".dockerignore").write_text("Containerfile\n")
        apt_sources(ctx / "apt")
        wheels(ctx / "deps", ctx / "app", log)
        for j in jars + sorted((CACHE / "classpath").glob("*.txt")):
            dest = ctx / "cache" / j.relative_to(CACHE)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(j, dest) if j.stat().st_dev == ctx.stat().st_dev else shutil.copy2(j, dest)
        _say(log, f"image: building {p.tag}")
        try:
            engine.run("build", "--format", "docker", "--network", "host", "-t", p.tag, "-f",
                       str(ctx / "Containerfile"), str(ctx), timeout=timeout)
        except EngineError as e:
            if "was not found" in str(e):  # the mirror moved on since this machine's apt lists were read
                raise ImageError(f"{e}\nThe pins come from this machine's apt lists: run `apt-get update`, "
                                 "then build again") from e
            raise
    engine.run("tag", p.tag, f"{NAME}:{__version__}", timeout=60)
    if removed := prune(engine, keep=p.tag):
        _say(log, f"image: removed older builds {', '.join(removed)}")
    return p.tag


def prune(engine: Engine, keep: str) -> list[str]:
    """Remove this product's other content-hash tags: every change of the tree makes a new one, and
    at 840 MB each (most of it shared, but not all) they would fill a host's disk. A tag that a
    container still runs is kept (the engine refuses to remove it)."""
    out = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}", NAME, check=False, timeout=60).stdout
    built = re.compile(rf"{re.escape(NAME)}:[^:\s]+-[0-9a-f]{{12}}")
    removed = []
    for ref in dict.fromkeys(out.split()):
        if ref != keep and built.fullmatch(ref) and engine.run("rmi", ref, check=False, timeout=120).returncode == 0:
            removed.append(ref)
    return removed


def save(engine: Engine, tag: str, path: Path, *, timeout: float = 900) -> None:
    """The image as a docker-archive tarball, to carry to a host without a registry."""
    engine.run("save", "--format", "docker-archive", "-o", str(path), tag, timeout=timeout)


def load(engine: Engine, path: Path, *, timeout: float = 900) -> str:
    """Load a saved image; returns what podman reports it loaded."""
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    out = engine.run("load", "-i", str(path), timeout=timeout).stdout
    return out.strip().splitlines()[-1] if out.strip() else ""


def _run(argv: list[str], timeout: float) -> None:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise ImageError(f"{' '.join(argv[:5])} failed ({p.returncode}): {(p.stderr or p.stdout)[-2000:]}")


def _say(log: Callable[[str], None], msg: str) -> None:
    log(msg)
