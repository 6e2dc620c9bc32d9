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

    async def revoke_unseen(self, obj_type: str, uuid: str, fq_name: Sequence[str] | None, claim_ts: int,
                            links: Sequence[Mutation] = ()) -> bool:
        """Revoke a create unless it is visible: mark its row, read it at QUORUM, and only if it has
        no ``type`` write the tombstones (just after ``claim_ts``) that shadow its commit whenever
        it lands, with its ``links`` removed and the mark lifted in the same batch. True: revoked;
        False: the object is visible now, so it stands (others may have read it or built on it).

        The mark closes the race with a child's claim: the child writes its claim, then reads this
        row; this side writes the mark, then reads. A child that read the row visible before the
        mark was written made it visible at QUORUM (read repair), so this read sees it; a child
        that reads later sees the mark and waits until the row is gone (docs/integrity.md)."""
        t = otype(obj_type)
        at = max(time.time_ns() // 1000, claim_ts + 2)
        try:
            await self.mark_deleting(uuid, at)
            seen = await self._cols(UUID_TABLE, uuid, ("type",))
        except BaseException:
            await self.unmark_deleting(uuid, at)
            raise
        if seen:
            await self.unmark_deleting(uuid, at)
            return False
        revoke = claim_ts + 1
        undo = self._revocation(t, uuid, fq_name, claim_ts) + \
            [Mutation(m.table, m.key, m.column, None, revoke) for m in links] + \
            [Mutation(UUID_TABLE, uuid, DELETING, None, at)]
        try:
            await self._send(undo)
        except BaseException:
            await self.unmark_deleting(uuid, at)
            raise
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

    async def revoke(self, obj_type: str, uuid: str, fq_name: Sequence[str] | None, claim_ts: int) -> bool:
        """Revoke a create judged dead (its claim written at ``claim_ts``, older than
        :data:`LINK_STALE_S`, its object invisible when the judge read it) - unless it became
        visible since: then it stands and this returns False (the judge must decide again). See
        :meth:`revoke_unseen`. Harmless on a row that was committed and deleted since."""
        log.warning("revoking the create of %s %s (claimed %.1f s ago, never committed)", obj_type, uuid,
                    time.time() - claim_ts / 1e6)
        return await self.revoke_unseen(obj_type, uuid, fq_name, claim_ts)

    async def mark_deleting(self, uuid: str, at: int | None = None) -> int:
        """Announce a delete on the object's row before its links are read (see :meth:`create`);
        returns the mark's write time (``at``, else now), which :meth:`unmark_deleting` removes it at."""
        at = at if at is not None else time.time_ns() // 1000
        await self._send([Mutation(UUID_TABLE, uuid, DELETING, deleting_mark(), at)])
        return at

    async def unmark_deleting(self, uuid: str, at: int | None = None) -> None:
        """The delete gave up: creates pointing here may go on. ``at``: the mark's write time - a
        later mark (another delete or revoke still deciding) is left in place."""
        try:
            await self._send([Mutation(UUID_TABLE, uuid, DELETING, None, at)])
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
