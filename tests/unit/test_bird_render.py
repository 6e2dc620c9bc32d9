"""bird.conf rendering (lbs and router) validated by the real ``bird -p``; birdc output parsing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from contrail_ha.probes import bird as probe
from contrail_ha.rendering import bird
from contrail_ha.rendering.base import Layout, Rendered
from contrail_ha.topology.model import Lb, LbProtocol, Topology
from contrail_ha.topology.plan import BIRD, HAPROXY, Plan
from contrail_ha.topology.validate import load_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["ha", "split", "colocated-lb", "all-in-one"]


def _plan(name: str) -> Plan:
    return load_topology(EXAMPLES / f"{name}.yaml").plan()


def _variant(plan: Plan, **lb: object) -> Plan:
    return Plan(plan.topology.model_copy(update={"lb": plan.topology.lb.model_copy(update=lb)}))


def _write(r: Rendered) -> list[Path]:
    for path, text in r.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(r.files)


def _all(plan: Plan, layout: Layout, ecmp: bool = False) -> list[Rendered]:
    return [*(bird.render(plan, i, layout) for i in plan.of(BIRD)), bird.render_router(plan, layout, ecmp=ecmp)]


def _assert_valid(rs: list[Rendered]) -> None:
    for r in rs:
        for path in _write(r):
            ok, out = bird.check_config(path)
            assert ok, f"{path}: {out}\n{path.read_text()}"


@pytest.mark.parametrize("name", NAMES)
def test_every_config_passes_bird_parser(name: str, tmp_path: Path) -> None:
    plan = _plan(name)
    rs = _all(plan, Layout(tmp_path / "ab"))
    assert len(rs) == len(plan.lbs) + 1
    _assert_valid(rs)
    if plan.topology.lb.protocol == LbProtocol.BGP:
        _assert_valid([bird.render_router(plan, Layout(tmp_path / "ecmp"), ecmp=True)])


@pytest.mark.parametrize("name", NAMES)
def test_the_other_protocol_passes_too(name: str, tmp_path: Path) -> None:
    plan = _plan(name)
    other = LbProtocol.BABEL if plan.topology.lb.protocol == LbProtocol.BGP else LbProtocol.BGP
    _assert_valid(_all(_variant(plan, protocol=other), Layout(tmp_path)))


@pytest.mark.parametrize("name", ["ha", "colocated-lb"])
def test_bgp_structure(name: str, tmp_path: Path) -> None:
    plan = _plan(name)
    lb = plan.topology.lb
    assert lb.protocol == LbProtocol.BGP
    layout = Layout(tmp_path)
    vip = f"{plan.vip}/32"
    for inst in plan.of(BIRD):
        r = bird.render(plan, inst, layout)
        conf = r.files[bird.config_path(layout, inst.host.name)]
        assert f"router id {inst.ip};" in conf
        assert 'interface "lo";' in conf and f"import where net = {vip};" in conf
        assert "protocol bgp uplink {" in conf
        assert f"local {inst.ip} as {lb.lb_asn};" in conf
        assert f"neighbor {plan.router_ip} as {lb.router_asn};" in conf
        assert "bfd on;" in conf and "error wait time 1, 5;" in conf
        assert "hold time 3;" in conf and "keepalive time 1;" in conf
        assert f"interval {lb.bfd_interval_ms} ms;" in conf and f"multiplier {lb.bfd_multiplier};" in conf
        assert f"export where net = {vip} && source = RTS_DEVICE;" in conf
        assert "babel" not in conf
        [spec] = r.processes
        assert spec.name == "bird"
        run = layout.run(inst.host.name, "bird")
        assert spec.argv == ["bird", "-f", "-c", str(bird.config_path(layout, inst.host.name)),
                             "-s", str(run / "bird.sock"), "-P", str(run / "bird.pid"), "-g", "10001"]
        assert spec.stop_signal == signal.SIGTERM

    r = bird.render_router(plan, layout)
    conf = r.files[layout.router_dir / "bird.conf"]
    assert f"router id {plan.router_ip};" in conf
    assert f"local {plan.router_ip} as {lb.router_asn};" in conf
    for h in plan.lbs:
        assert f"protocol bgp {bird.router_bgp_proto(h)} from lb {{" in conf
        assert f"neighbor {h.ip} as {lb.lb_asn};" in conf
    assert "protocol kernel {" in conf and f"export where net = {vip};" in conf
    assert "prefer older on;" in conf and "merge paths" not in conf
    assert 'interface "eth0"' in conf
    [spec] = r.processes
    assert spec.argv == ["bird", "-f", "-c", str(layout.router_dir / "bird.conf"),
                         "-s", str(layout.router_dir / "bird.sock"), "-P", str(layout.router_dir / "bird.pid")]

    ecmp = bird.render_router(plan, layout, ecmp=True).files[layout.router_dir / "bird.conf"]
    assert "merge paths on;" in ecmp and "prefer older" not in ecmp


def test_babel_structure(tmp_path: Path) -> None:
    plan = _plan("split")
    lb = plan.topology.lb
    assert lb.protocol == LbProtocol.BABEL
    layout = Layout(tmp_path)
    for inst in plan.of(BIRD):
        conf = bird.render(plan, inst, layout).files[bird.config_path(layout, inst.host.name)]
        assert "protocol babel uplink {" in conf
        assert f"hello interval {lb.babel_hello_ms} ms;" in conf
        assert f"update interval {lb.babel_update_ms} ms;" in conf
        assert 'interface "eth0" {' in conf and "type wired;" in conf
        assert f"next hop ipv4 {inst.ip};" in conf
        assert "randomize router id yes;" in conf
        assert "bfd" not in conf and "protocol bgp" not in conf
    conf = bird.render_router(plan, layout).files[layout.router_dir / "bird.conf"]
    assert "protocol babel lbs {" in conf and f"import where net = {plan.vip}/32;" in conf
    assert "protocol kernel {" in conf
    assert "bfd" not in conf and "protocol bgp" not in conf
    with pytest.raises(ValueError, match="ECMP"):
        bird.render_router(plan, layout, ecmp=True)


def test_timers_follow_the_topology(tmp_path: Path) -> None:
    plan = _variant(_plan("ha"), bfd_interval_ms=50, bfd_multiplier=5, router_asn=65000, lb_asn=4200000001)
    layout = Layout(tmp_path / "bgp")
    rs = _all(plan, layout)
    lb_conf = next(iter(rs[0].files.values()))
    assert "interval 50 ms;" in lb_conf and "multiplier 5;" in lb_conf
    assert "as 4200000001;" in lb_conf and "as 65000;" in lb_conf
    _assert_valid(rs)
    babel = _variant(_plan("split"), babel_hello_ms=1000, babel_update_ms=4000)
    rs = _all(babel, Layout(tmp_path / "babel"))
    assert "hello interval 1000 ms;" in next(iter(rs[0].files.values()))
    _assert_valid(rs)


def test_dashed_host_names(tmp_path: Path) -> None:
    data = _plan("ha").topology.model_dump(mode="json")
    data["hosts"][0]["name"] = "lb-a"
    data["hosts"][1]["name"] = "lb-b"
    plan = Plan(Topology.model_validate(data))
    rs = _all(plan, Layout(tmp_path))
    router = next(iter(rs[-1].files.values()))
    assert "protocol bgp lb_lb_a from lb {" in router
    _assert_valid(rs)


def test_checker_rejects_babel_bfd(tmp_path: Path) -> None:
    plan = _plan("split")
    [path] = _write(bird.render(plan, plan.of(BIRD)[0], Layout(tmp_path)))
    path.write_text(path.read_text().replace("type wired;", "type wired;\n    bfd yes;"))
    ok, out = bird.check_config(path)
    assert not ok and "syntax error" in out


def test_render_refuses_other_components(tmp_path: Path) -> None:
    plan = _plan("ha")
    with pytest.raises(ValueError):
        bird.render(plan, plan.of(HAPROXY)[0], Layout(tmp_path))


# --- birdc output parsing (captured from BIRD 2.0.12) -----------------------------------------

PROTOCOLS = """\
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     04:21:51.018

