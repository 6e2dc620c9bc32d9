"""ZooKeeper probes: four-letter words (``srvr``, ``mntr``) over a plain TCP socket."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

from contrail_ha.probes.base import Check
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.plan import ZOOKEEPER, Instance, Plan

TIMEOUT = 1.0
SERVING_MODES = ("leader", "follower", "standalone", "observer")
NOT_SERVING = "not currently serving requests"


def four_letter(ip: str, port: int, word: str, timeout: float = TIMEOUT) -> str:
    """Send a four-letter word and return the whole answer (the server closes the connection)."""
    chunks: list[bytes] = []
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(word.encode())
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def parse_srvr(text: str) -> dict[str, str]:
    """``Key: value`` lines of a ``srvr``/``stat`` answer."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def parse_mntr(text: str) -> dict[str, str]:
    """Tab-separated ``key value`` lines of a ``mntr`` answer."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("\t")
        if sep:
            out[k.strip()] = v.strip()
    return out


def mode(inst: Instance, timeout: float = TIMEOUT) -> str:
    """The server's mode (leader, follower, standalone); raises when it is not serving."""
    text = four_letter(inst.ip, inst.port, "srvr", timeout)
    if NOT_SERVING in text:
        raise RuntimeError("not serving requests (no quorum)")
    m = parse_srvr(text).get("Mode")
    if not m:
        raise RuntimeError(f"unexpected srvr answer: {text.strip()[:120]!r}")
    return m


def ready(plan: Plan, layout: Layout, inst: Instance) -> tuple[bool, str]:
    """Whether ``inst`` serves clients, and its mode or the error."""
    try:
        m = mode(inst)
    except (OSError, RuntimeError) as e:
        return False, str(e) or type(e).__name__
    return m in SERVING_MODES, m


def _node_check(inst: Instance) -> Check:
    try:
        text = four_letter(inst.ip, inst.port, "mntr")
    except OSError as e:
        return Check(ZOOKEEPER, inst.host.name, False, f"unreachable: {e}", {"address": inst.address})
    if NOT_SERVING in text:
        return Check(ZOOKEEPER, inst.host.name, False, "not serving requests (no quorum)",
                     {"address": inst.address})
    m = parse_mntr(text)
    state = m.get("zk_server_state", "unknown")
    data: dict[str, object] = {"address": inst.address, "mode": state}
    for key in ("zk_znode_count", "zk_num_alive_connections", "zk_outstanding_requests",
                "zk_avg_latency", "zk_synced_followers", "zk_version"):
        if key in m:
            data[key.removeprefix("zk_")] = m[key]
    return Check(ZOOKEEPER, inst.host.name, state in SERVING_MODES, state, data)


def node_checks(plan: Plan) -> list[Check]:
    """One check per ZooKeeper server, probed in parallel."""
    insts = plan.of(ZOOKEEPER)
    if not insts:
        return []
    with ThreadPoolExecutor(max_workers=len(insts)) as pool:
        return list(pool.map(_node_check, insts))


def quorum_check(plan: Plan, nodes: list[Check]) -> Check:
    """Cluster check: exactly one leader and a strict majority of servers serving."""
    total = len(nodes)
    majority = total // 2 + 1
    serving = [c for c in nodes if c.ok]
    leaders = [c.target for c in serving if c.detail in ("leader", "standalone")]
    ok = len(leaders) == 1 and len(serving) >= majority
    if ok:
        detail = f"leader {leaders[0]}, {len(serving)}/{total} serving"
    elif not leaders:
        detail = f"no leader, {len(serving)}/{total} serving (majority {majority})"
    elif len(leaders) > 1:
        detail = f"{len(leaders)} leaders: {', '.join(leaders)}"
    else:
        detail = f"only {len(serving)}/{total} serving (majority {majority})"
    return Check(ZOOKEEPER, "cluster", ok, detail,
                 {"leader": leaders[0] if len(leaders) == 1 else None, "serving": len(serving),
                  "total": total, "majority": majority})


def checks(plan: Plan, layout: Layout) -> list[Check]:
    """Per-server checks followed by the quorum check."""
    nodes = node_checks(plan)
    return [*nodes, quorum_check(plan, nodes)]


def leader(plan: Plan) -> Instance | None:
    """The instance that currently reports itself leader (or standalone), if exactly one does."""
    insts = plan.of(ZOOKEEPER)
    if not insts:
        return None

    def probe(inst: Instance) -> str | None:
        try:
            return mode(inst)
        except (OSError, RuntimeError):
            return None

    with ThreadPoolExecutor(max_workers=len(insts)) as pool:
        modes = list(pool.map(probe, insts))
    found = [i for i, m in zip(insts, modes, strict=True) if m in ("leader", "standalone")]
    return found[0] if len(found) == 1 else None
