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

from contrail_ha.services.config_api.objects import (
    ENVELOPE,
    ConfigError,
    NotFound,
    Obj,
    OutcomeUnknown,
    Unavailable,
)
from contrail_ha.services.config_api.rows import (
    LAST_MODIFIED,
    LATEST,
    NULL,
    Fence,
    Links,
    Mutation,
    claim_value,
    col_child,
    col_fq,
    col_parent,
    col_prop,
    col_ref,
    col_relax,
    col_shared,
    decode_row,
    dumps,
    otype,
    position_order,
    ref_type_of,
    ref_value,
    share_entries,
)
from contrail_ha.services.config_api.store.claims import Claims
from contrail_ha.services.config_api.store.session import (
    FQ_TABLE,
    SHARED_TABLE,
    UUID_TABLE,
)

log = logging.getLogger(__package__)  # the package's logger, as before the split into modules


def stamped(muts: list[Mutation], at: int) -> list[Mutation]:
    """``muts`` with the write time ``at`` (one change: one write time, claims and commit alike)."""
    return [Mutation(m.table, m.key, m.column, m.value, at) for m in muts]


class Objects(Claims):
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
        body: list[Mutation] = []
        links: list[Mutation] = []
        targets: dict[str, str] = {}
        modified = (obj.get("id_perms") or {}).get("last_modified") if isinstance(obj.get("id_perms"), dict) else None
        commit = [Mutation(UUID_TABLE, u, "fq_name", dumps(fq)), Mutation(UUID_TABLE, u, "type", dumps(t)),
                  Mutation(UUID_TABLE, u, LATEST, NULL)]
        if modified:
            commit.append(Mutation(UUID_TABLE, u, LAST_MODIFIED, dumps(modified)))
        if obj.get("parent_type") and obj.get("parent_uuid"):
            pt, pu = otype(obj["parent_type"]), obj["parent_uuid"]
            commit += [Mutation(UUID_TABLE, u, "parent_type", dumps(pt)),
                       Mutation(UUID_TABLE, u, col_parent(pt, pu), NULL)]
            links.append(Mutation(UUID_TABLE, pu, col_child(t, u), claim_value(fq)))
            targets[pu] = f"Parent {obj['parent_type']} {pu}"
        for k, v in obj.items():
            if k in ENVELOPE or k.endswith("_back_refs") or k == "relaxed_back_refs":
                continue
            rtype = ref_type_of(k)
            if rtype is not None and isinstance(v, list):
                for r in v:
                    val = ref_value(r.get("attr"))
                    body.append(Mutation(UUID_TABLE, u, col_ref(rtype, r["uuid"]), val))
                    links.append(self._other_side(t, u, rtype, r["uuid"], claim_value(fq, val)))
                    targets.setdefault(r["uuid"], f"{k}: {rtype.replace('_', '-')} {r['uuid']}")
            elif v is not None:
                body += self._prop_columns(t, u, k, v)
        commit.append(Mutation(FQ_TABLE, t, col_fq(fq, u), NULL))
        body, links, commit = stamped(body, fence.ts), stamped(links, fence.ts), stamped(commit, fence.ts)
        await self._claim(links, targets, obj.get("parent_uuid") or None, at=fence.revoke_ts)
        try:
            await self._write(body, commit)
        except Unavailable as e:
            if not isinstance(e.__cause__, (Timeout, OperationTimedOut)):
                await self._unclaim(links, at=fence.revoke_ts)
                raise
            await self._settle_create(u, t, fq, links, fence, "timed out", e)  # it may have applied
            self._cache_put(u, fq, t)
            return
        except BaseException:
            await self._unclaim(links, at=fence.revoke_ts)
            raise
        if fence.expired(self.create_deadline):
            # A delete may already have judged this create dead and be about to revoke it: never
            # acknowledge it. Settle it: revoked (nothing was created) or visible (it stands).
            await self._settle_create(u, t, fq, links, fence, f"took longer than {self.create_deadline:g} s")
        self._cache_put(u, fq, t)

    async def _settle_create(self, u: str, t: str, fq: list[str], links: list[Mutation], fence: Fence,
                             why: str, cause: BaseException | None = None) -> None:
        """Decide a create whose write timed out or completed late. Invisible now: revoke it
        (503, nothing was created). Visible now - it applied, and others may have read it or built
        children on it, so it is never undone: acknowledged if still within its deadline (a judge
        acts only after the claim window, and would see it), else 504 (it exists, but a delete
        that judged it dead before it landed may still revoke it). Undecidable: 504."""
        what = f"The create of {t} {u} {why}"
        try:
            revoked = await self.revoke_unseen(t, u, fq, fence.ts, links)
        except Exception as e:
            log.warning("could not settle the create of %s %s (outcome unknown): %s", t, u, e)
            raise OutcomeUnknown(f"{what} and may still apply; read the object before retrying: {e}") from e
        if revoked:
            raise Unavailable(f"{what} (a paused or overloaded replica or config DB); nothing was created, "
                              "retry it") from cause
        if not fence.expired(self.create_deadline):
            log.info("the create of %s %s %s but had applied: acknowledged", t, u, why)
            return
        raise OutcomeUnknown(f"{what}: it was applied, after its deadline, and is visible now; a delete of "
                             "what it points to may still revoke it: read the object before retrying") from cause

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

    async def _touch(self, uuid: str, modified: str | None) -> tuple[str, int, list[Mutation]]:
        """The type of an existing object, the write time of this change and the columns every
        change of it writes (``META`` bumps, the new ``last_modified``); ``NotFound`` when it
        does not exist.

        The write time is later than the row's last change (``META:latest_col_ts`` read now at
        QUORUM), so of two changes of one object the one that started after the other was
        acknowledged always wins, whatever the replicas' clocks say; and every column of the
        change (its claims on other rows too) carries it, so a change that is paused and lands
        late is shadowed, claim and commit alike, by whatever was decided after it began."""
        cols = {c: (v, ts) for c, v, ts in await self._cols(UUID_TABLE, uuid, ("type", "fq_name", LATEST))}
        if "type" not in cols or "fq_name" not in cols:
            raise NotFound(f"{uuid} not found")
        t = json.loads(cols["type"][0])
        self._cache_put(uuid, json.loads(cols["fq_name"][0]), t)
        at = max(time.time_ns() // 1000, (cols.get(LATEST, (None, 0))[1] or 0) + 1)
        muts = [Mutation(UUID_TABLE, uuid, LATEST, NULL)]
        if modified:
            muts.append(Mutation(UUID_TABLE, uuid, LAST_MODIFIED, dumps(modified)))
        return t, at, muts

    async def update(self, uuid: str, changes: Obj, refs: dict[str, list[Obj]] | None = None, *,
                     modified: str | None = None) -> None:
        """Set props (None deletes the property) and replace whole ref lists (``{field: [{"uuid", "attr"}]}``).

        Envelope keys in ``changes`` are ignored (fq_name, type and parent never change); a
        ``<t>_refs`` key in ``changes`` is treated as a ref-list replacement. A list or map
        property is replaced element-wise (the elements it had and no longer has are deleted).
        ``modified`` is the new ``id_perms.last_modified``. New refs are claimed on their targets
        first (as in :meth:`create`). Raises ``NotFound`` when the object does not exist.
        """
        t, at, muts = await self._touch(uuid, modified)
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
        links, muts = stamped(links, at), stamped(muts, at)
        await self._claim(links, targets, at=at + 1)
        try:
            await self._write(muts)
        except BaseException:
            await self._unclaim([m for m in links if m.key in targets], at=at + 1)
            raise

    async def update_elements(self, uuid: str, changes: Sequence[tuple[str, str, Any]], *,
                              shells: Obj | None = None, modified: str | None = None) -> None:
        """Set (value) or delete (value None) single elements: ``(property, position or key, value)``.

        Each element is its own column, so concurrent changes of different elements all survive.
        ``shells``: the ``prop:<name>`` shell of each touched collection (so the property reads
        back as set). Raises ``NotFound`` when the object does not exist.
        """
        t, at, muts = await self._touch(uuid, modified)
        for name, shell in (shells or {}).items():
            muts.append(Mutation(UUID_TABLE, uuid, col_prop(name), dumps(shell)))
        for name, pos, value in changes:
            coll = self.layout(t, name)
            if coll is None:
                raise ValueError(f"{name} is not a list or map property of {t}")
            muts.append(Mutation(UUID_TABLE, uuid, coll.column(name, pos), None if value is None else dumps(value)))
        await self._write(stamped(muts, at))

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
        t, at, muts = await self._touch(uuid, modified)
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
        links, muts = stamped(links, at), stamped(muts, at)
        await self._claim(links, targets, at=at + 1)
        try:
            await self._write(muts)
        except BaseException:
            await self._unclaim(links, at=at + 1)
            raise

    async def relax_ref(self, uuid: str, ref_uuid: str) -> None:
        """Mark ``uuid``'s ref to ``ref_uuid`` as relaxed for delete (``relaxbackref:<uuid>`` on ``ref_uuid``)."""
        await self._send([Mutation(UUID_TABLE, ref_uuid, col_relax(uuid), NULL)])

    # --- guarded delete ---------------------------------------------------------------------------
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
