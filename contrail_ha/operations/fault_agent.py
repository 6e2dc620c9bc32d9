"""The drill's hand inside a container of a deployed cluster: ``podman exec CONTAINER python -m
contrail_ha.operations.fault_agent ROOT HOST VERB PROCESS`` kills (held down), releases or reads
one process of the container's supervisor, in the container's own PID namespace and as the user
its processes run as. It prints the process's state as JSON. The deploying machine runs it over
SSH (:mod:`.faults_remote`); the container's supervisor does the rest, as it does locally."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contrail_ha.operations.faults import kill_in
from contrail_ha.rendering.base import Layout
from contrail_ha.runtime.supervisor_state import SupervisorDir
from contrail_ha.topology.plan import group_of_process

VERBS = ("state", "kill", "kill-restart", "heal")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fault_agent", description=__doc__)
    ap.add_argument("root", type=Path, help="the cluster's state root in the container")
    ap.add_argument("host")
    ap.add_argument("verb", choices=VERBS)
    ap.add_argument("process")
    a = ap.parse_args(argv)
    sd = SupervisorDir.of_host(Layout(a.root), a.host, group_of_process(a.process))
    if not sd.spec_file.exists():
        print(f"no supervisor of {a.process} under {sd.path}", file=sys.stderr)
        return 2
    if a.verb == "kill":
        kill_in(sd, a.process, hold=True)
    elif a.verb == "kill-restart":
        kill_in(sd, a.process, hold=False)
    elif a.verb == "heal":
        sd.release(a.process)
    print(json.dumps(sd.process(a.process)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
