"""contrail-api's action endpoints that are not object CRUD: names and ids, useragent-kv, perms,
aaa-mode, the virtual-network IP actions.

Every parameter goes through the typed helpers of ``inputs`` before it reaches the store or
ZooKeeper (a uuid is a UUID string, lists and strings are bounded: docs/api-limits.md), so that
no input fails after the first write.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any

from contrail_ha.services.config_api.core import ApiCore, default_perms2
from contrail_ha.services.config_api.inputs import (
    MAX_IDS,
    fq_name_param,
    int_param,
    object_body,
    show,
    str_param,
    uuid_param,
)
from contrail_ha.services.config_api.objects import NotFound, Obj
from contrail_ha.services.config_api.schema import canonical
from contrail_ha.services.config_api.validation import (
    MAX_SHARES,
    FieldError,
    check_share_tenant,
)

log = logging.getLogger(__name__)

# useragent-kv keys: at most this many characters (the key is a Cassandra partition key, 64 KiB max).
MAX_KV_KEY = 1024
# Keys of the useragent table the API keeps for itself; a client can neither read nor write them.
RESERVED_KV_PREFIX = "__contrail_ha__:"
AAA_MODE_KEY = RESERVED_KV_PREFIX + "aaa-mode"
AAA_MODES = ("no-auth", "cloud-admin", "rbac")
MAX_IP_ALLOC = 1000  # addresses in one ip-alloc (each is one ZooKeeper create)
_OWNER = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def kv_key(value: Any) -> str:
    """A useragent-kv key: a non-empty string of at most ``MAX_KV_KEY`` characters, not reserved."""
    key = str_param(value, "key", MAX_KV_KEY)
    if not key:
        raise FieldError("key", "must not be empty")
    if key.startswith(RESERVED_KV_PREFIX):
        raise FieldError("key", f"keys starting with {RESERVED_KV_PREFIX!r} are reserved")
    return key


def owner_param(value: Any, field: str = "owner") -> str:
    """A perms2 owner: a project uuid, with or without dashes (R2005 refuses anything else)."""
    if not isinstance(value, str) or not _OWNER.fullmatch(value):
        raise FieldError(field, f"expected a project uuid, got {show(value)}")
    return value


def access_param(value: Any, field: str) -> int:
    """An access mask 0-7 (an integer, not a bool)."""
    return int_param(value, field, 0, 7)


def share_param(value: Any) -> list[dict[str, Any]]:
    """chmod's ``share``: at most ``MAX_SHARES`` ``{"tenant": "[tenant:|domain:]<id>", "tenant_access": 0-7}``."""
    if not isinstance(value, list):
        raise FieldError("share", f"expected a list of {{tenant, tenant_access}}, got {show(value)}")
    if len(value) > MAX_SHARES:
        raise FieldError("share", f"{len(value)} entries, at most {MAX_SHARES} are allowed")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise FieldError(f"share[{i}]", f"expected {{tenant, tenant_access}}, got {show(item)}")
        extra = set(item) - {"tenant", "tenant_access"}
        if extra:
            raise FieldError(f"share[{i}].{sorted(extra)[0]}", "unknown field of ShareType")
        check_share_tenant(item.get("tenant"), f"share[{i}].tenant")
        out.append({"tenant": item["tenant"],
                    "tenant_access": access_param(item.get("tenant_access"), f"share[{i}].tenant_access")})
    return out


def cidr_param(value: Any, field: str) -> str:
    """A subnet ``a.b.c.d/len`` (or IPv6) in canonical form."""
    try:
        return str(ipaddress.ip_network(str_param(value, field, 64), strict=False))
    except ValueError:
        raise FieldError(field, f"{show(value)} is not a subnet (prefix/length)") from None


def address_param(value: Any, field: str) -> str:
    """One IP address."""
    try:
        return str(ipaddress.ip_address(str_param(value, field, 64)))
    except ValueError:
        raise FieldError(field, f"{show(value)} is not an IP address") from None


def bounded_list(value: Any, field: str, what: str, limit: int = MAX_IDS) -> list[Any]:
    if not isinstance(value, list):
        raise FieldError(field, f"expected a list of {what}, got {show(value)}")
    if len(value) > limit:
        raise FieldError(field, f"{len(value)} entries, at most {limit} are allowed per request")
    return value


