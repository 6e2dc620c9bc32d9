"""The create lock of an fq_name: ``/fq-name-to-uuid/<obj_type>:<fq:name>`` (value: the uuid,
``<uuid>@<fence>`` when the create has a fence timestamp), persistent, with the original's
stale-lock rule made safe against paused creators: a lock whose create is judged dead is taken
over only after that create is revoked (its fence's tombstones), so its commit can never land
beside the new holder's.

Functions of a :class:`~contrail_ha.services.config_api.zk.coordinator.Coordinator` (which
holds the rule's settings, ``stale_lock_seconds`` and ``stale_check``); its ``create_fq_lock``,
``delete_fq_lock`` and ``read_fq_lock`` call them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kazoo.protocol.states import ZnodeStat

from contrail_ha.services.config_api.objects import Unavailable
from contrail_ha.services.config_api.rows import LINK_STALE_S
from contrail_ha.services.config_api.zk.paths import fq_lock_path
from contrail_ha.services.config_api.zk.session import Session

if TYPE_CHECKING:
    from contrail_ha.services.config_api.zk.coordinator import Coordinator

log = logging.getLogger(__package__)  # the package's logger, as before the split into modules

STALE_LOCK_SECONDS = LINK_STALE_S  # a create holding it may acknowledge until then


def lock_value(uuid: str, fence_ts: int | None) -> bytes:
    return (uuid if fence_ts is None else f"{uuid}@{fence_ts}").encode()


def parse_lock(value: bytes) -> tuple[str, int | None]:
    """``(uuid, fence)`` of a lock's value (fence None: a lock written without one)."""
    text = value.decode()
    uuid, _, fence = text.partition("@")
    return uuid, int(fence) if fence.isdigit() else None


async def create_fq_lock(zk: Coordinator, obj_type: str, fq_name: Sequence[str], uuid: str,
                         fence_ts: int | None = None) -> bool:
    """Take the create lock of ``fq_name`` for ``uuid`` (whose create writes at ``fence_ts``).
    False when another uuid holds it (409), unless that lock is stale: its uuid is absent from
    the config DB and it is older than ``stale_lock_seconds`` (by its fence, else the znode's
    ctime). A stale holder with a fence is revoked first (``stale_check.revoke``), then the lock
    is replaced (atomically, by version) and this call wins. Held already by ``uuid`` (a retry of
    one request): the lock takes the new fence."""
    path = zk.path(fq_lock_path(obj_type, fq_name))
    for _ in range(5):
        holder = await asyncio.to_thread(_take, zk, path, uuid, fence_ts)
        if holder is None:
            return True
        held_by, held_fence, stat = holder
        born = held_fence / 1e6 if held_fence is not None else stat.ctime / 1000.0
        age = time.time() - born
        if age <= zk.stale_lock_seconds or await _exists(zk.stale_check, held_by):
            return False
        if held_fence is not None:
            revoke = getattr(zk.stale_check, "revoke", None)
            if revoke is None:
                return False  # cannot fence the holder: never stale
            if await revoke(obj_type, held_by, list(fq_name), held_fence) is False:
                return False  # its create landed after all: the holder exists
        if await asyncio.to_thread(zk.replace, path, stat.version, lock_value(uuid, fence_ts)):
            log.warning("replaced stale fq-name lock %s (uuid %s, %.1fs old, not in the config DB) for %s",
                        path, held_by, age, uuid)
            return True
    return False


def _take(zk: Session, path: str, uuid: str, fence_ts: int | None) -> tuple[str, int | None, ZnodeStat] | None:
    """None when we hold the lock, else (holder, its fence, stat)."""
    for _ in range(10):
        if zk.create_unique(path, lock_value(uuid, fence_ts)):
            return None
        found = zk.get(path)
        if found is None:
            continue  # deleted meanwhile
        holder, fence = parse_lock(found[0])
        if holder != uuid:
            return holder, fence, found[1]
        if fence_ts is None or fence == fence_ts or zk.replace(path, found[1].version, lock_value(uuid, fence_ts)):
            return None
        # changed meanwhile: read it again
    raise Unavailable(f"fq-name lock {path} keeps changing")


async def _exists(check: Any, uuid: str) -> bool:
    """What ``stale_check`` (an object with ``exists(uuid)`` or a callable, sync or async) says of
    ``uuid``; True without a check (a held lock is then never stale)."""
    if check is None:
        return True
    r = check.exists(uuid) if hasattr(check, "exists") else check(uuid)
    if inspect.isawaitable(r):
        r = await r
    return bool(r)


async def delete_fq_lock(zk: Session, obj_type: str, fq_name: Sequence[str], uuid: str | None = None) -> bool:
    """Release the lock (only if ``uuid`` holds it, when given). False if it was not there."""
    path = zk.path(fq_lock_path(obj_type, fq_name))
    if uuid is None:
        return await asyncio.to_thread(zk.delete, path)

    def release() -> bool:
        found = zk.get(path)
        if found is None or parse_lock(found[0])[0] != uuid:
            return False
        return zk.delete(path, version=found[1].version)

    return await asyncio.to_thread(release)


async def read_fq_lock(zk: Session, obj_type: str, fq_name: Sequence[str]) -> str | None:
    """The uuid holding the lock of ``fq_name``, or None."""
    found = await asyncio.to_thread(zk.get, zk.path(fq_lock_path(obj_type, fq_name)))
    return None if found is None else parse_lock(found[0])[0]
