"""Init container step: copy a ConfigMap's rendered files (``files.json`` index) into the state root.

Run as ``python -m contrail_ha.export.unpack CONFIG_DIR STATE_ROOT``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def unpack(config: Path, root: Path) -> int:
    """Place the files (with their modes) and directories of one exported unit under ``root``."""
    from contrail_ha.export import place

    index = json.loads((config / "files.json").read_text())
    paths = [*index["files"].values(), *index["dirs"]]
    bad = [p for p in paths if Path(p).is_absolute() or ".." in Path(p).parts]
    if bad:
        raise ValueError(f"refusing to write outside the state root: {bad}")
    files = {rel: (config / key).read_text() for key, rel in index["files"].items()}
    return place(root, files, {k: int(v) for k, v in index["modes"].items()}, index["dirs"])


def main() -> None:
    if len(sys.argv) != 3:
        sys.stderr.write("usage: python -m contrail_ha.export.unpack CONFIG_DIR STATE_ROOT\n")
        sys.exit(2)
    print(f"unpacked {unpack(Path(sys.argv[1]), Path(sys.argv[2]))} files into {sys.argv[2]}")


if __name__ == "__main__":
    main()
