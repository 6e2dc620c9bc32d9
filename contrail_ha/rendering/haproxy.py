"""HAProxy on an lb host: the seed's contrail-lb load balancer in front of the stateless APIs.

Two HTTP frontends (``contrail-api`` on 8082, ``contrail-analytics-api`` on 8081) bound to the
VIP (or to every address with ``lb.bind: any``), each with a backend holding every replica of
its API. Replicas are health-checked with ``GET /health`` every second: 200 is UP, anything
else (a 503 means "this replica cannot serve writes") counts as a failure; 2 failures mark a
server DOWN, 2 successes bring it back.

Failures between checks are hidden from clients by retries: a request whose connection fails
is retried (``retries 2``) on another server (``option redispatch 1``: every retry is
redispatched). Idempotent requests are also retried after an empty response or a 503;
non-idempotent ones (POST, PATCH) only after a connection failure, when the server never
received them.

Process: ``haproxy -db -W -f haproxy.cfg`` (master-worker, in the foreground; the master's
PID is in the pid file, ``kill -USR2 <master>`` reloads). It is stopped with **SIGUSR1**, a
soft stop: listeners close at once, requests in flight finish, idle keep-alive connections are
answered once more with ``Connection: close`` (``option idle-close-on-response``, so a client
sending on one just then is not cut off), and ``hard-stop-after`` bounds the wait. The lb's
health watcher should withdraw the VIP before stopping HAProxy.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from contrail_ha.rendering import pki
from contrail_ha.rendering.base import Layout, ProcessSpec, Rendered
from contrail_ha.topology.model import LbBind, Role
from contrail_ha.topology.plan import ANALYTICS_API, CONFIG_API, HAPROXY, Instance, Plan, local_only

NAME = "haproxy"
CONFIG_FILE = "haproxy.cfg"
SOCKET_FILE = "haproxy.sock"
PID_FILE = "haproxy.pid"

CONFIG_API_FRONTEND = "contrail-api"
CONFIG_API_BACKEND = "contrail-api-backend"
ANALYTICS_API_FRONTEND = "contrail-analytics-api"
ANALYTICS_API_BACKEND = "contrail-analytics-api-backend"
BACKENDS = (CONFIG_API_BACKEND, ANALYTICS_API_BACKEND)
BACKEND_COMPONENT = {CONFIG_API_BACKEND: CONFIG_API, ANALYTICS_API_BACKEND: ANALYTICS_API}
STATS_PROXY = "stats"

HEALTH_PATH = "/health"
# Check cadence: health checks every second, every 250 ms once one failed (DOWN after 2 failures);
# besides, a connection refused by a server on live traffic marks it DOWN at once (observe layer4),
# so a killed replica leaves rotation with its first refused request; the request is redispatched.
CHECK = "check inter 1s fastinter 250ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down"
HARD_STOP_AFTER_S = 10
STOP_TIMEOUT_S = HARD_STOP_AFTER_S + 5.0
# HAProxy binds a unix socket through a temporary name (<path>.<pid>.tmp) and refuses paths
# longer than 97 bytes ("socket path ... too long (max 97)").
MAX_SOCKET_PATH = 97


def config_path(layout: Layout, host: str) -> Path:
    """haproxy.cfg of lb ``host``."""
    return layout.conf(host, NAME) / CONFIG_FILE


def stats_socket(layout: Layout, host: str) -> Path:
    """The admin stats socket of the HAProxy on lb ``host`` (a plain file path, no namespace)."""
    return layout.run(host, NAME) / SOCKET_FILE


def pid_path(layout: Layout, host: str) -> Path:
    """The master's pid file."""
    return layout.run(host, NAME) / PID_FILE


def planned_servers(plan: Plan) -> dict[str, set[str]]:
    """Per backend, the servers the plan puts in rotation (what a scale-in compares the running ones to)."""
    return {be: {server_name(i) for i in plan.of(comp)} for be, comp in BACKEND_COMPONENT.items()}


