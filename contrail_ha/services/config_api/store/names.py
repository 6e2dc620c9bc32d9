"""Names, lists, sharing and the useragent key/value table of the config DB."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from contrail_ha.services.config_api.objects import ConfigError, fq_str
from contrail_ha.services.config_api.rows import (
    Mutation,
    _share_rwx,
    col_shared,
    dumps,
    fq_hits,
    otype,
    parse_fq_col,
)
from contrail_ha.services.config_api.store.session import (
    FQ_TABLE,
    KV_TABLE,
    SHARED_TABLE,
    UUID_TABLE,
    StoreSession,
)


class MultiMatch(ConfigError):
    """More than one object of a type holds one fq_name (a corrupt index, as the original's 'Multi match')."""

    status = 500


class Names(StoreSession):
    """fq_name lookups, lists of a type, the shared table and the useragent key/value table.

    ``list`` comes last: after it, ``list[...]`` in the class body's annotations would name the method.
    """

    # --- sharing -----------------------------------------------------------------------------------
    async def shared_add(self, obj_type: str, obj_uuid: str, share_type: str, share_id: str, rwx: int) -> None:
        """Share an object (``share_type`` ``tenant``/``domain``/``global``, ``share_id`` '' for global)."""
        await self._send([Mutation(SHARED_TABLE, otype(obj_type), col_shared(share_type, share_id, obj_uuid),
                                   dumps(int(rwx)))])

    async def shared_remove(self, obj_type: str, obj_uuid: str, share_type: str, share_id: str) -> None:
        await self._send([Mutation(SHARED_TABLE, otype(obj_type), col_shared(share_type, share_id, obj_uuid))])

    async def shared_list(self, obj_type: str, share_type: str, share_id: str) -> list[tuple[str, int]]:
        """``(uuid, rwx)`` of the objects of a type shared with ``share_type:share_id``."""
        cols = await self._slice(SHARED_TABLE, otype(obj_type), f"{share_type}:{share_id}")
        out = []
        for c, v, _ in cols:
            rest = c[len(share_type) + len(share_id) + 2:]
            if rest and ":" not in rest:
                out.append((rest, _share_rwx(v)))
        return out

    # --- useragent key/value -------------------------------------------------------------------------
    async def kv_store(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else dumps(value)
        await self._send([Mutation(KV_TABLE, str(key), "value", text)])

    async def kv_retrieve(self, key: str) -> str | None:
        cols = await self._cols(KV_TABLE, str(key), ("value",))
        return cols[0][1] if cols else None

    async def kv_delete(self, key: str) -> bool:
        """Remove a key; False if it was not there."""
        if await self.kv_retrieve(key) is None:
            return False
        await self._send([Mutation(KV_TABLE, str(key), None)])
        return True

    async def kv_all(self) -> list[dict[str, str]]:
        rows = await self._run(self._st[KV_TABLE].all)
        return [{"key": k.decode(), "value": v} for k, c, v in rows if c == b"value"]

    # --- names and lists --------------------------------------------------------------------------
    async def fq_name_to_uuid(self, obj_type: str, fq_name: Sequence[str]) -> str | None:
        """The uuid of an object by type and fq_name: the original's column slice ``fq:`` .. ``fq;``."""
        cols = await self._slice(FQ_TABLE, otype(obj_type), fq_str(list(fq_name)))
        hits = fq_hits(fq_name, (c for c, _, _ in cols))
        if len(hits) > 1:
            raise MultiMatch(f"Multi match {list(fq_name)} for {otype(obj_type)}: {hits}")
        return hits[0] if hits else None

    async def list(self, obj_type: str, *, parent_uuids: Sequence[str] | None = None,
                   back_ref_uuids: Sequence[str] | None = None,
                   obj_uuids: Sequence[str] | None = None) -> list[tuple[list[str], str]]:
        """``(fq_name, uuid)`` of the objects of a type; each given filter narrows (intersection).

        No filter: the type's fq-name row. ``parent_uuids``: the parents' ``children:<type>:``
        columns. ``back_ref_uuids``: objects whose refs point to any of them (the targets'
        ``backref:<type>:`` columns, or ``ref:`` between objects of one type).
        """
        t = otype(obj_type)
        if parent_uuids is None and back_ref_uuids is None and obj_uuids is None:
            rows = await self._row(FQ_TABLE, t)
            return [parse_fq_col(c) for c, _, _ in rows]
        candidates: list[str] | None = None

        def narrow(found: Iterable[str]) -> None:
            nonlocal candidates
            got = list(dict.fromkeys(found))
            if candidates is None:
                candidates = got
            else:
                keep = set(got)
                candidates = [u for u in candidates if u in keep]

        if parent_uuids is not None:
            parts = await asyncio.gather(*(self._slice(UUID_TABLE, p, f"children:{t}") for p in parent_uuids))
            narrow(c.rsplit(":", 1)[1] for part in parts for c, _, _ in sorted(part, key=lambda x: (x[2] or 0, x[0])))
        if back_ref_uuids is not None:
            targets = await self._fq_many(back_ref_uuids)
            parts = await asyncio.gather(*(self._slice(UUID_TABLE, b, ("ref:" if targets[b][1] == t else "backref:")
                                                       + t) for b in back_ref_uuids if b in targets))
            narrow(c.rsplit(":", 1)[1] for part in parts for c, _, _ in part)
        if obj_uuids is not None:
            narrow(obj_uuids)
        fqs = await self._fq_many(candidates or [])
        return [(fqs[u][0], u) for u in candidates or [] if u in fqs and fqs[u][1] == t]
