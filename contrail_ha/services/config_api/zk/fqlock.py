"""The create lock of an fq_name: ``/fq-name-to-uuid/<obj_type>:<fq:name>`` (value: the uuid),
persistent, with the original's stale-lock rule.

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
from contrail_ha.services.config_api.zk.paths import fq_lock_path
from contrail_ha.services.config_api.zk.session import Session

if TYPE_CHECKING:
    from contrail_ha.services.config_api.zk.coordinator import Coordinator

log = logging.getLogger(__package__)  # the package's logger, as before the split into modules

STALE_LOCK_SECONDS = 5.0


async def create_fq_lock(zk: Coordinator, obj_type: str, fq_name: Sequence[str], uuid: str) -> bool:
    """Take the create lock of ``fq_name`` for ``uuid``. False when another uuid holds it (409),
    unless that lock is stale: its uuid is absent from the config DB and the znode is older
    than ``stale_lock_seconds`` - then it is replaced (atomically) and this call wins."""
    path = zk.path(fq_lock_path(obj_type, fq_name))
    for _ in range(5):
        holder = await asyncio.to_thread(_take, zk, path, uuid)
        if holder is None:
            return True
        held_by, stat = holder
        age = time.time() - stat.ctime / 1000.0
        if age <= zk.stale_lock_seconds or await _exists(zk.stale_check, held_by):
            return False
        if await asyncio.to_thread(zk.replace, path, stat.version, uuid.encode()):
            log.warning("replaced stale fq-name lock %s (uuid %s, %.1fs old, not in the config DB) for %s",
                        path, held_by, age, uuid)
            return True
    return False


def _take(zk: Session, path: str, uuid: str) -> tuple[str, ZnodeStat] | None:
    """None when we hold the lock, else (holder, stat)."""
    for _ in range(10):
        if zk.create_unique(path, uuid.encode()):
            return None
        found = zk.get(path)
        if found is None:
            continue  # deleted meanwhile
        holder = found[0].decode()
        if holder == uuid:
            return None
        return holder, found[1]
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
        if found is None or found[0].decode() != uuid:
            return False
        return zk.delete(path, version=found[1].version)

    return await asyncio.to_thread(release)


async def read_fq_lock(zk: Session, obj_type: str, fq_name: Sequence[str]) -> str | None:
    """The uuid holding the lock of ``fq_name``, or None."""
    found = await asyncio.to_thread(zk.get, zk.path(fq_lock_path(obj_type, fq_name)))
    return None if found is None else found[0].decode()