class Actions(ApiCore):
    """The action endpoints over parsed bodies."""

    async def fqname_to_id(self, body: Any) -> Obj:
        body = object_body(body, "type and fq_name")
        rt = self.rtype(str_param(body.get("type") or "", "type", 128))
        fq = fq_name_param(body.get("fq_name"), "fq_name")
        u = await self.store.fq_name_to_uuid(rt.object_type, fq)
        if u is None:
            raise NotFound(f"Name {fq} not found")
        return {"uuid": u}

    async def id_to_fqname(self, body: Any) -> Obj:
        body = object_body(body, "uuid")
        u = uuid_param(body.get("uuid"), "uuid")
        found = await self.store.uuid_to_fq_name(u)
        if found is None:
            raise NotFound(f"UUID {u} not found")
        return {"fq_name": found[0], "type": canonical(found[1])}

    async def kv(self, body: Any) -> Obj | None:
        """useragent-kv: the answer of a RETRIEVE; None (an empty answer) for STORE and DELETE."""
        body = object_body(body, "operation and key")
        op = body.get("operation")
        if op == "STORE":
            key = kv_key(body.get("key"))
            await self.require_writable()
            await self.store.kv_store(key, body.get("value"))
            return None
        if op == "RETRIEVE":
            if body.get("key") is None:
                rows = await self.store.kv_all()
                return {"value": [r for r in rows if not str(r.get("key")).startswith(RESERVED_KV_PREFIX)]}
            key = kv_key(body.get("key"))
            value = await self.store.kv_retrieve(key)
            if value is None:
                raise NotFound(f"Unknown key {key}")
            return {"value": value}
        if op == "DELETE":
            key = kv_key(body.get("key"))
            await self.require_writable()
            await self.store.kv_delete(key)
            return None
        raise FieldError("operation", f"must be STORE, RETRIEVE or DELETE, got {show(op)}")

    def obj_perms(self) -> Obj:
        return {"token_info": None, "is_cloud_admin_role": True,
                "is_global_read_only_role": False, "permissions": "RWX"}

    async def _perms_update(self, body: Any, fn: Callable[[Obj, Obj], None]) -> Obj:
        """Validate everything (``fn`` raises FieldError) before the one write of the new perms2."""
        body = object_body(body, "uuid")
        u = uuid_param(body.get("uuid"), "uuid")
        rt, obj = await self.lookup_any(u)
        perms2 = dict(obj.get("perms2") or default_perms2())
        fn(body, perms2)
        await self.require_writable()
        await self.store.update(obj["uuid"], {"perms2": perms2}, None)
        await self.changed("UPDATE", rt.object_type, obj["uuid"], obj["fq_name"], new={"perms2": perms2})
        return {}

    async def chown(self, body: Any) -> Obj:
        def apply(body: Obj, perms2: Obj) -> None:
            perms2["owner"] = owner_param(body.get("owner")).replace("-", "")
        return await self._perms_update(body, apply)

    async def chmod(self, body: Any) -> Obj:
        def apply(body: Obj, perms2: Obj) -> None:
            new: Obj = {}
            if body.get("owner") is not None:
                new["owner"] = owner_param(body["owner"])
            for k in ("owner_access", "global_access"):
                if body.get(k) is not None:
                    new[k] = access_param(body[k], k)
            if body.get("share") is not None:
                new["share"] = share_param(body["share"])
            perms2.update(new)
        return await self._perms_update(body, apply)

    async def _aaa_mode(self) -> str:
        """The cluster's aaa-mode: read fresh (QUORUM) from the useragent table, so every replica
        answers what the last PUT on any replica stored; the default until one is stored."""
        stored = await self.store.kv_retrieve(AAA_MODE_KEY)
        return stored if stored in AAA_MODES else self.aaa_mode

    async def get_aaa_mode(self) -> Obj:
        return {"aaa-mode": await self._aaa_mode()}

    async def set_aaa_mode(self, body: Any) -> Obj:
        body = object_body(body, "aaa-mode")
        mode = body.get("aaa-mode")
        if not isinstance(mode, str) or mode not in AAA_MODES:
            raise FieldError("aaa-mode", f"must be no-auth, cloud-admin or rbac, got {show(mode)}")
        await self.require_writable()
        await self.store.kv_store(AAA_MODE_KEY, mode)
        return {"aaa-mode": mode}

    async def virtual_network(self, u: str) -> Obj:
        """The virtual-network of an IP action's path (404 for anything but one's uuid)."""
        try:
            u = uuid_param(u, "uuid")
        except FieldError:
            raise NotFound(f"virtual-network {show(u)} not found") from None
        return await self.lookup(self.schema["virtual-network"], u)

    async def ip_alloc(self, vn: Obj, body: Any) -> Obj:
        body = object_body(body or {}, "count, subnet, family")
        count = body.get("count", 1)
        count = 1 if count is None else int_param(count, "count", 1, MAX_IP_ALLOC)
        family = body.get("family")
        if family is not None and family not in ("v4", "v6"):
            raise FieldError("family", f"must be v4 or v6, got {show(family)}")
        subnet = body.get("subnet")
        subnet = None if subnet is None or subnet == "" else str_param(subnet, "subnet", 255)
        await self.require_writable()
        owner = f"ip-alloc:{vn['uuid']}"
        out = []
        for _ in range(count):
            addr, _s = await self.ipam.allocate(vn, owner, family=family, subnet_uuid=subnet)
            out.append(addr)
        return {"ip_addr": out}

    async def ip_free(self, vn: Obj, body: Any) -> None:
        body = object_body(body or {}, "ip_addr")
        raw = bounded_list(body.get("ip_addr"), "ip_addr", "addresses")
        addrs = [address_param(a, f"ip_addr[{i}]") for i, a in enumerate(raw)]
        await self.require_writable()
        for a in addrs:
            await self.ipam.free(vn, a)

    async def subnet_ip_count(self, vn: Obj, body: Any) -> Obj:
        body = object_body(body or {}, "subnet_list")
        raw = bounded_list(body.get("subnet_list"), "subnet_list", "subnets")
        cidrs = [cidr_param(c, f"subnet_list[{i}]") for i, c in enumerate(raw)]
        return {"ip_count_list": [await self.ipam.count(vn, c) for c in cidrs]}
