"""The object operations of the config DB: create (with its claims on the rows it points to),
read, update, list/map elements, refs, and the guarded delete (see the package's docstring and
docs/integrity.md for the claim protocol).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from cassandra import OperationTimedOut, Timeout
from cassandra.query import BatchType

from contrail_ha.services.config_api.objects import (
    ENVELOPE,
    ConfigError,
    Conflict,
    NotFound,
    Obj,
    OutcomeUnknown,
    Unavailable,
)
from contrail_ha.services.config_api.rows import (
    DELETING,
    LAST_MODIFIED,
    LATEST,
    NULL,
    Fence,
    Links,
    Mutation,
    claim_value,
    col_backref,
    col_child,
    col_fq,
    col_parent,
    col_prop,
    col_ref,
    col_relax,
    col_shared,
    decode_row,
    deleting_mark,
    dumps,
    otype,
    position_order,
    ref_type_of,
    ref_value,
    share_entries,
)
from contrail_ha.services.config_api.store.session import (
    CLAIM_WAIT_S,
    FQ_TABLE,
    SHARED_TABLE,
    UUID_TABLE,
    StoreSession,
)

log = logging.getLogger(__package__)  # the package's logger, as before the split into modules


class Objects(StoreSession):
    """Create / read / update / delete of config objects, over the primitives of :class:`StoreSession`."""

    # --- create / read / update / delete --------------------------------------------------------
    async def create(self, obj: Obj, fence: Fence | None = None) -> None:
        """Write a new object (the dict of objects.py: envelope, props, ``<type>_refs`` with uuids).

        First the *claim*: the link columns on the rows the object points to (its parent's
        ``children:``, each target's ``backref:``), then a QUORUM read of those rows - each must
        exist with no delete in progress (:meth:`_check_targets`) - and only then the object's
        own row and fq-name column. A delete marks its row before reading its links, so of a
        create and a delete racing on one row at least one sees the other (QUORUM write then
        QUORUM read on both sides): no orphan, no dangling ref.

        Every column is written at ``fence.ts``. The create acknowledges only if its commit
        completed within :data:`CREATE_DEADLINE_S` of its fence; a delete that finds the claim
        older than :data:`LINK_STALE_S` with the object still invisible revokes it (tombstones at
        ``fence.ts + 1``), which shadows a paused create's commit whenever it lands.
        """
        fence = fence or Fence.start()
        u, t, fq = obj["uuid"], otype(obj["type"]), list(obj["fq_name"])
        at = fence.ts
        body: list[Mutation] = []
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        modified = (obj.get("id_perms") or {}).get("last_modified") if isinstance(obj.get("id_perms"), dict) else None
        commit = [Mutation(UUID_TABLE, u, "fq_name", dumps(fq), at), Mutation(UUID_TABLE, u, "type", dumps(t), at),
                  Mutation(UUID_TABLE, u, LATEST, NULL, at)]
        if modified:
            commit.append(Mutation(UUID_TABLE, u, LAST_MODIFIED, dumps(modified), at))
        if obj.get("parent_type") and obj.get("parent_uuid"):
            pt, pu = otype(obj["parent_type"]), obj["parent_uuid"]
            commit += [Mutation(UUID_TABLE, u, "parent_type", dumps(pt), at),
                       Mutation(UUID_TABLE, u, col_parent(pt, pu), NULL, at)]
            links.append(Mutation(UUID_TABLE, pu, col_child(t, u), claim_value(fq), at))
            targets[pu] = f"Parent {obj['parent_type']} {pu}"
        for k, v in obj.items():
            if k in ENVELOPE or k.endswith("_back_refs") or k == "relaxed_back_refs":
                continue
            rtype = ref_type_of(k)
            if rtype is not None and isinstance(v, list):
                for r in v:
                    val = ref_value(r.get("attr"))
                    body.append(Mutation(UUID_TABLE, u, col_ref(rtype, r["uuid"]), val, at))
                    side = self._other_side(t, u, rtype, r["uuid"], claim_value(fq, val))
                    links.append(Mutation(side.table, side.key, side.column, side.value, at))
                    targets.setdefault(r["uuid"], f"{k}: {rtype.replace('_', '-')} {r['uuid']}")
            elif v is not None:
                body += [Mutation(m.table, m.key, m.column, m.value, at) for m in self._prop_columns(t, u, k, v)]
        commit.append(Mutation(FQ_TABLE, t, col_fq(fq, u), NULL, at))
        await self._claim(links, targets, obj.get("parent_uuid") or None, at=fence.revoke_ts)
        try:
            await self._write(body, commit)
        except Unavailable as e:
            if not isinstance(e.__cause__, (Timeout, OperationTimedOut)):
                await self._unclaim(links, at=fence.revoke_ts)
            elif not await self._undo_create(u, t, fq, links, fence):  # it may still apply
                raise OutcomeUnknown(f"The create of {t} {u} timed out and may still apply "
                                     f"(retry it after reading the object): {e}") from e
            raise
        except BaseException:
            await self._unclaim(links, at=fence.revoke_ts)
            raise
        if fence.expired(self.create_deadline):
            # A delete may already have judged this create dead and revoked it: never acknowledge
            # it. Revoke it ourselves, so the answer is definite (nothing was created).
            if not await self._undo_create(u, t, fq, links, fence):
                raise OutcomeUnknown(f"The create of {t} {u} took longer than {self.create_deadline:g} s "
                                     "and could not be undone; read the object before retrying")
            raise Unavailable(f"The create of {t} {u} took longer than {self.create_deadline:g} s "
                              "(a paused or overloaded replica); nothing was created, retry it")
        self._cache_put(u, fq, t)

    async def revoke(self, obj_type: str, uuid: str, fq_name: Sequence[str] | None, claim_ts: int) -> None:
        """Revoke a create judged dead (its claim written at ``claim_ts``, older than
        :data:`LINK_STALE_S`, its object invisible): tombstones one microsecond after the claim on
        its row and fq-name column, which shadow its commit (written at ``claim_ts``) whenever it
        lands. Harmless on a row that was committed and deleted since."""
        muts = [Mutation(UUID_TABLE, uuid, None, None, claim_ts + 1)]
        if fq_name:
            muts.append(Mutation(FQ_TABLE, otype(obj_type), col_fq(list(fq_name), uuid), None, claim_ts + 1))
        log.warning("revoking the create of %s %s (claimed %.1f s ago, never committed)", obj_type, uuid,
                    time.time() - claim_ts / 1e6)
        await self._send(muts, BatchType.UNLOGGED)

    async def commit_time(self, uuid: str) -> int | None:
        """The write time (microseconds) of an object's ``type`` column: its create's fence, or None."""
        cols = await self._cols(UUID_TABLE, uuid, ("type",))
        return cols[0][2] if cols else None

    def _prop_columns(self, obj_type: str, uuid: str, name: str, value: Any) -> list[Mutation]:
        """The columns of a property value: one, or a collection's shell and one per element."""
        coll = self.layout(obj_type, name)
        if coll is None:
            return [Mutation(UUID_TABLE, uuid, col_prop(name), dumps(value))]
        shell, items = coll.split(value)
        return [Mutation(UUID_TABLE, uuid, col_prop(name), dumps(shell))] + \
            [Mutation(UUID_TABLE, uuid, coll.column(name, pos), dumps(e)) for pos, e in items]

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
        undo = [Mutation(UUID_TABLE, u, None, None, at), Mutation(FQ_TABLE, t, col_fq(fq, u), None, at)]
        undo += [Mutation(m.table, m.key, m.column, None, at) for m in links]
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

    async def read(self, uuid: str, *, fields: Sequence[str] | None = None) -> Obj | None:
        """The object (objects.py form) with its children and back-refs, or None.

        With ``fields`` only those (props, ``<t>_refs``, ``<t>s`` children, ``<t>_back_refs``) plus
        the envelope, ``id_perms`` and ``perms2``. A full read also carries ``relaxed_back_refs``
        (uuids of referrers whose ref was relaxed for delete) when there are any.
        """
        if fields is None:
            cols = await self._row(UUID_TABLE, uuid)
        else:
            cols = await self._read_fields(uuid, fields)
        return await self._assemble(uuid, cols, full=fields is None)

    async def read_row(self, uuid: str) -> tuple[Obj, Links] | None:
        """The object's own fields and raw link columns, read now at QUORUM (no cache): what a
        delete decides on."""
        return decode_row(uuid, await self._row(UUID_TABLE, uuid), self.layout)

    async def _read_fields(self, uuid: str, fields: Sequence[str]) -> list[tuple[str, str, int | None]]:
        names = ["fq_name", "type", "parent_type", col_prop("id_perms"), col_prop("perms2"), LAST_MODIFIED]
        known = self._fq_cache.get(uuid)
        slices = ["parent"]
        for f in dict.fromkeys(fields):
            if f in ENVELOPE:
                continue
            names.append(col_prop(f))
            if f.endswith("_back_refs"):
                slices.append(f"backref:{f[: -len('_back_refs')]}")
            elif f.endswith("_refs"):
                slices.append(f"ref:{f[: -len('_refs')]}")
            elif f.endswith("s"):
                slices.append(f"children:{f[:-1]}")
            if known is None:  # type not cached: the field may be a collection of either kind
                slices += [f"propl:{f}", f"propm:{f}"]
            elif (coll := self.layout(known[1], f)) is not None:
                slices.append(f"{coll.prefix}:{f}")
        parts = await asyncio.gather(self._cols(UUID_TABLE, uuid, dict.fromkeys(names)),
                                     *(self._slice(UUID_TABLE, uuid, p) for p in slices))
        return [c for part in parts for c in part]

    async def _assemble(self, uuid: str, cols: list[tuple[str, str, int | None]], full: bool) -> Obj | None:
        decoded = decode_row(uuid, cols, self.layout)
        if decoded is None:
            return None
        obj, links = decoded
        self._cache_put(uuid, obj["fq_name"], obj["type"])
        fqs = await self._fq_many([u for _, u, _ in links.refs] + [u for _, u, _ in links.children]
                                  + [u for _, u, _ in links.backrefs])
        for t, u, attr in links.refs:
            if u in fqs:
                obj.setdefault(f"{t}_refs", []).append({"to": fqs[u][0], "uuid": u, "attr": attr})
        for t, u, _ in sorted(links.children, key=lambda c: (c[2], c[1])):
            if u in fqs:
                obj.setdefault(f"{t}s", []).append({"to": fqs[u][0], "uuid": u})
        for t, u, attr in links.backrefs:
            if u in fqs:
                obj.setdefault(f"{t}_back_refs", []).append({"to": fqs[u][0], "uuid": u, "attr": attr})
        if full and links.relaxed:
            obj["relaxed_back_refs"] = list(links.relaxed)
        return obj

    async def read_many(self, uuids: Sequence[str], fields: Sequence[str] | None = None) -> list[Obj | None]:
        """:meth:`read` of each uuid; the result is aligned with ``uuids``. At most :data:`FANOUT`
        reads of one request run at once, so a huge request cannot starve the others."""
        return await self._bounded(lambda u: self.read(u, fields=fields), list(uuids))

    async def _touch(self, uuid: str, modified: str | None) -> tuple[str, list[Mutation]]:
        """The type of an existing object and the columns every change of it writes (``META``
        bumps, the new ``last_modified``); ``NotFound`` when it does not exist."""
        found = await self.uuid_to_fq_name(uuid)
        if found is None:
            raise NotFound(f"{uuid} not found")
        muts = [Mutation(UUID_TABLE, uuid, LATEST, NULL)]
        if modified:
            muts.append(Mutation(UUID_TABLE, uuid, LAST_MODIFIED, dumps(modified)))
        return found[1], muts

    async def update(self, uuid: str, changes: Obj, refs: dict[str, list[Obj]] | None = None, *,
                     modified: str | None = None) -> None:
        """Set props (None deletes the property) and replace whole ref lists (``{field: [{"uuid", "attr"}]}``).

        Envelope keys in ``changes`` are ignored (fq_name, type and parent never change); a
        ``<t>_refs`` key in ``changes`` is treated as a ref-list replacement. A list or map
        property is replaced element-wise (the elements it had and no longer has are deleted).
        ``modified`` is the new ``id_perms.last_modified``. New refs are claimed on their targets
        first (as in :meth:`create`). Raises ``NotFound`` when the object does not exist.
        """
        t, muts = await self._touch(uuid, modified)
        refs = dict(refs or {})
        whole: dict[str, Any] = {}
        for k, v in changes.items():
            if k in ENVELOPE or k.endswith("_back_refs") or k == "relaxed_back_refs":
                continue
            if ref_type_of(k) is not None and isinstance(v, list):
                refs[k] = v
                continue
            if self.layout(t, k) is not None:
                whole[k] = v
                continue
            muts.append(Mutation(UUID_TABLE, uuid, col_prop(k), None if v is None else dumps(v)))
        reads = [self._slice(UUID_TABLE, uuid, f"{self.layout(t, k).prefix}:{k}") for k in whole]  # type: ignore[union-attr]
        reads += [self._slice(UUID_TABLE, uuid, f"ref:{ref_type_of(f)}") for f in refs]
        current = await asyncio.gather(*reads)
        for (k, v), cols in zip(whole.items(), current[:len(whole)], strict=True):
            new = self._prop_columns(t, uuid, k, v) if v is not None else [Mutation(UUID_TABLE, uuid, col_prop(k))]
            keep = {m.column for m in new}
            muts += new + [Mutation(UUID_TABLE, uuid, c) for c, _, _ in cols if c not in keep]
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        for (f, new_refs), cols in zip(refs.items(), current[len(whole):], strict=True):
            rtype = ref_type_of(f)
            if rtype is None:
                raise ValueError(f"{f} is not a ref field")
            have = {c.rsplit(":", 1)[1]: v for c, v, _ in cols}
            want = {r["uuid"]: ref_value(r.get("attr")) for r in new_refs or []}
            for ru in have.keys() - want.keys():
                muts += self._unlink(t, uuid, rtype, ru)
            for ru, val in want.items():
                if have.get(ru) != val:
                    muts.append(Mutation(UUID_TABLE, uuid, col_ref(rtype, ru), val))
                    links.append(self._other_side(t, uuid, rtype, ru, val))
                    if ru not in have:
                        targets[ru] = f"{f}: {rtype.replace('_', '-')} {ru}"
        await self._claim(links, targets)
        try:
            await self._write(muts)
        except BaseException:
            await self._unclaim([m for m in links if m.key in targets])
            raise

    async def update_elements(self, uuid: str, changes: Sequence[tuple[str, str, Any]], *,
                              shells: Obj | None = None, modified: str | None = None) -> None:
        """Set (value) or delete (value None) single elements: ``(property, position or key, value)``.

        Each element is its own column, so concurrent changes of different elements all survive.
        ``shells``: the ``prop:<name>`` shell of each touched collection (so the property reads
        back as set). Raises ``NotFound`` when the object does not exist.
        """
        t, muts = await self._touch(uuid, modified)
        for name, shell in (shells or {}).items():
            muts.append(Mutation(UUID_TABLE, uuid, col_prop(name), dumps(shell)))
        for name, pos, value in changes:
            coll = self.layout(t, name)
            if coll is None:
                raise ValueError(f"{name} is not a list or map property of {t}")
            muts.append(Mutation(UUID_TABLE, uuid, coll.column(name, pos), None if value is None else dumps(value)))
        await self._write(muts)

    async def read_elements(self, uuid: str, name: str) -> list[tuple[str, Any]] | None:
        """``(position or key, element)`` of a list or map property in order; None when the
        object does not exist or the property is not a collection."""
        found = await self.uuid_to_fq_name(uuid)
        coll = self.layout(found[1], name) if found else None
        if found is None or coll is None:
            return None
        cols = await self._slice(UUID_TABLE, uuid, f"{coll.prefix}:{name}")
        items = [(c[len(coll.prefix) + len(name) + 2:], json.loads(v)) for c, v, _ in cols]
        if coll.kind == "list":
            items.sort(key=lambda pe: position_order(pe[0]))
        return items

    def _unlink(self, obj_type: str, obj_uuid: str, ref_type: str, ref_uuid: str) -> list[Mutation]:
        """Deletes of a ref on both rows (and the relaxed marker on the target)."""
        out = [Mutation(UUID_TABLE, obj_uuid, col_ref(ref_type, ref_uuid)),
               self._other_side(obj_type, obj_uuid, ref_type, ref_uuid, None)]
        if otype(ref_type) != obj_type:
            out.append(Mutation(UUID_TABLE, ref_uuid, col_relax(obj_uuid)))
        return out

    async def ref_update(self, uuid: str, ref_type: str, ref_uuid: str, attr: Any, op: str, *,
                         modified: str | None = None) -> None:
        """Add (or re-attribute) one ref with ``op`` ``ADD``, remove it with ``DELETE``."""
        if op.upper() == "ADD":
            await self.ref_ops(uuid, adds=[(ref_type, ref_uuid, attr)], modified=modified)
        elif op.upper() == "DELETE":
            await self.ref_ops(uuid, deletes=[(ref_type, ref_uuid)], modified=modified)
        else:
            raise ConfigError(f"ref-update operation must be ADD or DELETE, got {op!r}")

    async def ref_ops(self, uuid: str, adds: Sequence[tuple[str, str, Any]] = (),
                      deletes: Sequence[tuple[str, str]] = (), *, modified: str | None = None) -> None:
        """Add refs ``(ref type, uuid, attr)`` and remove refs ``(ref type, uuid)``: only those refs'
        columns are written, so concurrent changes of different refs all survive. Added refs claim
        their targets first (each must exist and not be being deleted)."""
        t, muts = await self._touch(uuid, modified)
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        for ref_type, ref_uuid, attr in adds:
            rtype, val = otype(ref_type), ref_value(attr)
            muts.append(Mutation(UUID_TABLE, uuid, col_ref(rtype, ref_uuid), val))
            links.append(self._other_side(t, uuid, rtype, ref_uuid, val))
            targets[ref_uuid] = f"{rtype.replace('_', '-')} {ref_uuid}"
        for ref_type, ref_uuid in deletes:
            muts += self._unlink(t, uuid, otype(ref_type), ref_uuid)
        if links:  # the object itself must still be there (not being deleted) when refs are added
            targets[uuid] = f"{t.replace('_', '-')} {uuid}"
        await self._claim(links, targets)
        try:
            await self._write(muts)
        except BaseException:
            await self._unclaim(links)
            raise

    async def relax_ref(self, uuid: str, ref_uuid: str) -> None:
        """Mark ``uuid``'s ref to ``ref_uuid`` as relaxed for delete (``relaxbackref:<uuid>`` on ``ref_uuid``)."""
        await self._send([Mutation(UUID_TABLE, ref_uuid, col_relax(uuid), NULL)])

    # --- guarded delete -------------------------------------------------------------------------
    async def mark_deleting(self, uuid: str) -> None:
        """Announce a delete on the object's row before its links are read (see :meth:`create`)."""
        await self._send([Mutation(UUID_TABLE, uuid, DELETING, deleting_mark())])

    async def unmark_deleting(self, uuid: str) -> None:
        """The delete gave up (409 or an error): creates pointing here may go on."""
        try:
            await self._send([Mutation(UUID_TABLE, uuid, DELETING)])
        except Exception as e:  # the mark goes stale by itself
            log.warning("could not remove the delete mark of %s: %s", uuid, e)

    async def visible(self, uuids: Sequence[str]) -> dict[str, tuple[list[str], str]]:
        """``(fq_name, type)`` of those uuids whose object exists now (QUORUM reads, no cache)."""
        found = await self._bounded(lambda u: self._cols(UUID_TABLE, u, ("fq_name", "type")), list(uuids))
        out: dict[str, tuple[list[str], str]] = {}
        for u, cols in zip(uuids, found, strict=True):
            have = {c: v for c, v, _ in cols}
            if "fq_name" in have and "type" in have:
                out[u] = (json.loads(have["fq_name"]), json.loads(have["type"]))
        return out

    async def delete(self, uuid: str, decoded: tuple[Obj, Links] | None = None) -> bool:
        """Remove an object: its row, the parent's child column, its refs' other sides, relaxed
        referrers' refs, its fq-name and shared columns. False if it did not exist. ``decoded``:
        the row as :meth:`read_row` just read it (saves reading it again)."""
        if decoded is None:
            decoded = await self.read_row(uuid)
        if decoded is None:
            return False
        obj, links = decoded
        t, fq = obj["type"], obj["fq_name"]
        muts = [Mutation(UUID_TABLE, uuid, None), Mutation(FQ_TABLE, t, col_fq(fq, uuid))]
        if obj.get("parent_uuid"):
            muts.append(Mutation(UUID_TABLE, obj["parent_uuid"], col_child(t, uuid)))
        for rt, ru, _ in links.refs:
            muts += self._unlink(t, uuid, rt, ru)[1:]
        for src in links.relaxed:
            muts.append(Mutation(UUID_TABLE, src, col_ref(t, uuid)))
        for share_type, share_id, _ in share_entries(obj.get("perms2")):
            muts.append(Mutation(SHARED_TABLE, t, col_shared(share_type, share_id, uuid)))
        # Later than every column of the row (a writer whose clock ran ahead cannot outlive an
        # acknowledged delete); every column deleted is named by this uuid, never written again.
        at = max(time.time_ns() // 1000, links.newest + 1)
        await self._write([Mutation(m.table, m.key, m.column, None, at) for m in muts])
        self.forget(uuid)
        return True
