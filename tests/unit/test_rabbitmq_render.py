"""RabbitMQ rendering (no servers), plus the probes' parsing through a fake ``runner``."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contrail_ha.probes import rabbitmq as probe
from contrail_ha.rendering import rabbitmq as rmq
from contrail_ha.rendering.base import Layout
from contrail_ha.topology.model import Host
from contrail_ha.topology.plan import EPMD_PORT, RABBITMQ, ZOOKEEPER, Plan
from tests.helpers.topo import loopback_plan

NODES = ["rabbit@127.0.30.1", "rabbit@127.0.30.2", "rabbit@127.0.30.3"]


@pytest.fixture
def plan() -> Plan:
    return loopback_plan("127.0.30", 3)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def conf_map(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition(" = ")
            out[k] = v
    return out


def test_rabbitmq_conf(plan: Plan, layout: Layout) -> None:
    inst = plan.of(RABBITMQ)[1]
    r = rmq.render(plan, inst, layout)
    conf = conf_map(r.files[layout.conf("n2", "rabbitmq") / "rabbitmq.conf"])
    assert conf["listeners.tcp.1"] == "127.0.30.2:5673"
    assert conf["cluster_name"] == "test"
    assert conf["cluster_partition_handling"] == "autoheal"
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    assert [conf[f"cluster_formation.classic_config.nodes.{i}"] for i in (1, 2, 3)] == NODES
    assert "loopback_users" not in conf  # guest does not exist: nothing to let in from other hosts
    assert conf["heartbeat"] == "10"
    assert (conf["management.tcp.ip"], conf["management.tcp.port"]) == ("127.0.30.2", "15673")
    assert conf["management.rates_mode"] == "none"


def test_files_dirs_and_modes(plan: Plan, layout: Layout) -> None:
    inst = plan.of(RABBITMQ)[0]
    r = rmq.render(plan, inst, layout)
    conf = layout.conf("n1", "rabbitmq")
    home = layout.host_dir("n1") / "rabbitmq" / "home"
    assert r.files[conf / "enabled_plugins"] == "[rabbitmq_management].\n"  # the status probes use its API
    assert r.files[conf / "rabbitmq-env.conf"] == ""
    cookie = home / ".erlang.cookie"
    assert r.modes[cookie] == 0o400 and r.modes[home] == 0o700
    assert len(r.files[cookie]) >= 20 and r.files[cookie].isalnum()
    for d in (conf, layout.data("n1", "rabbitmq"), layout.logs("n1", "rabbitmq"), layout.run("n1", "rabbitmq"),
              home):
        assert d in r.dirs
    assert all(str(p).startswith(str(layout.root)) for p in r.files)


def test_cookie_shared_by_nodes_and_per_cluster(plan: Plan, layout: Layout) -> None:
    cookies = set()
    for inst in plan.of(RABBITMQ):
        r = rmq.render(plan, inst, layout)
        cookies.update(v for k, v in r.files.items() if k.name == ".erlang.cookie")
    assert len(cookies) == 1
    other = loopback_plan("127.0.30", 3, cluster={"id": "other", "vip": "127.0.30.200",
                                                  "network": "127.0.30.0/24"})
    assert rmq.cookie(other, layout) not in cookies
    assert rmq.cookie(plan, layout) == rmq.cookie(loopback_plan("127.0.30", 3), layout)
    # another cluster root (another installation) gets another random secret
    assert rmq.cookie(plan, Layout(layout.root.parent / "elsewhere")) not in cookies


def test_processes_epmd_then_rabbitmq(plan: Plan, layout: Layout) -> None:
    inst = plan.of(RABBITMQ)[2]
    r = rmq.render(plan, inst, layout)
    epmd, server = r.processes
    assert epmd.name == "epmd" and epmd.argv == ["epmd"]
    assert epmd.env["ERL_EPMD_ADDRESS"] == "127.0.30.3,127.0.0.1"
    assert epmd.env["ERL_EPMD_PORT"] == str(EPMD_PORT)
    assert server.name == "rabbitmq" and server.argv == ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
    assert server.stop_signal == signal.SIGTERM
    env = server.env
    assert env["RABBITMQ_USE_LONGNAME"] == "true"
    assert env["RABBITMQ_NODENAME"] == "rabbit@127.0.30.3"
    assert env["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.30.3"
    assert env["RABBITMQ_NODE_PORT"] == "5673"
    assert env["RABBITMQ_DIST_PORT"] == "25673"
    assert server.pid_file == env["RABBITMQ_PID_FILE"]
    assert Path(server.pid_file).parent == layout.run("n3", "rabbitmq")
    assert env["RABBITMQ_MNESIA_BASE"] == str(layout.data("n3", "rabbitmq"))
    assert env["RABBITMQ_LOG_BASE"] == str(layout.logs("n3", "rabbitmq"))
    for key in ("RABBITMQ_CONFIG_FILE", "RABBITMQ_ENABLED_PLUGINS_FILE", "RABBITMQ_CONF_ENV_FILE"):
        assert Path(env[key]) in r.files, key
    assert Path(env["HOME"]) / ".erlang.cookie" in r.files
    assert env["ERL_ZFLAGS"] == "-start_epmd false"  # never an untracked epmd daemon
    # host-namespace mode: standard epmd look-ups and pre-launch checks, dist port on our IP only
    assert env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == "-kernel inet_dist_use_interface {127,0,30,3}"


def test_shared_netns_mode(plan: Plan, layout: Layout) -> None:
    inst = plan.of(RABBITMQ)[2]
    r = rmq.render(plan, inst, layout, epmd_port=14333, shared_netns=True)
    assert {p.env["ERL_EPMD_PORT"] for p in r.processes} == {"14333"}
    args = r.processes[1].env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    assert "-name rabbit@127.0.30.3" in args
    assert "-erl_epmd_port 25673" in args
    assert "-kernel inet_dist_use_interface {127,0,30,3}" in args
    assert r.files == rmq.render(plan, inst, layout).files  # same configuration files either way
    ctl = rmq.ctl_env(plan, inst, layout, shared_netns=True)
    assert ctl["RABBITMQ_CTL_ERL_ARGS"] == "-erl_epmd_port 25673 -dist_listen false"


def test_dist_port_follows_amqp_port(layout: Layout) -> None:
    plan = loopback_plan("127.0.30", 3, ports={"rabbitmq": 5700})
    env = rmq.render(plan, plan.of(RABBITMQ)[0], layout).processes[1].env
    assert env["RABBITMQ_DIST_PORT"] == "25700"
    shared = rmq.render(plan, plan.of(RABBITMQ)[0], layout, shared_netns=True).processes[1].env
    assert "-erl_epmd_port 25700" in shared["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    ctl = rmq.ctl_env(plan, plan.of(RABBITMQ)[0], layout, shared_netns=True)
    assert "-erl_epmd_port 25700" in ctl["RABBITMQ_CTL_ERL_ARGS"]


def test_rejects_other_components(plan: Plan, layout: Layout) -> None:
    with pytest.raises(ValueError):
        rmq.render(plan, plan.of(ZOOKEEPER)[0], layout)


def test_ctl_argv_and_env(plan: Plan, layout: Layout) -> None:
    inst = plan.of(RABBITMQ)[0]
    argv = rmq.ctl_argv(plan, inst, layout, "cluster_status", "--formatter", "json")
    assert argv == ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "rabbit@127.0.30.1", "--longnames",
                    "cluster_status", "--formatter", "json"]
    env = rmq.ctl_env(plan, inst, layout)
    server_env = rmq.render(plan, inst, layout).processes[1].env
    assert env["HOME"] == server_env["HOME"]  # same cookie
    assert env["RABBITMQ_NODENAME"] == "rabbit@127.0.30.1"  # CLI node rabbitmqcli-<n>-rabbit@127.0.30.1
    assert env["RABBITMQ_CTL_ERL_ARGS"] == "-kernel inet_dist_use_interface {127,0,30,1}"
    assert env["ERL_EPMD_PORT"] == str(EPMD_PORT) and env["RABBITMQ_USE_LONGNAME"] == "true"


# --- probes, through a fake runner ------------------------------------------------------------------
def status(running: list[str], partitions: dict | None = None, alarms: list | None = None) -> str:
    return json.dumps({"running_nodes": running, "disk_nodes": NODES, "partitions": partitions or {},
                       "alarms": alarms or [], "cluster_name": "test"})


class FakeCtl:
    """Answers rabbitmqctl calls per node name; records them."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, plan: Plan, host: Host, argv: list[str], env: dict[str, str]
                 ) -> subprocess.CompletedProcess[str]:
        node = argv[argv.index("-n") + 1]
        self.calls.append((node, argv[argv.index("--longnames") + 1:]))
        rc, out = self.answers.get(node, (69, ""))
        return subprocess.CompletedProcess(argv, rc, out if rc == 0 else "",
                                           "" if rc == 0 else f"Error: unable to perform an operation on node '{node}'")


