"""A real 3-node RabbitMQ cluster on 127.0.30.1-3 (root namespace): formation, checks, HA policy, AMQP.

The three nodes share one namespace, so they are rendered with ``shared_netns`` (see
``rendering.rabbitmq``): each gets its own epmd on its own address, on its own port (stock
epmd always binds 127.0.0.1 and ::1 too), and distribution needs no epmd look-up. A single
node rendered as in a host namespace (standard epmd look-ups) is tested on other ports.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from contrail_ha.probes import rabbitmq as probe
from contrail_ha.rendering import rabbitmq as rmq
from contrail_ha.rendering.base import Layout
from contrail_ha.services.config_api.notify import EXCHANGE
from contrail_ha.topology.plan import RABBITMQ, RABBITMQ_DIST_OFFSET, Instance, Plan
from tests.helpers import proc
from tests.helpers.rabbitmq import Cluster, beam_pid, ensure_gone, listening, loopback_cluster
from tests.helpers.topo import loopback_plan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PREFIX = "127.0.30"
EPMD_BASE = 14330  # node i's epmd listens on 14330 + i (and, as epmd always does, on 127.0.0.1/::1)
SOLO_EPMD = 14335  # the single host-namespace-mode node's epmd
READY_TIMEOUT = 150.0


def epmd_port(inst: Instance) -> int:
    return EPMD_BASE + inst.index + 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("needs root (rabbitmq-server from /usr/lib/rabbitmq/bin)")
    if not Path(rmq.SERVER).exists():
        pytest.skip("rabbitmq-server is not installed")
    plan = loopback_plan(PREFIX, 3)
    with loopback_cluster(plan, Layout(tmp_path_factory.mktemp("rabbitmq")), EPMD_BASE, configure=False) as c:
        yield c
    print("rabbitmq timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in c.timings.items()))


def test_three_running_nodes_no_partitions(cluster: Cluster) -> None:
    t = time.monotonic()
    checks = probe.checks(cluster.plan, cluster.layout)
    cluster.timings["checks"] = time.monotonic() - t
    assert all(c.ok for c in checks), [c.as_dict() for c in checks]
    nodes = [c for c in checks if c.target != "cluster"]
    assert sorted(c.target for c in nodes) == ["n1", "n2", "n3"]
    expected = [f"rabbit@{PREFIX}.{i}" for i in (1, 2, 3)]
    for c in nodes:
        assert c.component == "rabbitmq"
        assert c.data["running_nodes"] == expected
        assert c.data["partitions"] == {} and c.data["cluster_name"] == "test"
        assert c.detail == "running: " + ", ".join(expected)
    (clus,) = [c for c in checks if c.target == "cluster"]
    assert clus.detail == "3/3 running, no partitions"


def test_ha_policy_vhost_and_user_come_from_the_boot_definitions(cluster: Cluster) -> None:
    # nobody ran rabbitmqctl on this cluster (configure=False): every node imported them at boot
    for i in range(3):
        policies = probe.ctl_json(cluster.plan, cluster.layout, cluster.inst(i), "list_policies")
        assert len(policies) == 1 and probe.policy_matches(policies[0]), policies
        assert policies[0]["pattern"] == r"^(?!amq\.).*"
    # the product's own users only (no guest), each with the cluster's generated password
    users = probe.ctl_json(cluster.plan, cluster.layout, cluster.inst(2), "list_users")
    assert sorted((u["user"], u["tags"]) for u in users) == [(rmq.API_USER, []), (rmq.MONITOR_USER, ["monitoring"])]
    for user in (rmq.API_USER, rmq.MONITOR_USER):
        check = probe.ctl(cluster.plan, cluster.layout, cluster.inst(2), "authenticate_user", user,
                          rmq.password(cluster.layout, user))
        assert check.returncode == 0, check.stderr
    for user, pw in ((rmq.API_USER, "wrong"), ("guest", "guest")):
        assert probe.ctl(cluster.plan, cluster.layout, cluster.inst(2), "authenticate_user", user, pw).returncode != 0
    perms = probe.ctl_json(cluster.plan, cluster.layout, cluster.inst(0), "list_permissions")
    assert [(p["user"], p["configure"], p["write"], p["read"]) for p in perms] == [
        (rmq.API_USER, rmq.API_PATTERN, rmq.API_PATTERN, rmq.API_PATTERN)], perms
    vhosts = probe.ctl_json(cluster.plan, cluster.layout, cluster.inst(0), "list_vhosts")
    assert [v["name"] for v in vhosts] == ["/"]
    t = time.monotonic()
    assert probe.configure(cluster.plan, cluster.layout) == "unchanged"
    cluster.timings["configure"] = time.monotonic() - t


def test_publish_confirmed_on_one_node_consumed_on_another(cluster: Cluster) -> None:
    pika = pytest.importorskip("pika")
    probe.configure(cluster.plan, cluster.layout)
    q = f"vnc_config.test-{uuid.uuid4().hex[:8]}"  # what contrail-api's user may declare and use
    n = 200
    creds = pika.PlainCredentials(rmq.API_USER, rmq.password(cluster.layout, rmq.API_USER))

    def connect(inst: Instance):
        return pika.BlockingConnection(pika.ConnectionParameters(
            inst.ip, inst.port, credentials=creds, heartbeat=10, blocked_connection_timeout=10,
            socket_timeout=5, connection_attempts=3, retry_delay=0.5))

    pub = connect(cluster.inst(0))
    try:
        ch = pub.channel()
        ch.confirm_delivery()
        ch.exchange_declare(EXCHANGE, "fanout", durable=False)
        ch.queue_declare(q, durable=False, auto_delete=False)
        ch.queue_bind(q, EXCHANGE)
        t = time.monotonic()
        for k in range(n):
            # with confirms on, a nack or an unroutable message raises here
            ch.basic_publish(EXCHANGE, "", f"msg-{k}".encode(), mandatory=True)
        cluster.timings[f"publish {n} confirmed"] = time.monotonic() - t
    finally:
        pub.close()

    # the ha policy mirrors the queue on the two other nodes (--local: its master is on n1; in a
    # shared namespace the CLI cannot collect answers from several nodes)
    def mirrored() -> bool:
        rows = probe.ctl_json(cluster.plan, cluster.layout, cluster.inst(0), "list_queues", "--local", "name",
                              "policy", "slave_pids", "synchronised_slave_pids")
        row = next(r for r in rows if r["name"] == q)
        return row["policy"] == "ha" and len(row["synchronised_slave_pids"] or []) == 2

    proc.wait_for(mirrored, 30, f"mirrors of {q}")

    got: list[str] = []
    sub = connect(cluster.inst(2))
    try:
        ch = sub.channel()
        t = time.monotonic()
        deadline = t + 30
        while len(got) < n and time.monotonic() < deadline:
            method, _props, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got.append(body.decode())
        cluster.timings[f"consume {n}"] = time.monotonic() - t
        ch.queue_delete(q)
    finally:
        sub.close()
    assert got == [f"msg-{k}" for k in range(n)]


def test_no_guest_and_the_api_user_only_on_its_own_names(cluster: Cluster) -> None:
    """From another address: guest/guest is refused; contrail-api's user cannot declare, publish to
    or read anything but the notification exchange and queues; the monitor has no vhost access."""
    pika = pytest.importorskip("pika")
    inst = cluster.inst(1)

    def connect(user: str, pw: str):
        return pika.BlockingConnection(pika.ConnectionParameters(
            inst.ip, inst.port, credentials=pika.PlainCredentials(user, pw), socket_timeout=5,
            connection_attempts=1))

    for user, pw in (("guest", "guest"), (rmq.API_USER, "guest"),
                     (rmq.MONITOR_USER, rmq.password(cluster.layout, rmq.MONITOR_USER))):
        with pytest.raises((pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError,
                            pika.exceptions.AMQPConnectionError)):
            connect(user, pw).close()
    conn = connect(rmq.API_USER, rmq.password(cluster.layout, rmq.API_USER))
    try:
        for attempt in (lambda ch: ch.queue_declare("other-queue"),
                        lambda ch: ch.exchange_declare("other-exchange", "fanout"),
                        lambda ch: ch.basic_publish("", "x", b"anything")):
            ch = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                attempt(ch)
                ch.basic_qos(prefetch_count=1)  # a round trip: an asynchronous refusal arrives by now
            assert e.value.reply_code == 403, e.value
    finally:
        conn.close()


def test_cli_runs_without_epmd_lookups(cluster: Cluster) -> None:
    """The CLI reaches each node's fixed distribution port; the node is also registered with its epmd."""
    for inst in cluster.plan.of(RABBITMQ):
        t = time.monotonic()
        assert probe.ready(cluster.plan, cluster.layout, inst) == (True, "running")
        cluster.timings[f"rabbitmqctl await_startup {inst.host.name}"] = time.monotonic() - t
        names = subprocess.run(["epmd", "-names"], env={**os.environ, "ERL_EPMD_PORT": str(epmd_port(inst))},
                               capture_output=True, text=True, timeout=10)
        assert f"name rabbit at port {inst.port + RABBITMQ_DIST_OFFSET}" in names.stdout, names.stdout


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[tuple[Plan, Layout, Instance]]:
    """One node rendered as in a host namespace, on ports of its own (next to the cluster)."""
    if os.geteuid() != 0 or not Path(rmq.SERVER).exists():
        pytest.skip("needs root and rabbitmq-server")
    plan = loopback_plan(PREFIX, 1, cluster={"id": "solo", "vip": f"{PREFIX}.200", "network": f"{PREFIX}.0/24"},
                         ports={"rabbitmq": 5674})
    layout = Layout(tmp_path)
    inst = plan.of(RABBITMQ)[0]
    busy = [p for p in (5674, 5674 + RABBITMQ_DIST_OFFSET, SOLO_EPMD) if listening(inst.ip, p)]
    assert not busy, f"already in use on {inst.ip}: {busy}"
    beams: list[int] = []
    with ExitStack() as stack:
        stack.callback(ensure_gone, beams)
        stack.enter_context(proc.running(rmq.render(plan, inst, layout, epmd_port=SOLO_EPMD),
                                         layout.host_dir("n1") / "logs"))
        yield plan, layout, inst
        if Path(rmq.paths(layout, inst)["pid"]).exists():
            beams.append(beam_pid(layout, inst))