lb_lb1     BGP        ---        up     04:21:51.959  Established
  BGP state:          Established
    Neighbor address: 10.10.0.11
    Neighbor AS:      64513
    Local AS:         64512
    Neighbor ID:      10.10.0.11
    Session:          external AS4
    Source address:   10.10.0.1
    Hold timer:       1.634/3
    Keepalive timer:  0.295/1
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     100
    Input filter:   (unnamed)
    Output filter:  REJECT
    Routes:         1 imported, 0 exported, 1 preferred

lb_lb2     BGP        ---        start  04:21:51.018  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.10.0.12
    Neighbor AS:      64513
    Local AS:         64512
    Connect delay:    3.923/5
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
    Table:          master4
"""

ROUTES = """\
Table master4:
10.10.100.10/32      unicast [lb_lb2 04:22:15.562] * (100) [AS64513i]
\tvia 10.10.0.12 on eth0
\tType: BGP univ
\tBGP.origin: IGP
                     unicast [lb_lb1 04:22:16.001] (100) [AS64513i]
\tvia 10.10.0.11 on eth0
\tType: BGP univ
"""

BABEL_NEIGHBORS = """\
uplink:
IP address                Interface  Metric Routes Hellos Expires
fe80::a8c1:abff:fe10:2    eth0           96      0     16   0.142
fe80::a8c1:abff:fe10:3    eth0        65535      1      2   0.010
"""

BFD_SESSIONS = """\
bfd_lbs:
IP address                Interface  State      Since         Interval  Timeout
10.10.0.1                 eth0       Up         04:21:51.959    0.100    0.300
"""


def test_parse_protocols() -> None:
    protos = probe.parse_protocols(PROTOCOLS)
    assert set(protos) == {"device1", "lb_lb1", "lb_lb2"}
    assert probe.bgp_state(protos["lb_lb1"]) == "Established"
    assert protos["lb_lb1"]["details"]["Neighbor address"] == "10.10.0.11"
    assert probe.bgp_state(protos["lb_lb2"]) == "Active"
    assert protos["lb_lb2"]["details"]["Last error"] == "Socket: Connection refused"
    assert protos["lb_lb2"]["info"].startswith("Active")


def test_parse_routes() -> None:
    routes = probe.parse_routes(ROUTES)
    assert [(r["proto"], r["primary"], r["via"][0]["address"]) for r in routes] == [
        ("lb_lb2", True, "10.10.0.12"), ("lb_lb1", False, "10.10.0.11")]
    assert all(r["net"] == "10.10.100.10/32" for r in routes)
    assert probe.parse_routes("Network not found") == []


def test_parse_babel_and_bfd() -> None:
    ns = probe.parse_babel_neighbors(BABEL_NEIGHBORS)
    assert [(n["address"], n["metric"]) for n in ns] == [("fe80::a8c1:abff:fe10:2", 96),
                                                        ("fe80::a8c1:abff:fe10:3", 65535)]
    [s] = probe.parse_bfd_sessions(BFD_SESSIONS)
    assert s["state"] == "Up" and s["address"] == "10.10.0.1"


@pytest.mark.parametrize("name", ["ha", "split"])
def test_checks_without_bird(name: str, tmp_path: Path) -> None:
    plan = _plan(name)
    cs = probe.checks(plan, Layout(tmp_path))
    assert [(c.component, c.target) for c in cs] == [
        *(("bird", h.name) for h in plan.lbs), ("bird", "router"), ("vip", "cluster")]
    assert not any(c.ok for c in cs)
    assert "not answering" in cs[0].detail
    ok, why = probe.ready(plan, Layout(tmp_path), plan.of(BIRD)[0])
    assert not ok and why
    assert not probe.router_ready(plan, Layout(tmp_path))[0]


def test_lb_model_defaults_are_what_the_docs_say() -> None:
    lb = Lb()
    assert (lb.bfd_interval_ms, lb.bfd_multiplier, lb.babel_hello_ms, lb.babel_update_ms) == (100, 3, 50, 200)


def test_only_the_router_runs_realtime(tmp_path: Path) -> None:
    """The router stands in for the fabric and must not wait behind the hosts' CPUs; an lb's BIRD is a
    host's process like any other."""
    plan, layout = _plan("ha"), Layout(tmp_path)
    (router,) = bird.render_router(plan, layout).processes
    assert router.realtime_priority == bird.ROUTER_RT_PRIORITY > 0
    assert all(p.realtime_priority == 0 for i in plan.of(BIRD) for p in bird.render(plan, i, layout).processes)


def test_the_lb_birds_socket_group_is_the_images_user() -> None:
    """The node agent (the image's user, in its own container) reads the lb BIRD's control socket."""
    from contrail_ha.runtime import ownership

    assert bird.SOCKET_GROUP == ownership.GID
