"""Handing a role's directories to the image's user, and dropping root (runtime/ownership.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contrail_ha.runtime import ownership


def test_parse_names_the_bad_value() -> None:
    assert ownership.parse("10001:10002") == (10001, 10002)
    for bad in ("10001", "a:b", "-1:5", "1:2:3", ""):
        with pytest.raises(ValueError, match="run_as must be UID:GID"):
            ownership.parse(bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_hand_over_owns_the_tree_not_a_link_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("not ours")
    tree = tmp_path / "data"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("x")
    (tree / "link").symlink_to(outside)
    missing = tmp_path / "logs" / "new"
    changed = ownership.hand_over([tree, missing], 10001, 10001)
    assert changed == 5  # data, sub, f, link, logs/new
    for p in (tree, tree / "sub", tree / "sub" / "f", missing):
        assert (p.stat().st_uid, p.stat().st_gid) == (10001, 10001), p
    assert os.lstat(tree / "link").st_uid == 10001 and outside.stat().st_uid == 0
    assert ownership.hand_over([tree, missing], 10001, 10001) == 0  # idempotent


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping needs root")
def test_drop_leaves_no_way_back() -> None:
    code = ("import os; from contrail_ha.runtime import ownership; ownership.drop(10001, 10001); "
            "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups());"
            "\ntry:\n    os.setuid(0)\nexcept PermissionError:\n    print('no way back')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split("\n")[:2] == ["10001 10001 10001 []", "no way back"]
