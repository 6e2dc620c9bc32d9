"""Init container step of the Kubernetes export: place this node's host's rendered files under
the state root and point ``<root>/self/<group>.json`` at its supervisor spec.

Run as ``python -m contrail_ha.export.unpack CONFIG_DIR SECRET_DIR|- STATE_ROOT`` with ``NODE_IP``
(the pod's ``status.hostIP``) and ``NODE_NAME`` (``spec.nodeName``) set: the host of the
topology with that IP, else with that name, is this node's. A node labelled for a role that no
host of the topology has at that address is an error, not a guess.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from contrail_ha.errors import ContrailHaError

SELF_DIR = "self"


class NotInTopology(ContrailHaError, LookupError):
    """This node is no host of the group in the topology."""


def _safe(paths: list[str]) -> None:
    bad = [p for p in paths if Path(p).is_absolute() or ".." in Path(p).parts]
    if bad:
        raise ValueError(f"refusing to write outside the state root: {bad}")


def pick(index: dict[str, Any], node_ip: str, node_name: str) -> dict[str, Any]:
    """This node's host entry: by address first (names differ between clouds), then by name."""
    hosts = index["hosts"]
    for key, value in (("ip", node_ip), ("host", node_name)):
        found = [h for h in hosts if value and h[key] == value]
        if found:
            return dict(found[0])
    known = ", ".join(f"{h['host']} ({h['ip']})" for h in hosts)
    raise NotInTopology(f"node {node_name or '?'} ({node_ip or '?'}) is labelled for {index['group']}, but no "
                        f"{index['group']} host of the topology has its address or name; those are: {known}")


def unpack(config: Path, secret: Path | None, root: Path, node_ip: str, node_name: str) -> tuple[str, int]:
    """Place this node's files (with their modes) and directories; returns (host, files placed)."""
    from contrail_ha.export import place

    index = json.loads((config / "index.json").read_text())
    host = pick(index, node_ip, node_name)
    _safe([*host["files"].values(), *host["dirs"], host["spec"]])
    files = {}
    for key, rel in host["files"].items():
        src = config / key if (config / key).exists() else (secret / key if secret else None)
        if src is None or not src.exists():
            raise FileNotFoundError(f"{key} ({rel}) is in neither the ConfigMap nor the Secret")
        files[rel] = src.read_text()
    n = place(root, files, {k: int(v) for k, v in host["modes"].items()}, host["dirs"])
    link = root / SELF_DIR / f"{index['group']}.json"
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(root / host["spec"])
    os.replace(tmp, link)
    return host["host"], n


def main() -> None:
    if len(sys.argv) != 4:
        sys.stderr.write("usage: python -m contrail_ha.export.unpack CONFIG_DIR SECRET_DIR|- STATE_ROOT\n")
        sys.exit(2)
    config, secret, root = Path(sys.argv[1]), None if sys.argv[2] == "-" else Path(sys.argv[2]), Path(sys.argv[3])
    try:
        host, n = unpack(config, secret, root, os.environ.get("NODE_IP", ""), os.environ.get("NODE_NAME", ""))
    except (NotInTopology, ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"unpack: {e}\n")
        sys.exit(1)
    print(f"unpacked {n} files of host {host} into {root}")


if __name__ == "__main__":
    main()
