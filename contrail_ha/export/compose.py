"""Docker Compose: one project per host, one service per role group, the rendered tree mounted.

The files keep to what both Compose implementations accept: the compose-spec schema that Debian's
``docker-compose`` 1.29 validates against (no top-level ``name``: the project's name is in the
``.env`` file beside it, which both read) and Docker's own ``docker compose``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contrail_ha import __version__
from contrail_ha.export import Unit
from contrail_ha.runtime.containers import compose_project, write_compose_project
from contrail_ha.topology.plan import Plan


def project(plan: Plan, host: str, units: list[Unit], root: Path, image: str) -> dict[str, Any]:
    """The compose file of ``host``: its state directory (``./state``) is the cluster's state root."""
    return compose_project(plan, host, [u.spec for u in units], root, image)


def write(plan: Plan, units: list[Unit], out: Path, root: Path, image: str | None = None) -> list[Path]:
    """``out/<host>/docker-compose.yaml`` (and ``.env``) for every host."""
    image = image or f"localhost/contrail-ha:{__version__}"
    return [write_compose_project(out / host, host, project(plan, host, [u for u in units if u.host == host], root,
                                                            image))
            for host in dict.fromkeys(u.host for u in units)]