class FakeApi:
    """Answers ``cluster_status`` (each node's management API) per node name, as the parsed JSON."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def __call__(self, plan: Plan, layout: Layout, inst: Any, timeout: float = 5.0) -> dict[str, Any]:
        node = plan.rabbitmq_node_name(inst.host)
        if node not in self.answers:
            raise RuntimeError("ConnectError: [Errno 111] Connection refused")
        return json.loads(self.answers[node])


def test_checks_all_running(plan: Plan, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "cluster_status", FakeApi({n: status(NODES) for n in NODES}))
    cs = probe.checks(plan, layout)
    assert [c.target for c in cs] == ["n1", "n2", "n3", "cluster"]
    assert all(c.ok and c.component == "rabbitmq" for c in cs)
    assert cs[0].detail == "running: " + ", ".join(NODES)
    assert cs[-1].detail == "3/3 running, no partitions"


def test_checks_partition_and_down_node(plan: Plan, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {NODES[0]: status(NODES[:2], partitions={NODES[0]: [NODES[2]]}), NODES[1]: status(NODES[:2])}
    monkeypatch.setattr(probe, "cluster_status", FakeApi(answers))
    cs = {c.target: c for c in probe.checks(plan, layout)}
    assert not cs["n1"].ok and "partitions" in cs["n1"].detail
    assert cs["n2"].ok
    assert not cs["n3"].ok and cs["n3"].detail.startswith("unreachable")
    assert not cs["cluster"].ok
    assert "n3" in cs["cluster"].detail and NODES[2] in cs["cluster"].detail


def test_configure_sets_then_unchanged(plan: Plan, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCtl({n: (0, "[]") for n in NODES})
    monkeypatch.setattr(probe, "runner", fake)
    assert probe.configure(plan, layout) == "set"
    set_call = fake.calls[-1][1]
    assert set_call[0] == "set_policy" and set_call[-3:] == [
        "ha", r"^(?!amq\.).*", '{"ha-mode":"all","ha-sync-mode":"automatic"}']
    listed = json.dumps([{"vhost": "/", "name": "ha", "pattern": r"^(?!amq\.).*", "apply-to": "all",
                          "definition": '{"ha-mode":"all","ha-sync-mode":"automatic"}', "priority": 0}])
    fake2 = FakeCtl({n: (0, listed) for n in NODES})
    monkeypatch.setattr(probe, "runner", fake2)
    assert probe.configure(plan, layout) == "unchanged"
    assert [c[1][0] for c in fake2.calls] == ["list_policies"]


def test_configure_fails_without_nodes(plan: Plan, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "runner", FakeCtl({}))
    with pytest.raises(RuntimeError, match="could not set the ha policy"):
        probe.configure(plan, layout)


def test_ready_reports_the_error(plan: Plan, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "runner", FakeCtl({NODES[0]: (0, "")}))
    assert probe.ready(plan, layout, plan.of(RABBITMQ)[0]) == (True, "running")
    ok, detail = probe.ready(plan, layout, plan.of(RABBITMQ)[1])
    assert not ok and "unable to perform" in detail


def test_probe_picks_the_mode_from_the_namespace(plan: Plan, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCtl({})
    envs: list[dict[str, str]] = []
    monkeypatch.setattr(probe, "runner", lambda p, h, argv, env: envs.append(env) or fake(p, h, argv, env))
    monkeypatch.setattr(probe.netns, "exists", lambda ns: False)
    probe.ready(plan, layout, plan.of(RABBITMQ)[0])
    monkeypatch.setattr(probe.netns, "exists", lambda ns: True)
    probe.ready(plan, layout, plan.of(RABBITMQ)[0])
    assert "-dist_listen false" in envs[0]["RABBITMQ_CTL_ERL_ARGS"]
    assert "-dist_listen false" not in envs[1]["RABBITMQ_CTL_ERL_ARGS"]


def test_prefix_uses_the_namespace_only_when_it_exists(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe.netns, "exists", lambda ns: False)
    assert probe.prefix(plan, plan.controllers[0]) == []
    monkeypatch.setattr(probe.netns, "exists", lambda ns: ns == "test-n1")
    assert probe.prefix(plan, plan.controllers[0])[-4:] == ["ip", "netns", "exec", "test-n1"]


def test_boot_definitions_carry_the_policy_vhost_and_users(plan: Plan, layout: Layout) -> None:
    import base64
    import hashlib

    inst = plan.of(RABBITMQ)[2]
    r = rmq.render(plan, inst, layout)
    conf_dir = layout.conf("n3", "rabbitmq")
    conf = conf_map(r.files[conf_dir / "rabbitmq.conf"])
    assert conf["load_definitions"] == str(conf_dir / "definitions.json")
    assert "loopback_users" not in conf  # no guest to let in from other hosts
    d = json.loads(r.files[conf_dir / "definitions.json"])
    assert r.modes[conf_dir / "definitions.json"] == 0o600
    assert d["vhosts"] == [{"name": "/"}]
    (pol,) = d["policies"]
    assert probe.policy_matches(pol) and pol["vhost"] == "/"
    users = {u["name"]: u for u in d["users"]}
    assert set(users) == {"contrail-api", "contrail-monitor"}  # no guest, no administrator
    assert users["contrail-api"]["tags"] == [] and users["contrail-monitor"]["tags"] == ["monitoring"]
    for name, u in users.items():
        pw = rmq.password(layout, name)
        assert len(pw) >= 32 and pw != "guest"
        raw = base64.b64decode(u["password_hash"])  # RabbitMQ's salted SHA-256 of the generated password
        assert raw[4:] == hashlib.sha256(raw[:4] + pw.encode()).digest()
    assert rmq.password(layout, "contrail-api") != rmq.password(layout, "contrail-monitor")
    assert d["permissions"] == [{"user": "contrail-api", "vhost": "/", "configure": r"^vnc_config\.",
                                 "write": r"^vnc_config\.", "read": r"^vnc_config\."}]
    # the monitor's credentials for the host's probes, readable by the owner only
    assert json.loads(r.files[conf_dir / "monitor.json"]) == {"user": "contrail-monitor",
                                                              "password": rmq.password(layout, "contrail-monitor")}
    assert r.modes[conf_dir / "monitor.json"] == 0o600
    # the same text on every node and every render (a re-render restarts nothing)
    assert r.files[conf_dir / "definitions.json"] == rmq.definitions(plan, layout)
    assert all(rmq.definitions(plan, layout) == rmq.render(plan, i, layout).files[layout.conf(i.host.name, "rabbitmq")
                                                                                   / "definitions.json"]
               for i in plan.of(RABBITMQ))


def test_the_api_replicas_get_their_credentials_in_a_private_file(plan: Plan, layout: Layout) -> None:
    from contrail_ha.rendering import services
    from contrail_ha.topology.plan import CONFIG_API

    inst = plan.of(CONFIG_API)[0]
    r = services.render(plan, inst, layout)
    (path,) = r.files
    cfg = json.loads(r.files[path])
    assert cfg["rabbitmq_user"] == "contrail-api" and cfg["rabbitmq_password"] == rmq.password(layout, "contrail-api")
    # and its ZooKeeper digest identity, another generated secret
    from contrail_ha.rendering import zookeeper

    assert cfg["zookeeper_user"] == "contrail-api"
    assert cfg["zookeeper_password"] == zookeeper.password(layout, "contrail-api") != cfg["rabbitmq_password"]
    assert r.modes[path] == 0o600


def test_the_first_node_forms_and_a_new_node_joins_a_running_one(plan: Plan, layout: Layout) -> None:
    servers = [next(p for p in rmq.render(plan, i, layout).processes if p.name == "rabbitmq")
               for i in plan.of(RABBITMQ)]
    assert servers[0].join_after == [] and servers[0].fresh_dir == ""
    for k, s in enumerate(servers[1:], start=2):
        others = [f"tcp://127.0.30.{j}:5673" for j in (1, 2, 3) if j != k]
        assert s.join_after == others and s.join_any
        assert s.fresh_dir == str(layout.data(f"n{k}", "rabbitmq"))
