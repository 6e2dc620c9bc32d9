"""Tags and tag-types as R2005 through the VIP with the real vnc_api client, and concurrent creates
of one new tag type on every replica: one tag-type, distinct tag ids, ZooKeeper ids freed on delete."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Cluster, vnc_client

TAG_ID = re.compile(r"^0x[0-9a-f]{8}$")
TYPE_ID = re.compile(r"^0x[0-9a-f]{4}$")


def vnc(cluster: Cluster):
    return vnc_client(cluster)


def api_url(cluster: Cluster) -> str:
    return cluster.api


@pytest.fixture(scope="module")
def zk(cluster: Cluster) -> Iterator[object]:
    """A ZooKeeper client on the controllers (read-only use: where the ids are held), with the
    replicas' digest identity (their znodes are theirs only)."""
    from kazoo.client import KazooClient

    from contrail_ha.rendering import zookeeper

    hosts = ",".join(f"{i.address.split(':')[0]}:2181" for i in cluster.plan.of("config-api"))
    secret = zookeeper.password(cluster.layout, zookeeper.API_USER)
    k = KazooClient(hosts=hosts, auth_data=[("digest", f"{zookeeper.API_USER}:{secret}")])
    k.start(timeout=15)
    yield k
    k.stop()
    k.close()


def zk_value(zk: object, path: str) -> str | None:
    got = zk.exists(path)  # type: ignore[attr-defined]
    return zk.get(path)[0].decode() if got else None  # type: ignore[attr-defined]


def type_node(cluster: Cluster, type_id: str) -> str:
    return f"/{cluster.plan.cluster_id}/id/tags/types/{int(type_id, 16):010d}"


def value_node(cluster: Cluster, type_name: str, tag_id: str) -> str:
    return f"/{cluster.plan.cluster_id}/id/tags/values/{type_name}/{int(tag_id, 16) & 0xFFFF:010d}"


def test_predefined_tag_types_have_the_original_ids(cluster: Cluster) -> None:
    api = vnc(cluster)
    for name, type_id in {"label": 0, "application": 1, "tier": 2, "deployment": 3, "site": 4,
                          "neutron_fwaas": 5}.items():
        tt = api.tag_type_read(fq_name=[name])
        assert tt.get_tag_type_id() == f"0x{type_id:04x}"


def test_tag_crud_with_vnc_api(cluster: Cluster, zk: object) -> None:
    from vnc_api.exceptions import BadRequest, NoIdError, RefsExistError
    from vnc_api.vnc_api import Project, Tag

    api = vnc(cluster)
    suffix = uuid.uuid4().hex[:8]
    type_name = f"e2e-{suffix}"
    project = Project(f"tags-{suffix}")
    api.project_create(project)

    # global: the name is <type>=<value> (type lower-cased) whatever the client named it
    tag = Tag(name="default-tag", tag_type_name=f"E2E-{suffix}", tag_value="Blue")
    tag_uuid = api.tag_create(tag)
    got = api.tag_read(id=tag_uuid)
    assert got.fq_name == [f"{type_name}=Blue"] and got.name == f"{type_name}=Blue"
    assert got.display_name == f"{type_name}=Blue" and got.get_tag_type_name() == type_name
    assert got.get_tag_value() == "Blue"
    assert TAG_ID.match(got.get_tag_id()), got.get_tag_id()
    refs = got.get_tag_type_refs()
    assert len(refs) == 1 and refs[0]["to"] == [type_name]

    # its tag-type was made by the create: hidden, a ZooKeeper id (>= 255) in the tag id's high 16 bits
    tt = api.tag_type_read(id=refs[0]["uuid"])
    assert tt.fq_name == [type_name] and TYPE_ID.match(tt.get_tag_type_id())
    assert tt.get_id_perms().get_user_visible() is False
    type_id = int(tt.get_tag_type_id(), 16)
    assert type_id >= 255 and int(got.get_tag_id(), 16) >> 16 == type_id
    assert zk_value(zk, type_node(cluster, tt.get_tag_type_id())) == type_name
    assert zk_value(zk, value_node(cluster, type_name, got.get_tag_id())) == f"{type_name}=Blue"

    # under a project: [domain, project, name], same tag-type, another value id
    scoped = Tag(tag_type_name=type_name, tag_value="Blue", parent_obj=project)
    scoped_uuid = api.tag_create(scoped)
    sgot = api.tag_read(id=scoped_uuid)
    assert sgot.fq_name == ["default-domain", project.name, f"{type_name}=Blue"]
    assert sgot.get_tag_type_refs()[0]["uuid"] == refs[0]["uuid"]
    assert sgot.get_tag_id() != got.get_tag_id() and int(sgot.get_tag_id(), 16) >> 16 == type_id
    with pytest.raises(RefsExistError):  # one tag per fq_name
        api.tag_create(Tag(tag_type_name=type_name, tag_value="Blue"))

    # type, value, id and tag-type ref are fixed; other fields may change
    for change in (lambda t: t.set_tag_value("Red"), lambda t: t.set_tag_type_name("other"),
                   lambda t: t.set_tag_id("0xdeadbeef")):
        t = api.tag_read(id=tag_uuid)
        change(t)
        with pytest.raises(BadRequest):
            api.tag_update(t)
    t = api.tag_read(id=tag_uuid)
    t.set_tag_type_list([])
    with pytest.raises(BadRequest):
        api.tag_update(t)
    t = api.tag_read(id=tag_uuid)
    tt_obj = api.tag_type_read(id=refs[0]["uuid"])
    tt_obj.set_tag_type_id("0xbeef")
    with pytest.raises(BadRequest):
        api.tag_type_update(tt_obj)
    from vnc_api.gen.resource_xsd import KeyValuePair, KeyValuePairs

    t.set_annotations(KeyValuePairs([KeyValuePair("k", "v")]))
    api.tag_update(t)
    assert api.tag_read(id=tag_uuid).get_tag_id() == got.get_tag_id()

    # a tag-type still referred: 409; the last tag's delete takes it along and frees every id
    with pytest.raises(RefsExistError):
        api.tag_type_delete(id=refs[0]["uuid"])
    api.tag_delete(id=tag_uuid)
    assert zk_value(zk, value_node(cluster, type_name, got.get_tag_id())) is None
    assert api.tag_type_read(id=refs[0]["uuid"]).uuid == refs[0]["uuid"]  # still used by the scoped tag
    api.tag_delete(id=scoped_uuid)
    with pytest.raises(NoIdError):
        api.tag_type_read(id=refs[0]["uuid"])
    assert zk_value(zk, type_node(cluster, tt.get_tag_type_id())) is None
    api.project_delete(id=project.uuid)


