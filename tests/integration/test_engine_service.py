"""Podman's API service, as the local runtime starts it (contrail_ha.runtime.compose_run.ApiService):
hosts' containers are started from parallel threads, and exactly one service may result."""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from contrail_ha.image.engine import Engine
from contrail_ha.runtime import compose_run


def _services(sock: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"podman system service --time=0 unix://{sock}"], capture_output=True,
                         text=True, timeout=30).stdout
    return out.split()


def test_parallel_callers_start_one_service() -> None:
    engine = Engine(Path(tempfile.mkdtemp(prefix="eng-", dir="/tmp")))
    if not engine.available():
        pytest.skip("needs Podman (scripts/install.sh)")
    api = compose_run.ApiService(engine)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: api.ensure(), range(4)))
        assert api.answers() and len(_services(api.socket)) == 1, _services(api.socket)
        api.ensure()  # running and answering: left as it is
        assert len(_services(api.socket)) == 1
    finally:
        api.stop()
    assert _services(api.socket) == []
