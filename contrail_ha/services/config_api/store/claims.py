"""The claim protocol of the config DB (docs/integrity.md): a write that points at other rows
claims them (link columns, then a QUORUM read of those rows), a delete marks its row before it
reads its links, and a create judged dead is revoked with tombstones just after its fence.
:class:`.crud.Objects` builds create / update / ref changes / delete on these.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence

from cassandra.query import BatchType

from contrail_ha.services.config_api.objects import ConfigError, Conflict, NotFound
from contrail_ha.services.config_api.rows import (
    DELETING,
    Fence,
    Mutation,
    col_backref,
    col_fq,
    col_ref,
    deleting_mark,
    otype,
)
from contrail_ha.services.config_api.store.session import (
    CLAIM_WAIT_S,
    FQ_TABLE,
    UUID_TABLE,
    StoreSession,
)

log = logging.getLogger(__package__)


class Claims(StoreSession):
    """Claims, delete marks and revokes, over the primitives of :class:`StoreSession`."""

    async def _claim(self, links: list[Mutation], targets: dict[str, str], parent: str | None = None, *,
                     at: int | None = None) -> None:
        """Write ``links`` on the targets' rows, then check the targets (see :meth:`create`);
        ``parent``: the target that is the object's parent; ``at``: the write time of an undo."""
        if not links:
            return
        await self._write_links(links)
        try:
            await self._check_targets(targets, parent)
        except BaseException:
            await self._unclaim(links, at=at)
            raise

    async def _write_links(self, links: list[Mutation]) -> None:
        """Link columns on other rows: unlogged (each is idempotent and undone on failure), in
        batches under the batch limit, concurrently."""
        chunks: list[list[Mutation]] = [[]]
        size = 0
        for m in links:
            if chunks[-1] and size + m.size() > self.batch_limit:
                chunks.append([])
                size = 0
            chunks[-1].append(m)
            size += m.size()
        await asyncio.gather(*(self._send(c, BatchType.UNLOGGED) for c in chunks if c))

    async def _unclaim(self, links: list[Mutation], *, at: int | None = None) -> None:
        """Remove claimed link columns (best effort: a leftover is invisible and goes stale). ``at``:
        the write time (a create's revoke time, so a retry of it, fenced later, keeps its own)."""
        if not links:
            return
        try:
            await self._write_links([Mutation(m.table, m.key, m.column, None, at) for m in links])
        except Exception as e:
            log.warning("could not remove %d claimed link columns: %s", len(links), e)

    async def _check_targets(self, targets: dict[str, str], parent: str | None = None) -> None:
        """Every target row exists and is not being deleted. A delete in progress is waited for
        briefly (it either finishes - the target is gone: 404 - or gives up: go on)."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        pending = dict(targets)
        while pending:
            rows = await self._bounded(lambda u: self._cols(UUID_TABLE, u, ("type", DELETING)), list(pending))
            busy: dict[str, str] = {}
            for (u, what), cols in zip(pending.items(), rows, strict=True):
                have = {c: v for c, v, _ in cols}
                if "type" not in have:  # a missing parent is a bad request (as R2005), a missing target 404
                    raise ConfigError(f"{what} does not exist") if u == parent else NotFound(f"{what} not found")
                if have.get(DELETING) is not None:  # a mark never goes stale (docs/integrity.md)
                    busy[u] = what
            if busy and time.monotonic() > deadline:
                raise Conflict(f"{next(iter(busy.values()))} is being deleted; try again (a DELETE of it "
                               "that did not finish is completed or given up by retrying that DELETE)")
            pending = busy
            if pending:
                await asyncio.sleep(0.05)

    async def _undo_create(self, u: str, t: str, fq: list[str], links: list[Mutation], fence: Fence) -> bool:
        """Revoke what a timed-out or late create may have written (tombstones at its revoke time,
        which shadow its columns whenever they land); False if that failed too."""
        at = fence.revoke_ts
        undo = self._revocation(t, u, fq, fence.ts) + [Mutation(m.table, m.key, m.column, None, at) for m in links]
        try:
            await self._send(undo)
        except Exception as e:
            log.warning("could not undo the timed-out create of %s %s (outcome unknown): %s", t, u, e)
            return False
        return True

    @staticmethod
    def _other_side(obj_type: str, obj_uuid: str, ref_type: str, ref_uuid: str, value: str | None) -> Mutation:
        """The column a ref writes on its target's row: ``backref:`` (or ``ref:`` between objects of one type)."""
        if otype(ref_type) == obj_type:
            return Mutation(UUID_TABLE, ref_uuid, col_ref(obj_type, obj_uuid), value)
        return Mutation(UUID_TABLE, ref_uuid, col_backref(obj_type, obj_uuid), value)

    @staticmethod
    def _revocation(obj_type: str, uuid: str, fq_name: Sequence[str] | None, claim_ts: int) -> list[Mutation]:
        """Tombstones one microsecond after a create's write time on its row and (when its fq_name
        is known) its fq-name column: they shadow every column the create wrote at ``claim_ts``."""
        muts = [Mutation(UUID_TABLE, uuid, None, None, claim_ts + 1)]
        if fq_name:
            muts.append(Mutation(FQ_TABLE, obj_type, col_fq(list(fq_name), uuid), None, claim_ts + 1))
        return muts

    async def revoke(self, obj_type: str, uuid: str, fq_name: Sequence[str] | None, claim_ts: int) -> None:
        """Revoke a create judged dead (its claim written at ``claim_ts``, older than
        :data:`LINK_STALE_S`, its object invisible): tombstones one microsecond after the claim on
        its row and fq-name column, which shadow its commit (written at ``claim_ts``) whenever it
        lands. Harmless on a row that was committed and deleted since."""
        muts = self._revocation(otype(obj_type), uuid, fq_name, claim_ts)
        log.warning("revoking the create of %s %s (claimed %.1f s ago, never committed)", obj_type, uuid,
                    time.time() - claim_ts / 1e6)
        await self._send(muts, BatchType.UNLOGGED)

    async def mark_deleting(self, uuid: str) -> None:
        """Announce a delete on the object's row before its links are read (see :meth:`create`)."""
        await self._send([Mutation(UUID_TABLE, uuid, DELETING, deleting_mark())])

    async def unmark_deleting(self, uuid: str) -> None:
        """The delete gave up (409 or an error): creates pointing here may go on."""
        try:
            await self._send([Mutation(UUID_TABLE, uuid, DELETING)])
        except Exception as e:  # marks never expire: a retry of the DELETE completes or clears it
            log.warning("could not remove the delete mark of %s (retry the DELETE to clear it): %s", uuid, e)

    async def visible(self, uuids: Sequence[str]) -> dict[str, tuple[list[str], str]]:
        """``(fq_name, type)`` of those uuids whose object exists now (QUORUM reads, no cache)."""
        found = await self._bounded(lambda u: self._cols(UUID_TABLE, u, ("fq_name", "type")), list(uuids))
        out: dict[str, tuple[list[str], str]] = {}
        for u, cols in zip(uuids, found, strict=True):
            have = {c: v for c, v, _ in cols}
            if "fq_name" in have and "type" in have:
                out[u] = (json.loads(have["fq_name"]), json.loads(have["type"]))
        return out
