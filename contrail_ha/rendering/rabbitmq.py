"""RabbitMQ 3.10 cluster member on a controller host (Contrail's rabbitmq container).

As in Contrail: static cluster membership (``classic_config`` with every controller's node
name; the first node forms the cluster, a new node starts once another one runs - see
``ProcessSpec.join_after``), ``cluster_partition_handling = autoheal``, heartbeat 10 s,
and the ``ha`` mirroring policy. The policy, the vhost and the users come from a definitions file
every node imports at boot (RabbitMQ's way to pre-configure nodes at deployment): a cluster
started from the exported files alone has them, with no orchestrator to run ``rabbitmqctl``.

Each node is ``rabbit@<ip>`` (long names) with its own epmd, supervised in the foreground
(``ERL_ZFLAGS=-start_epmd false``: RabbitMQ never spawns an untracked epmd daemon). The
distribution port is the AMQP port + 20000, bound on the host's address only.

``shared_netns`` is for several nodes in one network namespace (tests on loopback addresses),
where the standard set-up cannot work: epmd always binds 127.0.0.1 besides the given address
(so each node needs its own ``epmd_port``), nodes register with epmd only on 127.0.0.1, and
RabbitMQ's pre-launch check binds the distribution port on the wildcard address. There, peers
connect to the fixed distribution port without any epmd look-up (``-erl_epmd_port``) and the
node starts distribution at boot (``-name``), which skips those pre-launch checks. The CLI
then does not listen, so commands whose answers come from several nodes (``list_queues``
without ``--local``) cannot work in that mode; in host namespaces everything is standard.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
from pathlib import Path
from typing import Any

from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered
from contrail_ha.topology.plan import EPMD_PORT, RABBITMQ, RABBITMQ_DIST_OFFSET, Instance, Plan

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # as root: not the /usr/sbin wrappers (they switch user)
SERVER = str(RABBITMQ_BIN / "rabbitmq-server")
CTL = str(RABBITMQ_BIN / "rabbitmqctl")
EPMD = "epmd"

HEARTBEAT_S = 10  # Contrail's RABBITMQ_HEARTBEAT_INTERVAL
# The management API answers the status probes (a rabbitmqctl call boots an Erlang VM: ~1 CPU-second,
# and over 30 s on two loaded cores); its statistics are kept to a minimum.
PLUGINS: list[str] = ["rabbitmq_management"]
LOCALE = "C.UTF-8"  # the CLI (Elixir) warns and mangles output under a latin1 locale

# Contrail's mirroring policy: every queue but RabbitMQ's own (amq.*) on every node, synchronised
# automatically.
HA_POLICY = "ha"
HA_PATTERN = r"^(?!amq\.).*"
HA_DEFINITION: dict[str, Any] = {"ha-mode": "all", "ha-sync-mode": "automatic"}
HA_APPLY_TO = "all"
HA_PRIORITY = 0
VHOST = "/"
# The product's own users, each with a password generated once per cluster (no guest, no default
# credential): contrail-api may touch only the notification exchange and its replicas' queues;
# the monitor only reads the management API's node list (the ``monitoring`` tag, no vhost access).
API_USER = "contrail-api"
MONITOR_USER = "contrail-monitor"
API_PATTERN = r"^vnc_config\."  # the exchange vnc_config.object-update and the queues vnc_config.<replica>


def password(layout: Layout, user: str) -> str:
    """``user``'s password: the cluster's random secret, made once."""
    return layout.secret(f"rabbitmq-{user}")


def password_hash(plan: Plan, password: str) -> str:
    """RabbitMQ's salted SHA-256 (``rabbit_password_hashing_sha256``): base64(salt + sha256(salt +
    password)). The salt comes from the cluster id and the password, so rendering stays
    deterministic (a re-render restarts nothing)."""
    salt = hashlib.sha256(f"contrail-ha/rabbitmq-salt/{plan.cluster_id}/{password}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(plan: Plan, layout: Layout) -> str:
    """The definitions every node imports at boot. Importing them skips RabbitMQ's own default
    user (guest) and vhost: the vhost and the product's users are defined here, nobody else."""
    def user(name: str, tags: list[str]) -> dict[str, Any]:
        return {"name": name, "password_hash": password_hash(plan, password(layout, name)),
                "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags}

    return json.dumps({
        "vhosts": [{"name": VHOST}],
        "users": [user(API_USER, []), user(MONITOR_USER, ["monitoring"])],
        "permissions": [{"user": API_USER, "vhost": VHOST, "configure": API_PATTERN, "write": API_PATTERN,
                         "read": API_PATTERN}],
        "policies": [{"vhost": VHOST, "name": HA_POLICY, "pattern": HA_PATTERN, "apply-to": HA_APPLY_TO,
                      "priority": HA_PRIORITY, "definition": HA_DEFINITION}],
    }, indent=1, sort_keys=True) + "\n"


def cookie(plan: Plan, layout: Layout) -> str:
    """The shared Erlang cookie: from the cluster's random secret, so every node agrees and nobody can guess it."""
    seed = layout.secret("erlang-cookie")
    return hashlib.sha256(f"contrail-ha/rabbitmq/{plan.cluster_id}/{seed}".encode()).hexdigest()[:32].upper()


def dist_port(plan: Plan) -> int:
    return plan.ports.rabbitmq + RABBITMQ_DIST_OFFSET


def node_name(plan: Plan, inst: Instance) -> str:
    return plan.rabbitmq_node_name(inst.host)


def _dir(layout: Layout, inst: Instance) -> Path:
    return layout.host_dir(inst.host.name) / inst.name


def home_dir(layout: Layout, inst: Instance) -> Path:
    """HOME of the node and its CLI: holds ``.erlang.cookie``."""
    return _dir(layout, inst) / "home"


def paths(layout: Layout, inst: Instance) -> dict[str, Path]:
    """Every file and directory of one node, by role."""
    host = inst.host.name
    conf = layout.conf(host, inst.name)
    run = layout.run(host, inst.name)
    return {
        "conf": conf,
        "config": conf / "rabbitmq.conf",
        "plugins": conf / "enabled_plugins",
        "definitions": conf / "definitions.json",
        "monitor": conf / "monitor.json",  # the monitor's credentials, for the status probes on the host
        "conf_env": conf / "rabbitmq-env.conf",
        "mnesia": layout.data(host, inst.name),
        "logs": layout.logs(host, inst.name),
        "run": run,
        "pid": run / "rabbitmq.pid",
        "home": home_dir(layout, inst),
        "cookie": home_dir(layout, inst) / ".erlang.cookie",
    }


def rabbitmq_conf(plan: Plan, inst: Instance, definitions_file: Path | None = None) -> str:
    """The text of rabbitmq.conf (new-style, sysctl format) for ``inst``."""
    lines = [
        "# Rendered by contrail-ha: do not edit.",
        f"listeners.tcp.1 = {inst.ip}:{inst.port}",
        f"cluster_name = {plan.cluster_id}",
        "cluster_partition_handling = autoheal",
        "cluster_formation.peer_discovery_backend = classic_config",
    ]
    for n, h in enumerate(plan.controllers, start=1):
        lines.append(f"cluster_formation.classic_config.nodes.{n} = {plan.rabbitmq_node_name(h)}")
    if definitions_file is not None:
        lines.append(f"load_definitions = {definitions_file}")
    lines += [
        f"management.tcp.ip = {inst.ip}",
        f"management.tcp.port = {mgmt_port(plan)}",
        "management.rates_mode = none",
        "collect_statistics_interval = 30000",
        f"heartbeat = {HEARTBEAT_S}",
        "log.file.level = info",
        "log.console = true",
        "log.console.level = warning",
    ]
    return "\n".join(lines) + "\n"


def mgmt_port(plan: Plan) -> int:
    """The management HTTP API of every node (AMQP port + 10000, Contrail's 15673)."""
    from contrail_ha.topology.plan import RABBITMQ_MGMT_OFFSET

    return plan.ports.rabbitmq + RABBITMQ_MGMT_OFFSET


def enabled_plugins() -> str:
    return f"[{','.join(PLUGINS)}].\n"


def _erl_tuple(ip: str) -> str:
    return "{" + ip.replace(".", ",") + "}"


def server_env(plan: Plan, inst: Instance, layout: Layout, epmd_port: int = EPMD_PORT,
               shared_netns: bool = False) -> dict[str, str]:
    """Environment of ``rabbitmq-server`` for ``inst``."""
    p = paths(layout, inst)
    node = node_name(plan, inst)
    dport = dist_port(plan)
    erl_args = [f"-kernel inet_dist_use_interface {_erl_tuple(inst.ip)}"]  # dist port on our IP only
    if shared_netns:
        erl_args += [
            f"-name {node}",  # distribution at boot: skips the wildcard dist-port pre-checks
            "-start_epmd false",
            f"-erl_epmd_port {dport}",  # every node listens on the same port: no epmd look-up
        ]
    return {
        "HOME": str(p["home"]),
        "LANG": LOCALE,
        "LC_ALL": LOCALE,
        "ERL_EPMD_ADDRESS": f"{inst.ip},127.0.0.1",
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_ZFLAGS": "-start_epmd false",  # also for the epmd-starter child RabbitMQ spawns
        "RABBITMQ_USE_LONGNAME": "true",
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": inst.ip,
        "RABBITMQ_NODE_PORT": str(inst.port),
        "RABBITMQ_DIST_PORT": str(dport),
        "RABBITMQ_CONFIG_FILE": str(p["config"]),
        "RABBITMQ_MNESIA_BASE": str(p["mnesia"]),
        "RABBITMQ_LOG_BASE": str(p["logs"]),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(p["plugins"]),
        "RABBITMQ_PID_FILE": str(p["pid"]),
        "RABBITMQ_CONF_ENV_FILE": str(p["conf_env"]),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": " ".join(erl_args),
    }


def epmd_env(inst: Instance, epmd_port: int = EPMD_PORT) -> dict[str, str]:
    return {"ERL_EPMD_ADDRESS": f"{inst.ip},127.0.0.1", "ERL_EPMD_PORT": str(epmd_port)}


def render(plan: Plan, inst: Instance, layout: Layout, epmd_port: int = EPMD_PORT,
           shared_netns: bool = False) -> Rendered:
    """rabbitmq.conf, enabled_plugins, the cookie, and the epmd + rabbitmq-server processes.

    ``epmd_port`` and ``shared_netns`` only for nodes sharing a namespace (see the module doc).
    """
    if inst.component != RABBITMQ:
        raise ValueError(f"not a rabbitmq instance: {inst.component}")
    p = paths(layout, inst)
    nodes = plan.of(RABBITMQ)
    others = [] if inst.host.name == nodes[0].host.name else [o for o in nodes if o.host.name != inst.host.name]
    return Rendered(
        files={
            p["config"]: rabbitmq_conf(plan, inst, p["definitions"]),
            p["plugins"]: enabled_plugins(),
            p["definitions"]: definitions(plan, layout),
            p["monitor"]: json.dumps({"user": MONITOR_USER, "password": password(layout, MONITOR_USER)}) + "\n",
            p["conf_env"]: "",  # keeps /etc/rabbitmq/rabbitmq-env.conf out
            p["cookie"]: cookie(plan, layout),
        },
        modes={p["cookie"]: 0o400, p["home"]: 0o700, p["definitions"]: 0o600, p["monitor"]: 0o600},
        dirs=[p["conf"], p["mnesia"], p["logs"], p["run"], p["home"]],
        processes=[
            ProcessSpec(name="epmd", argv=[EPMD], env=epmd_env(inst, epmd_port), cwd=str(p["run"]),
                        stop_timeout=5.0, health=f"tcp://{inst.ip}:{epmd_port}"),
            ProcessSpec(name=inst.name, argv=[SERVER], env=server_env(plan, inst, layout, epmd_port, shared_netns),
                        cwd=str(p["mnesia"]), stop_signal=signal.SIGTERM, stop_timeout=30.0,
                        pid_file=str(p["pid"]), health=f"tcp://{inst.address}",  # AMQP opens once booted
                        # the first node forms the cluster; a new one joins a running node (never two
                        # new nodes forming clusters of their own at once)
                        join_after=[f"tcp://{o.address}" for o in others], join_any=True,
                        fresh_dir=str(p["mnesia"]) if others else ""),
        ],
    )


def ctl_env(plan: Plan, inst: Instance, layout: Layout, epmd_port: int = EPMD_PORT,
            shared_netns: bool = False) -> dict[str, str]:
    """Environment for ``rabbitmqctl`` against ``inst``, run on ``inst``'s host (same cookie).

    The CLI's own node is ``rabbitmqcli-<n>-rabbit@<ip>`` (named after the target node, so no
    name resolution is involved) and listens on the host's address only. With
    ``shared_netns`` it does not listen at all and connects straight to the distribution port.
    """
    p = paths(layout, inst)
    if shared_netns:
        ctl_args = f"-erl_epmd_port {dist_port(plan)} -dist_listen false"
    else:
        ctl_args = f"-kernel inet_dist_use_interface {_erl_tuple(inst.ip)}"
    return {
        "HOME": str(p["home"]),
        "LANG": LOCALE,
        "LC_ALL": LOCALE,
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_ZFLAGS": "-start_epmd false",
        "RABBITMQ_USE_LONGNAME": "true",
        "RABBITMQ_NODENAME": node_name(plan, inst),
        "RABBITMQ_CONF_ENV_FILE": str(p["conf_env"]),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(p["plugins"]),
        "RABBITMQ_CTL_ERL_ARGS": ctl_args,
    }


def ctl_argv(plan: Plan, inst: Instance, layout: Layout, *args: str) -> list[str]:
    """``rabbitmqctl -n <node> --longnames <args>`` for ``inst`` (run it with ``ctl_env``)."""
    return [CTL, "-n", node_name(plan, inst), "--longnames", *args]
