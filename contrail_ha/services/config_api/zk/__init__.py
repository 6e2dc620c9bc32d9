"""Coordination of the contrail-api replicas through ZooKeeper, as the original (§1b).

All paths live under ``/<cluster_id>``:

* ``/fq-name-to-uuid/<obj_type>:<fq:name>`` (value uuid) - the create lock of an fq_name,
  persistent, with the original's stale-lock rule.
* ``/id/virtual-networks/%010d`` (VNID = index + 1) and ``/id/security-groups/id/%010d``
  (SG id = index + 8000000, index 0 reserved as ``__reserved__``) - :class:`IndexAllocator`.
* ``/api-server/subnets/<vn-fq-name>:<prefix>/<len>/%010d`` - one znode per allocated
  address, the index being the address's offset in the subnet (value: its owner).

kazoo is threaded: the :class:`Coordinator`'s ``async`` methods run its blocking calls with
``asyncio.to_thread``; :class:`IndexAllocator` methods are blocking and thread-safe (call them
with ``asyncio.to_thread`` from the event loop). A ``/`` or ``%`` inside an fq_name, and every
character that is not printable ASCII, is percent-escaped in znode names (*the original would
nest nodes on a ``/`` and fail on characters ZooKeeper refuses).

One module per recipe, in the manner of ``kazoo.recipe``:

* :mod:`.session` - :class:`Session`: the session, its listeners, call/retry and the generic
  blocking primitives (create/get/delete/replace/children).
* :mod:`.paths` - the paths, :func:`escape`, :func:`fq_lock_path`, :func:`subnet_path`.
* :mod:`.fqlock` - the fq-name create lock with its stale rule.
* :mod:`.allocators` - :class:`IndexAllocator`, :class:`IdAllocator` and the VN / SG id allocators.
* :mod:`.subnets` - one address allocator per subnet.
* :mod:`.coordinator` - :class:`Coordinator`: the session with those recipes, as contrail-api uses it.

Every name is re-exported here: ``from contrail_ha.services.config_api.zk import ...`` works as
it did when this was one module.
"""

from contrail_ha.services.config_api.zk.allocators import (
    Exhausted,
    IdAllocator,
    IndexAllocator,
    security_group_allocator,
    virtual_network_allocator,
)
from contrail_ha.services.config_api.zk.coordinator import Coordinator
from contrail_ha.services.config_api.zk.fqlock import STALE_LOCK_SECONDS
from contrail_ha.services.config_api.zk.paths import (
    FQ_LOCK_PATH,
    SG_ID_PATH,
    SG_MAX_ID,
    SG_RESERVED,
    SGID_MIN_ALLOC,
    SUBNET_PATH,
    VN_ID_PATH,
    VN_MAX_ID,
    VNID_MIN_ALLOC,
    escape,
    fq_lock_path,
    subnet_path,
)
from contrail_ha.services.config_api.zk.session import NO_ZK, RECONNECT_GRACE_S, SESSION_TIMEOUT_S, Session
from contrail_ha.services.config_api.zk.subnets import SubnetAllocators

__all__ = [
    "FQ_LOCK_PATH",
    "NO_ZK",
    "RECONNECT_GRACE_S",
    "SESSION_TIMEOUT_S",
    "SGID_MIN_ALLOC",
    "SG_ID_PATH",
    "SG_MAX_ID",
    "SG_RESERVED",
    "STALE_LOCK_SECONDS",
    "SUBNET_PATH",
    "VNID_MIN_ALLOC",
    "VN_ID_PATH",
    "VN_MAX_ID",
    "Coordinator",
    "Exhausted",
    "IdAllocator",
    "IndexAllocator",
    "Session",
    "SubnetAllocators",
    "escape",
    "fq_lock_path",
    "security_group_allocator",
    "subnet_path",
    "virtual_network_allocator",
]
