"""haproxy.cfg rendering for the example topologies, validated by the real ``haproxy -c``; stats parsing."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from contrail_ha.probes import haproxy as probe
from contrail_ha.rendering import haproxy
from contrail_ha.rendering.base import DEFAULT_STATE_ROOT, Layout
from contrail_ha.topology.model import Lb, LbBind, Services
from contrail_ha.topology.plan import ANALYTICS_API, BIRD, CONFIG_API, HAPROXY, Plan
from contrail_ha.topology.validate import load_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["ha", "split", "colocated-lb", "all-in-one"]


def _plan(name: str) -> Plan:
    return load_topology(EXAMPLES / f"{name}.yaml").plan()


def _variant(plan: Plan, **update: object) -> Plan:
    return Plan(plan.topology.model_copy(update=update))


def _section(cfg: str, header: str) -> list[str]:
    """The lines of the section starting with ``header`` (up to the next blank line)."""
    lines = cfg.splitlines()
    start = lines.index(header)
    out = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        out.append(line.strip())
    return out


def _layout(plan: Plan) -> Layout:
    """The real layout (socket paths must fit HAProxy's limit); files are checked from tmp_path."""
    return Layout(DEFAULT_STATE_ROOT / plan.cluster_id)


def _render_all(plan: Plan, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """host -> (a copy of its haproxy.cfg under tmp_path, the text)."""
    out = {}
    for inst in plan.of(HAPROXY):
        layout = _layout(plan)
        r = haproxy.render(plan, inst, layout)
        text = r.files[haproxy.config_path(layout, inst.host.name)]
        pem = haproxy.vip_pem(layout, inst.host.name)
        if pem in r.files:  # the VIP's certificate, as a copy the checker reads
            copy = tmp_path / f"{inst.host.name}.pem"
            copy.write_text(r.files[pem])
            text = text.replace(str(pem), str(copy))
        path = tmp_path / f"{inst.host.name}.cfg"
        path.write_text(text)
        out[inst.host.name] = (path, text)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_config_passes_haproxy_check(name: str, tmp_path: Path) -> None:
    plan = _plan(name)
    rendered = _render_all(plan, tmp_path)
    assert set(rendered) == {h.name for h in plan.lbs}
    for host, (path, _) in rendered.items():
        ok, out = haproxy.check_config(path)
        assert ok, f"{host}: {out}"
        assert "[WARNING]" not in out, out


@pytest.mark.parametrize("name", NAMES)
def test_structure(name: str) -> None:
    plan = _plan(name)
    layout = _layout(plan)
    for inst in plan.of(HAPROXY):
        r = haproxy.render(plan, inst, layout)
        cfg = r.files[haproxy.config_path(layout, inst.host.name)]
        glob = _section(cfg, "global")
        sock = layout.run(inst.host.name, "haproxy") / "haproxy.sock"
        assert f"stats socket {sock} mode 600 level admin expose-fd listeners" in glob
        assert f"pidfile {layout.run(inst.host.name, 'haproxy') / 'haproxy.pid'}" in glob
        assert "daemon" not in glob
        defaults = _section(cfg, "defaults")
        for line in ("mode http", "retries 2", "option redispatch 1",
                     "retry-on conn-failure empty-response 503"):
            assert line in defaults
        assert any(line.startswith("timeout connect ") for line in defaults)

        rid = ["http-request del-header X-Contrail-HA-Request", r"unique-id-format %H_%ci:%cp_%fi:%fp_%Ts_%rt",
               "unique-id-header X-Contrail-HA-Request"]
        tls = f" ssl crt {haproxy.vip_pem(layout, inst.host.name)} alpn http/1.1"  # tls.vip: on by default
        proto = "http-request set-header X-Forwarded-Proto https"
        assert _section(cfg, "frontend contrail-api") == [
            f"bind {plan.vip}:8082{tls}", proto, *rid, "default_backend contrail-api-backend"]
        assert _section(cfg, "frontend contrail-analytics-api") == [
            f"bind {plan.vip}:8081{tls}", proto, *rid, "default_backend contrail-analytics-api-backend"]

        for backend, comp in (("contrail-api-backend", CONFIG_API),
                              ("contrail-analytics-api-backend", ANALYTICS_API)):
            sec = _section(cfg, f"backend {backend}")
            assert "option httpchk GET /health" in sec
            assert "http-check expect status 200" in sec
            if comp == CONFIG_API:  # creates and reads are retried; other POSTs (ip-alloc, ...) are not
                assert ("http-request disable-l7-retry unless idempotent || METH_POST create || "
                        "METH_POST read_action") in sec
            else:  # every analytics request is a read
                assert not [line for line in sec if "disable-l7-retry" in line]
            servers = [line for line in sec if line.startswith("server ")]
            assert servers == [f"server {i.host.name}-{i.name} {i.ip}:{i.port} {haproxy.CHECK}"
                               for i in plan.of(comp)] + [
                f"server {i.host.name}-{i.name}-last-resort {i.ip}:{i.port} backup" for i in plan.of(comp)]
            assert servers and "option allbackups" in sec

        stats = _section(cfg, "listen stats")
        assert f"bind 127.0.0.1:{plan.ports.haproxy_stats}" in stats  # never on the cluster or client network
        assert "stats enable" in stats

        [spec] = r.processes
        assert spec.name == "haproxy"
        assert spec.argv == ["haproxy", "-db", "-W", "-f", str(haproxy.config_path(layout, inst.host.name))]
        assert spec.stop_signal == signal.SIGUSR1
        assert spec.stop_timeout > haproxy.HARD_STOP_AFTER_S
        assert layout.run(inst.host.name, "haproxy") in r.dirs


def test_bind_any(tmp_path: Path) -> None:
    plan = _variant(_plan("ha"), lb=Lb(bind=LbBind.ANY))
    for path, cfg in _render_all(plan, tmp_path).values():
        assert "bind *:8082" in cfg and "bind *:8081" in cfg
        assert f"bind {plan.vip}:" not in cfg
        assert f"bind 127.0.0.1:{plan.ports.haproxy_stats}" in cfg
        ok, out = haproxy.check_config(path)
        assert ok, out


def test_replicas_are_servers(tmp_path: Path) -> None:
    plan = _variant(_plan("ha"), services=Services(config_api_replicas=2, analytics_api_replicas=3))
    [(path, cfg), _] = _render_all(plan, tmp_path).values()
    api = [line for line in _section(cfg, "backend contrail-api-backend")
           if line.startswith("server ") and " backup" not in line]
    assert len(api) == 6
    assert f"server ctrl1-config-api-2 10.10.0.21:18082 {haproxy.CHECK}" in api
    analytics = [line for line in _section(cfg, "backend contrail-analytics-api-backend")
                 if line.startswith("server ") and " backup" not in line]
    assert len(analytics) == 9
    assert len(set(re.findall(r"^\s+server (\S+)", cfg, re.MULTILINE))) == 30  # names unique (15 + last resorts)
    ok, out = haproxy.check_config(path)
    assert ok, out


def test_checker_rejects_a_broken_config(tmp_path: Path) -> None:
    plan = _plan("ha")
    [(path, cfg), _] = _render_all(plan, tmp_path).values()
    path.write_text(cfg.replace("    mode http", "    mode htttp"))
    ok, out = haproxy.check_config(path)
    assert not ok
    assert "ALERT" in out


def test_render_refuses_other_components(tmp_path: Path) -> None:
    plan = _plan("ha")
    with pytest.raises(ValueError):
        haproxy.render(plan, plan.of(BIRD)[0], Layout(tmp_path))


def test_socket_path_too_long() -> None:
    plan = _plan("ha")
    with pytest.raises(ValueError, match="too long"):
        haproxy.render(plan, plan.of(HAPROXY)[0], Layout(Path("/x" * 40)))


# --- stats parsing -----------------------------------------------------------------------------

STAT = """# pxname,svname,status,type,check_status,check_code,wretr,wredis,addr
contrail-api,FRONTEND,OPEN,0,,,,,
contrail-analytics-api,FRONTEND,OPEN,0,,,,,
contrail-api-backend,ctrl1-config-api-1,UP,2,L7OK,200,0,0,10.10.0.21:8082
contrail-api-backend,ctrl2-config-api-1,DOWN,2,L7STS,503,0,0,10.10.0.22:8082
contrail-api-backend,ctrl3-config-api-1,UP 1/2,2,L4CON,,1,1,10.10.0.23:8082
contrail-api-backend,BACKEND,UP,1,,,1,1,
contrail-analytics-api-backend,ctrl1-analytics-api-1,DOWN,2,L4CON,,0,0,10.10.0.21:8081
contrail-analytics-api-backend,ctrl2-analytics-api-1,MAINT,2,,,0,0,10.10.0.22:8081
contrail-analytics-api-backend,BACKEND,DOWN,1,,,0,0,
stats,FRONTEND,OPEN,0,,,,,
stats,BACKEND,UP,1,,,0,0,

"""


def test_parse_stat() -> None:
    rows = probe.parse_stat(STAT)
    bes = probe.backends(rows)
    api = bes["contrail-api-backend"]
    assert api["up"] == 2 and api["total"] == 3 and api["status"] == "UP"
    assert api["servers"]["ctrl2-config-api-1"]["status"] == "DOWN"
    assert api["servers"]["ctrl2-config-api-1"]["check_code"] == "503"
    assert bes["contrail-analytics-api-backend"]["up"] == 0
    assert bes["stats"]["total"] == 0
    assert probe.frontends(rows)["contrail-api"] == "OPEN"
    with pytest.raises(ValueError):
        probe.parse_stat("Unknown command\n")


@pytest.mark.parametrize(("status", "up"), [("UP", True), ("UP 1/2", True), ("DOWN", False),
                                             ("DOWN 1/2", False), ("MAINT", False), ("DRAIN", False),
                                             ("NOLB", False)])
def test_is_up(status: str, up: bool) -> None:
    assert probe.is_up(status) is up


def test_check_from_stats_names_the_empty_backend() -> None:
    c = probe._check_stats("lb1", probe.parse_stat(STAT), Path("/s"))
    assert not c.ok
    assert "contrail-analytics-api-backend: no server UP" in c.detail
    assert c.data["backends"]["contrail-api-backend"]["up"] == 2


def test_checks_without_haproxy(tmp_path: Path) -> None:
    plan = _plan("ha")
    layout = Layout(tmp_path)
    cs = probe.checks(plan, layout)
    assert [(c.component, c.target, c.ok) for c in cs] == [("haproxy", "lb1", False), ("haproxy", "lb2", False)]
    assert "stats socket" in cs[0].detail
    ok, why = probe.ready(plan, layout, plan.of(HAPROXY)[0])
    assert not ok and why
