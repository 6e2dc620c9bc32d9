"""Each host's project as one tar file: its Compose file and ``.env``, and under ``state/`` its
rendered tree and secrets (what ``export compose`` writes for the host).

The archive is deterministic (sorted entries, a fixed time) and its entries belong to the image's
user: Ansible's ``unarchive`` then finds an unchanged project unchanged (it compares contents,
modes, owners and times), and the containers' processes own their files without a hand-over.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import yaml

from contrail_ha import export as ex
from contrail_ha.export import compose
from contrail_ha.runtime import ownership
from contrail_ha.runtime.containers import compose_files
from contrail_ha.topology.plan import Plan

MTIME = 1_700_000_000  # every entry's time: a re-rendered, unchanged file is the same entry


def _entry(tar: tarfile.TarFile, name: str, mode: int, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.uname, info.gname = ownership.UID, ownership.GID, "", ""
    info.mtime, info.mode = MTIME, mode
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def host_archive(plan: Plan, host: str, units: list[ex.Unit], root: Path, image: str) -> bytes:
    """``host``'s project as tar bytes (``units``: the host's, from :func:`contrail_ha.export.units`)."""
    doc = compose.project(plan, host, units, root, image)  # the very files `export compose` writes
    files = {name: (0o644, text.encode()) for name, text in compose_files(host, doc).items()}
    dirs: dict[str, int] = {}
    for u in units:
        for rel in u.dirs:
            dirs[f"state/{rel}"] = u.modes.get(rel, 0o755)
        for rel, text in u.files.items():
            files[f"state/{rel}"] = (u.modes.get(rel, 0o644), text.encode())
    for name in list(files) + list(dirs):  # every parent directory, with a mode
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), 0o755)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(dirs):
            _entry(tar, name, dirs[name])
        for name in sorted(files):
            mode, data = files[name]
            _entry(tar, name, mode, data)
    return buf.getvalue()


def write(plan: Plan, secrets_root: Path, root: Path, image: str, out: Path) -> dict[str, Path]:
    """Every host's archive as ``out/<host>.tar`` (rewritten only when it changed); host -> path.
    ``secrets_root``: where this machine keeps the cluster's secrets; ``root``: the state root
    the containers mount the project's ``state/`` at."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    units = ex.units(plan, secrets_root, root)
    paths = {}
    for h in plan.topology.hosts:
        data = host_archive(plan, h.name, [u for u in units if u.host == h.name], root, image)
        f = out / f"{h.name}.tar"
        if not f.exists() or f.read_bytes() != data:
            f.write_bytes(data)
            f.chmod(0o600)  # it holds the cluster's secrets
        paths[h.name] = f
    return paths


def services(archive: bytes) -> dict[str, dict]:
    """The Compose services of an archive (for checks)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("docker-compose.yaml")
        assert member is not None
        return yaml.safe_load(member.read())["services"]