def server_name(inst: Instance) -> str:
    """Server name inside a backend: ``<host>-<process>``, e.g. ``ctrl1-config-api-1``."""
    return f"{inst.host.name}-{inst.name}"


def _bind(plan: Plan, port: int) -> str:
    if plan.topology.lb.bind == LbBind.ANY:
        return f"*:{port}"
    # The runtime sets net.ipv4.ip_nonlocal_bind=1 on lb hosts, so HAProxy starts (and
    # reloads) even while the lb's health watcher has withdrawn the VIP from lo.
    return f"{plan.vip}:{port}"


# Every request gets a cluster-unique id (lb host name, client and frontend address, time, request
# counter) in this header; a retry re-sends the same request, with the same id. contrail-api derives
# a create's uuid from it, so a create retried after its replica died mid-way is not done twice.
REQUEST_ID_HEADER = "X-Contrail-HA-Request"
UNIQUE_ID_FORMAT = r"%H_%ci:%cp_%fi:%fp_%Ts_%rt"
# Requests safe to send twice, hence retried on another replica (retry-on): reads and idempotent
# methods everywhere; on the config API also creates (POST /<type>s, made idempotent by the request
# id) and the read-only actions; on the analytics API every request (POST /analytics/query reads).
RETRYABLE = {
    CONFIG_API_BACKEND: [
        "acl idempotent method GET HEAD OPTIONS PUT TRACE",
        r"acl create path_reg ^/[a-z][a-z0-9-]*s/?$",
        "acl read_action path /fqname-to-id /id-to-fqname /list-bulk-collection",
        "http-request disable-l7-retry unless idempotent || METH_POST create || METH_POST read_action",
    ],
    ANALYTICS_API_BACKEND: [],
}


LAST_RESORT = "-last-resort"


def _backend(name: str, servers: list[Instance]) -> list[str]:
    lines = [
        f"backend {name}",
        "    balance roundrobin",
        f"    option httpchk GET {HEALTH_PATH}",
        "    http-check expect status 200",
        "    # retry-on (defaults) beyond conn-failure only for requests safe to send twice",
        *(f"    {line}" for line in RETRYABLE[name]),
        "    # When no replica passes its check (e.g. ZooKeeper lost by all of them), the unchecked",
        "    # last-resort entries still carry the requests: reads are served, writes get the replica's 503.",
        "    option allbackups",
    ]
    lines += [f"    server {server_name(i)} {i.address} {CHECK}" for i in servers]
    lines += [f"    server {server_name(i)}{LAST_RESORT} {i.address} backup" for i in servers]
    return lines


VIP_PEM = "vip.pem"


def vip_pem(layout: Layout, host: str) -> Path:
    """The VIP's certificate and key as HAProxy reads them (0600), on lb ``host``."""
    return layout.conf(host, NAME) / VIP_PEM


def vip_pair(plan: Plan, layout: Layout) -> pki.Pair:
    """The VIP's certificate: the site's own (``tls.cert``/``tls.key``), else the cluster CA's for the
    VIP's address and ``tls.names``."""
    tls = plan.topology.tls
    if tls.cert is not None and tls.key is not None:
        return pki.load_site(tls.cert, tls.key)
    return pki.server(layout, plan.cluster_id, "vip", [str(plan.vip), *tls.names])


def _frontend(name: str, bind: str, backend: str, pem: Path | None) -> list[str]:
    # with TLS the port speaks nothing else: a plain-HTTP client's request fails the handshake
    tls = f" ssl crt {pem} alpn http/1.1" if pem is not None else ""
    return [
        f"frontend {name}",
        f"    bind {bind}{tls}",
        *(["    http-request set-header X-Forwarded-Proto https"] if pem is not None else []),
        f"    http-request del-header {REQUEST_ID_HEADER}",
        f"    unique-id-format {UNIQUE_ID_FORMAT}",
        f"    unique-id-header {REQUEST_ID_HEADER}",
        f"    default_backend {backend}",
    ]