def test_tag_type_created_and_deleted_explicitly(cluster: Cluster, zk: object) -> None:
    from vnc_api.exceptions import BadRequest, NoIdError
    from vnc_api.vnc_api import TagType

    api = vnc(cluster)
    name = f"e2e-tt-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BadRequest):
        api.tag_type_create(TagType(name=name, tag_type_id="0xbeef"))
    u = api.tag_type_create(TagType(name=name))
    tt = api.tag_type_read(id=u)
    assert TYPE_ID.match(tt.get_tag_type_id()) and int(tt.get_tag_type_id(), 16) >= 255
    assert zk_value(zk, type_node(cluster, tt.get_tag_type_id())) == name
    api.tag_type_delete(id=u)
    with pytest.raises(NoIdError):
        api.tag_type_read(id=u)
    assert zk_value(zk, type_node(cluster, tt.get_tag_type_id())) is None


@pytest.mark.parametrize("body, field", [
    ({"tag_value": "v"}, "tag_type_name"),
    ({"tag_type_name": "e2e-missing"}, "tag_value"),
])
def test_missing_type_or_value_is_400(cluster: Cluster, body: dict, field: str) -> None:
    r = httpx.post(f"{api_url(cluster)}/tags", json={"tag": body}, timeout=10)
    assert r.status_code == 400 and field in r.text, r.text


def test_missing_fields_with_vnc_api(cluster: Cluster) -> None:
    from vnc_api.exceptions import BadRequest
    from vnc_api.vnc_api import Tag

    api = vnc(cluster)
    with pytest.raises(BadRequest, match="tag_type_name"):
        api.tag_create(Tag(tag_value="v"))
    with pytest.raises(BadRequest, match="tag_value"):
        api.tag_create(Tag(tag_type_name="e2e-missing"))
    with pytest.raises(BadRequest, match="tag_id"):
        api.tag_create(Tag(tag_type_name="e2e-missing", tag_value="v", tag_id="0x00ff0001"))


def test_concurrent_tags_of_a_new_type_on_every_replica(cluster: Cluster, zk: object) -> None:
    """Creates of one new type spread over the replicas at once: exactly one tag-type, distinct ids."""
    type_name = f"e2e-conc-{uuid.uuid4().hex[:8]}"
    replicas = [f"http://{i.address}" for i in cluster.plan.of("config-api")]
    n = 4 * len(replicas)

    async def create_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*(
                c.post(f"{replicas[i % len(replicas)]}/tags",
                       json={"tag": {"tag_type_name": type_name, "tag_value": f"v{i}"}})
                for i in range(n)))

    responses = asyncio.run(create_all())
    assert [r.status_code for r in responses] == [200] * n, [r.text for r in responses if r.status_code != 200]
    base = api_url(cluster)
    tags = [httpx.get(f"{base}/tag/{r.json()['tag']['uuid']}", timeout=10).json()["tag"] for r in responses]
    found = [t for t in httpx.get(f"{base}/tag-types", timeout=10).json()["tag-types"] if t["fq_name"] == [type_name]]
    assert len(found) == 1, found
    type_uuid = found[0]["uuid"]
    tt = httpx.get(f"{base}/tag-type/{type_uuid}", timeout=10).json()["tag-type"]
    type_id = int(tt["tag_type_id"], 16)
    assert {t["tag_type_refs"][0]["uuid"] for t in tags} == {type_uuid}
    ids = [t["tag_id"] for t in tags]
    assert all(TAG_ID.match(i) and int(i, 16) >> 16 == type_id for i in ids), ids
    assert len(set(ids)) == n, ids
    for t in tags:  # each value id is held in ZooKeeper by its own tag
        assert zk_value(zk, value_node(cluster, type_name, t["tag_id"])) == ":".join(t["fq_name"])
    for t in tags:
        r = httpx.delete(f"{base}/tag/{t['uuid']}", timeout=30)
        assert r.status_code == 200, r.text
    assert httpx.get(f"{base}/tag-type/{type_uuid}", timeout=10).status_code == 404
    assert zk_value(zk, type_node(cluster, tt["tag_type_id"])) is None
    assert all(zk_value(zk, value_node(cluster, type_name, i)) is None for i in ids)
