"""contrail-api's config DB: Cassandra in the original thrift-style wide-row layout (§1a).

Keyspace ``config_db_uuid`` (``<prefix>_config_db_uuid`` with a prefix) holds three tables
and keyspace ``useragent`` one, each ``(key blob, column1 blob, value text, PRIMARY KEY (key,
column1))``:

* ``obj_uuid_table`` - one row per object (key = uuid). Columns: ``fq_name``, ``type``,
  ``parent_type``, ``META:latest_col_ts``, ``prop:<name>`` (JSON), ``parent:<type>:<uuid>``,
  ``ref:<type>:<uuid>`` (``{"attr":…, "is_weakref":false}``); written on *other* rows:
  ``children:<type>:<uuid>`` (the parent's row), ``backref:<type>:<uuid>`` (each ref target's
  row; refs between two objects of one type are ``ref:`` on both rows instead),
  ``relaxbackref:<uuid>`` (the referred object's row). Object types are underscore form.
* ``obj_fq_name_table`` - row = object type, column ``<fq:name:joined>:<uuid>``, value null.
* ``obj_shared_table`` - row = object type, column ``<share_type>:<share_id>:<uuid>``, value rwx.
* ``useragent.useragent_keyval_table`` - row = key, one column ``value``.

Choices (documented deviations are marked *):

* List and map properties are element columns ``propl:<name>:<position>`` /
  ``propm:<name>:<key>`` as in the original, beside a ``prop:<name>`` shell (see :mod:`rows`):
  concurrent element updates of different elements all survive.
* Writes that point at other rows (a create's parent and ref targets, an update's or
  ref-update's new refs) *claim* them first: the link columns are written on the target rows,
  then each target row is read back (QUORUM) and must exist without a fresh delete mark. A
  delete writes its mark first, then reads its links. Of a racing pair at least one sees the
  other, so no child outlives its parent and no ref outlives its target (docs/integrity.md).
* Children are ordered by the ``WRITETIME`` of their ``children:`` column (the original reads
  the thrift column timestamp); the column value stays JSON null as in the original.
* A create is one LOGGED batch holding the object's row, the parent's ``children:`` column,
  the targets' ``backref:`` columns *and* the fq-name column (*the original sends the fq-name
  insert after the batch; one batch makes the create atomic). When the batch would exceed
  Cassandra's multi-partition batch limit (``batch_size_fail_threshold``, 50 KiB by default) the
  bulky columns go first, one single-partition batch per row, and a small LOGGED "commit" batch
  with ``type``/``fq_name`` and the fq-name column makes the object visible last: a crash in
  between leaves only invisible columns under an unused uuid (so the ZooKeeper stale-lock rule
  applies). Updates whose batch is too large are split per partition likewise.
* While the driver holds a node down, and after a batchlog write timed out, a batch is applied
  per partition (the mutations are idempotent): Cassandra's failure detector convicts a dead
  node seconds after the driver lost its connections, and until then the coordinator may pick it
  for the batchlog and wait out the write timeout.
* A create whose write timed out (outcome unknown) or completed after its deadline is *settled*
  (docs/integrity.md): its row is marked and read at QUORUM; invisible, it is revoked with
  tombstones just after its write time, so it never surfaces later through batch-log replay (503,
  safe to retry, also on another replica: the retry's writes are later); visible, it applied and
  may carry children already, so it stands (acknowledged within its deadline, else 504
  :class:`OutcomeUnknown`). When settling fails too, the create fails with 504.
* Every read and write uses one consistency level (QUORUM by default); the driver knows every
  node and has no VIP. Keyspaces and tables are created with ``IF NOT EXISTS`` and a
  deterministic table ``ID`` (uuid5 of ``keyspace.table``), so replicas creating them at the
  same moment converge on one definition, then the store waits for schema agreement.

Errors of an unreachable or degraded cluster raise :class:`objects.Unavailable` (HTTP 503).
Queries are issued with ``execute_async``; the driver's callbacks resolve asyncio futures via
``loop.call_soon_threadsafe`` (no thread per query).

The package's modules: :mod:`.session` (connection, schema, the asyncio bridge, single-row reads,
the fq-name cache), :mod:`.crud` (create / read / update / delete, claims, elements, refs, the
guarded delete), :mod:`.names` (names, lists, sharing, useragent key/value); the row codec is
:mod:`contrail_ha.services.config_api.rows`. :class:`ConfigStore` is their composition. Every
name importers use is re-exported here, as when this was one module.
"""

from contrail_ha.services.config_api.objects import Unavailable as Unavailable
from contrail_ha.services.config_api.rows import (
    Collection,
    Layout,
    Links,
    Mutation,
    bounds,
    col_backref,
    col_child,
    col_fq,
    col_parent,
    col_prop,
    col_ref,
    col_relax,
    col_shared,
    decode_row,
    fq_hits,
    otype,
    parse_fq_col,
    ref_type_of,
    ref_value,
    share_entries,
)
from contrail_ha.services.config_api.store.crud import Objects
from contrail_ha.services.config_api.store.names import MultiMatch, Names
from contrail_ha.services.config_api.store.session import BATCH_LIMIT as BATCH_LIMIT
from contrail_ha.services.config_api.store.session import CLAIM_WAIT_S as CLAIM_WAIT_S
from contrail_ha.services.config_api.store.session import FANOUT as FANOUT
from contrail_ha.services.config_api.store.session import FQ_CACHE_SIZE as FQ_CACHE_SIZE
from contrail_ha.services.config_api.store.session import FQ_TABLE as FQ_TABLE
from contrail_ha.services.config_api.store.session import GC_GRACE_SECONDS as GC_GRACE_SECONDS
from contrail_ha.services.config_api.store.session import KEYSPACE as KEYSPACE
from contrail_ha.services.config_api.store.session import KV_TABLE as KV_TABLE
from contrail_ha.services.config_api.store.session import MAX_STATEMENTS as MAX_STATEMENTS
from contrail_ha.services.config_api.store.session import SHARED_TABLE as SHARED_TABLE
from contrail_ha.services.config_api.store.session import USERAGENT_KEYSPACE as USERAGENT_KEYSPACE
from contrail_ha.services.config_api.store.session import UUID_TABLE as UUID_TABLE
from contrail_ha.services.config_api.store.session import StoreSession as StoreSession
from contrail_ha.services.config_api.store.session import _unavailable as _unavailable

# Re-exported: the row codec's names are part of the store's interface.
__all__ = [
    "Collection",
    "ConfigStore",
    "Layout",
    "Links",
    "MultiMatch",
    "Mutation",
    "bounds",
    "col_backref",
    "col_child",
    "col_fq",
    "col_parent",
    "col_prop",
    "col_ref",
    "col_relax",
    "col_shared",
    "decode_row",
    "fq_hits",
    "otype",
    "parse_fq_col",
    "ref_type_of",
    "ref_value",
    "share_entries",
]


class ConfigStore(Objects, Names):
    """The config DB of one contrail-api replica (async API over cassandra-driver)."""