def render_config(plan: Plan, inst: Instance, layout: Layout) -> str:
    """The text of haproxy.cfg for the HAProxy instance ``inst``."""
    host = inst.host.name
    sock = stats_socket(layout, host)
    p = plan.ports
    pem = vip_pem(layout, host) if plan.topology.tls.vip else None
    out = [
        f"# contrail-ha: HAProxy of lb {host} (cluster {plan.cluster_id}); rendered, do not edit.",
        "global",
        "    # foreground master-worker (haproxy -db -W): no 'daemon'",
        f"    pidfile {pid_path(layout, host)}",
        f"    stats socket {sock} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "    log stdout format raw local0 info",
        "    maxconn 4096",
        "    nbthread 1",
        f"    hard-stop-after {HARD_STOP_AFTER_S}s",
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        "    ssl-default-bind-ciphers ECDHE+AESGCM:ECDHE+CHACHA20",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlognull",
        "    option httplog",
        "    option dontlog-normal  # log only errors, retries, aborts and slow answers",
        "    option forwardfor",
        "    timeout connect 1s",
        "    timeout client 3m",
        "    timeout server 3m",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 5s",
        "    timeout check 2s",
        "    # a reload (scale, new config) keeps each idle client keep-alive connection until its next",
        "    # request and answers it (Connection: close) instead of closing it under a request in flight",
        "    option idle-close-on-response",
        "    retries 2",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response 503",
        "    # a request is retried only if HAProxy still holds all of it: wait for the whole body (<= bufsize)",
        "    option http-buffer-request",
        "",
        *_frontend(CONFIG_API_FRONTEND, _bind(plan, p.config_api), CONFIG_API_BACKEND, pem),
        "",
        *_frontend(ANALYTICS_API_FRONTEND, _bind(plan, p.analytics_api), ANALYTICS_API_BACKEND, pem),
        "",
        *_backend(CONFIG_API_BACKEND, plan.of(BACKEND_COMPONENT[CONFIG_API_BACKEND])),
        "",
        *_backend(ANALYTICS_API_BACKEND, plan.of(BACKEND_COMPONENT[ANALYTICS_API_BACKEND])),
        "",
        f"listen {STATS_PROXY}",  # the page and its Prometheus exporter: the lb's loopback only
        f"    bind {local_only(inst.ip)}:{p.haproxy_stats}",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
        "    stats show-legends",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "",
    ]
    return "\n".join(out)


def render(plan: Plan, inst: Instance, layout: Layout) -> Rendered:
    """haproxy.cfg and the ``haproxy`` process for the lb host of ``inst``."""
    if inst.component != HAPROXY or not inst.host.has(Role.LB):
        raise ValueError(f"{inst.component} on {inst.host.name} is not an lb's HAProxy")
    host = inst.host.name
    sock = stats_socket(layout, host)
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise ValueError(f"stats socket path too long for a unix socket ({len(str(sock))} bytes): {sock}")
    cfg = config_path(layout, host)
    files = {cfg: render_config(plan, inst, layout)}
    modes = {}
    if plan.topology.tls.vip:
        pem = vip_pem(layout, host)
        files[pem], modes[pem] = vip_pair(plan, layout).pem, 0o600
    return Rendered(
        files=files,
        modes=modes,
        dirs=[cfg.parent, layout.run(host, NAME), layout.logs(host, NAME)],
        processes=[
            ProcessSpec(
                name=NAME,
                argv=["haproxy", "-db", "-W", "-f", str(cfg)],
                stop_signal=signal.SIGUSR1,
                stop_timeout=STOP_TIMEOUT_S,
                reload_signal=signal.SIGUSR2,  # master-worker: new workers on the new config, no downtime
                health=f"unix://{stats_socket(layout, host)}",
            )
        ],
    )


def check_config(path: Path | str) -> tuple[bool, str]:
    """Validate a configuration with the real checker (``haproxy -c -f``): (ok, its output)."""
    try:
        p = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"haproxy -c: {e}"
    return p.returncode == 0, (p.stdout + p.stderr).strip()