def test_host_namespace_mode_single_node(solo: tuple[Plan, Layout, Instance]) -> None:
    """Standard set-up: the node registers with its epmd, the CLI finds it there and listens itself."""
    plan, layout, inst = solo
    env = {"PATH": os.environ.get("PATH", probe.DEFAULT_PATH), **rmq.ctl_env(plan, inst, layout, epmd_port=SOLO_EPMD)}

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(rmq.ctl_argv(plan, inst, layout, *args), env=env, capture_output=True, text=True,
                              timeout=60)

    t0 = time.monotonic()
    proc.wait_for(lambda: ctl("await_startup", "--timeout", "10").returncode == 0, READY_TIMEOUT, "solo node")
    print(f"\nrabbitmq single node (host-namespace mode) ready in {time.monotonic() - t0:.1f}s")
    names = subprocess.run(["epmd", "-names"], env={**os.environ, "ERL_EPMD_PORT": str(SOLO_EPMD)},
                           capture_output=True, text=True, timeout=10)
    assert f"name rabbit at port {5674 + RABBITMQ_DIST_OFFSET}" in names.stdout, names.stdout
    cp = ctl("list_queues", "name", "--formatter", "json")  # answers are sent to the CLI's own node
    assert cp.returncode == 0 and cp.stdout.strip().startswith("["), cp.stdout + cp.stderr
