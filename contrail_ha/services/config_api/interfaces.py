"""What contrail-api's API layer uses of its three parts, as typing protocols.

:class:`~contrail_ha.services.config_api.core.ApiCore` holds a config store, a coordinator and a
notifier; its handlers (and the hooks, the listing, the actions, the defaults) call only the
methods below. The replica's parts satisfy them structurally: the config DB
(:class:`~contrail_ha.services.config_api.store.ConfigStore`), the ZooKeeper coordination
(:class:`~contrail_ha.services.config_api.zk.Coordinator`) and the RabbitMQ notifier
(:class:`~contrail_ha.services.config_api.notify.Notifier`); a test may give fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from contrail_ha.services.config_api.objects import Obj
from contrail_ha.services.config_api.rows import Fence, Links


class Closable(Protocol):
    """A part the replica closes at shutdown."""

    async def close(self) -> None: ...


class ConfigStoreAPI(Closable, Protocol):
    """The config DB (Cassandra): objects, names, elements, refs, the guarded delete, useragent key/value."""

    # --- reads ---------------------------------------------------------------------------------------
    async def read(self, uuid: str, *, fields: Sequence[str] | None = None) -> Obj | None:
        """The object with its children and back-refs (only ``fields`` and the envelope, when given)."""
        ...

    async def read_many(self, uuids: Sequence[str], fields: Sequence[str] | None = None) -> list[Obj | None]:
        """:meth:`read` of each uuid, aligned with ``uuids``."""
        ...

    async def read_row(self, uuid: str) -> tuple[Obj, Links] | None:
        """The object's own fields and raw link columns, read now (what a delete decides on)."""
        ...

    async def read_elements(self, uuid: str, name: str) -> list[tuple[str, Any]] | None:
        """``(position or key, element)`` of a list or map property, in order."""
        ...

    async def uuid_to_fq_name(self, uuid: str) -> tuple[list[str], str] | None:
        """``(fq_name, object type)`` of a uuid, or None (cached)."""
        ...

    async def fq_name_to_uuid(self, obj_type: str, fq_name: Sequence[str]) -> str | None:
        """The uuid of an object by type and fq_name, or None."""
        ...

    async def visible(self, uuids: Sequence[str]) -> dict[str, tuple[list[str], str]]:
        """``(fq_name, type)`` of those uuids whose object exists now (no cache)."""
        ...

    # --- writes ----------------------------------------------------------------------------------------
    create_deadline: float
    link_stale: float

    def claim_is_live(self, writetime_us: int | None) -> bool:
        """Whether a claim written then may belong to a create that can still acknowledge."""
        ...

    async def create(self, obj: Obj, fence: Fence | None = None) -> None:
        """Write a new object (after claiming the rows it points to), every column at the fence."""
        ...

    async def revoke(self, obj_type: str, uuid: str, fq_name: Sequence[str] | None, claim_ts: int) -> bool:
        """Shadow a create judged dead (tombstones just after its claim); False if it is visible now."""
        ...

    async def commit_time(self, uuid: str) -> int | None:
        """The write time of an object's ``type`` column (its create's fence), or None."""
        ...

    async def update(self, uuid: str, changes: Obj, refs: dict[str, list[Obj]] | None = None, *,
                     modified: str | None = None) -> None:
        """Set props (None deletes one) and replace whole ref lists."""
        ...

    async def update_elements(self, uuid: str, changes: Sequence[tuple[str, str, Any]], *,
                              shells: Obj | None = None, modified: str | None = None) -> None:
        """Set (value) or delete (value None) single elements ``(property, position or key, value)``."""
        ...

    async def ref_update(self, uuid: str, ref_type: str, ref_uuid: str, attr: Any, op: str, *,
                         modified: str | None = None) -> None:
        """Add (or re-attribute) one ref with ``op`` ``ADD``, remove it with ``DELETE``."""
        ...

    async def ref_ops(self, uuid: str, adds: Sequence[tuple[str, str, Any]] = (),
                      deletes: Sequence[tuple[str, str]] = (), *, modified: str | None = None) -> None:
        """Add refs ``(ref type, uuid, attr)`` and remove refs ``(ref type, uuid)``."""
        ...

    async def relax_ref(self, uuid: str, ref_uuid: str) -> None:
        """Mark ``uuid``'s ref to ``ref_uuid`` as relaxed for delete."""
        ...

    # --- guarded delete --------------------------------------------------------------------------------
    async def mark_deleting(self, uuid: str, at: int | None = None) -> int:
        """Announce a delete on the object's row before its links are read; the mark's write time."""
        ...

    async def unmark_deleting(self, uuid: str, at: int | None = None) -> None:
        """The delete gave up: creates pointing here may go on."""
        ...

    async def delete(self, uuid: str, decoded: tuple[Obj, Links] | None = None) -> bool:
        """Remove an object and every column pointing at it; False if it did not exist."""
        ...

    # --- useragent key/value ---------------------------------------------------------------------------
    async def kv_store(self, key: str, value: Any) -> None: ...

    async def kv_retrieve(self, key: str) -> str | None: ...

    async def kv_delete(self, key: str) -> bool:
        """Remove a key; False if it was not there."""
        ...

    async def kv_all(self) -> list[dict[str, str]]: ...

    # --- lists (last: after it, ``list[...]`` in this class body would name the method) ------------------
    async def list(self, obj_type: str, *, parent_uuids: Sequence[str] | None = None,
                   back_ref_uuids: Sequence[str] | None = None,
                   obj_uuids: Sequence[str] | None = None) -> list[tuple[list[str], str]]:
        """``(fq_name, uuid)`` of the objects of a type; each given filter narrows (intersection)."""
        ...


class CoordinatorAPI(Closable, Protocol):
    """The ZooKeeper coordination: the session's state and the fq-name create locks."""

    @property
    def connected(self) -> bool:
        """The session is CONNECTED (writes are refused with 503 otherwise)."""
        ...

    async def wait_writable(self) -> bool:
        """Connected, or back within what is left of the reconnect grace."""
        ...

    async def create_fq_lock(self, obj_type: str, fq_name: Sequence[str], uuid: str,
                             fence_ts: int | None = None) -> bool:
        """Take the create lock of ``fq_name`` for ``uuid``; False when another uuid holds it."""
        ...

    async def read_fq_lock(self, obj_type: str, fq_name: Sequence[str]) -> str | None:
        """The uuid holding the lock of ``fq_name``, or None."""
        ...

    async def delete_fq_lock(self, obj_type: str, fq_name: Sequence[str], uuid: str | None = None) -> bool:
        """Release the lock (only if ``uuid`` holds it, when given). False if it was not there."""
        ...


class NotifierAPI(Closable, Protocol):
    """The notifications to the other replicas (RabbitMQ)."""

    def check_capacity(self) -> None:
        """Raise Unavailable if ``publish`` would (called before a write to refuse it up front)."""
        ...

    async def publish(self, oper: str, obj_type: str, uuid: str, fq_name: list[str],
                      obj_dict: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        """Send one notification."""
        ...
