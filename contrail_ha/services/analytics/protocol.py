"""The generator protocol and the names every part of the analytics plane shares.

A generator (a service replica, a node agent) sends batches to a collector over HTTP::

    POST http://<analytics-ip>:8086/generator/records
    {"origin": {"source": "ctrl1", "node_type": "Config", "module": "contrail-api",
                "instance_id": "config-api-1"},
     "records": [
       {"kind": "uve", "id": "<hex>", "ts": <us>, "table": "ObjectConfigNode", "key": "ctrl1",
        "struct": "NodeStatus", "data": {...}},                    # data null = delete
       {"kind": "message", "id": "<hex>", "ts": <us>, "seq": 7, "messagetype": "...",
        "category": "", "level": 6, "body": {...}},
       {"kind": "objectlog", "id": "<hex>", "ts": <us>, "table": "ConfigObjectTable",
        "object_id": "virtual_network:default-domain:p:vn1", "messagetype": "...", "body": {...}}]}

The collector answers 200 ``{"accepted": n}`` only once Kafka has acknowledged every record
(acks=all), 400/413 for a bad batch (nothing produced), 503 when Kafka cannot take it (the
generator then tries the next collector). Records are judged one by one: a batch with some bad
records gets 200 ``{"accepted": n, "refused": [{"index": i, "id": ..., "status": 400|413,
"error": ...}]}`` (only the good ones produced); 400/413 when every record is bad. Record ids
make re-sends idempotent downstream.

Limits: a record (its compact JSON, :func:`record_json`) is at most ``MAX_RECORD_BYTES``; the
generator truncates bigger ones (:func:`bound_record`) before queueing them, the collector
refuses them (413 for that record). A batch body is at most ``MAX_BATCH_BYTES``.

Kafka: a UVE goes to topic ``<cluster>-uve-<p>`` (one partition each; ``p`` = djb2 of
``<table>:<key>`` modulo ``uve_partitions``, as the original collector), keyed
``<table>:<key>|<struct>|<origin>`` on a compacted topic, so the latest state of each origin's
struct survives and a new owner can rebuild every UVE of a partition. Messages and object logs
go to ``<cluster>-messages``, keyed by origin (per-generator order is kept).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- UVE types (REST name -> table), as the original's UVE_MAP; lb-node is contrail-ha's own ----------
UVE_TYPES: dict[str, str] = {
    "config-node": "ObjectConfigNode",
    "config-database-node": "ObjectConfigDatabaseInfo",
    "analytics-node": "ObjectCollectorInfo",
    "database-node": "ObjectDatabaseInfo",
    "lb-node": "ObjectLbNode",
}
UVE_TABLES: dict[str, str] = {v: k for k, v in UVE_TYPES.items()}
# Node types (sandesh NodeType names) and the UVE table their NodeStatus goes to.
NODE_TYPE_TABLE: dict[str, str] = {
    "Config": "ObjectConfigNode",
    "ConfigDatabase": "ObjectConfigDatabaseInfo",
    "Analytics": "ObjectCollectorInfo",
    "Database": "ObjectDatabaseInfo",
    "Lb": "ObjectLbNode",
}
# Object-log tables the query API serves besides the message table.
CONFIG_OBJECT_TABLE = "ConfigObjectTable"
MESSAGE_TABLE = "MessageTable"

# Process states (the original's ProcessState names) and connection states.
PROCESS_RUNNING = "PROCESS_STATE_RUNNING"
PROCESS_STOPPED = "PROCESS_STATE_STOPPED"
PROCESS_EXITED = "PROCESS_STATE_EXITED"
PROCESS_BACKOFF = "PROCESS_STATE_BACKOFF"
PROCESS_STARTING = "PROCESS_STATE_STARTING"
FUNCTIONAL, NON_FUNCTIONAL = "Functional", "Non-Functional"
CONN_UP, CONN_DOWN, CONN_INIT = "Up", "Down", "Initializing"

# Message levels (syslog, as sandesh): 3 error, 4 warning, 6 info, 7 debug.
LEVELS = {"SYS_EMERG": 0, "SYS_ALERT": 1, "SYS_CRIT": 2, "SYS_ERR": 3, "SYS_WARN": 4, "SYS_NOTICE": 5,
          "SYS_INFO": 6, "SYS_DEBUG": 7}

MAX_BATCH_BYTES = 4 * 1024 * 1024  # a collector refuses bigger batches with 413
# The collector's producer message.max.bytes (librdkafka's default, set explicitly): the largest Kafka
# message (key + value) it produces. Below the broker's message.max.bytes / topic max.message.bytes
# (Kafka's default 1048588; rendering/kafka.py leaves it), so the broker never refuses one.
KAFKA_MESSAGE_MAX_BYTES = 1_000_000
# One record's compact JSON. Half the Kafka limit: the Kafka value adds the origin (<300 B) and the
# key (<1 KiB) to the record, and a batch still holds several records of this size.
MAX_RECORD_BYTES = 512 * 1024
TRUNCATED = "_truncated"  # the key a truncated record's body/data gets: {"bytes": original, "limit": ...}
MAX_BATCH_RECORDS = 5000
MESSAGE_PARTITIONS = 8
UVE_REFRESH_S = 10.0  # generators re-send their UVE state this often
UVE_STALE_S = 35.0  # an origin not heard from for this long drops out of the aggregated UVE
# A generator whose oldest queued record waits longer than this is stalled (NodeStatus, alarm): longer
# than a collector fail-over plus a Kafka leader election (~15 s), shorter than UVE_STALE_S.
STALL_AFTER_S = 30.0


def now_us() -> int:
    return int(time.time() * 1_000_000)


def new_id() -> str:
    return uuid.uuid4().hex


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Origin(_Strict):
    """Who sends: the original's (source, node type, module, instance id)."""

    source: str = Field(min_length=1, max_length=64)  # host name
    node_type: str = Field(min_length=1, max_length=32)
    module: str = Field(min_length=1, max_length=64)
    instance_id: str = Field(min_length=1, max_length=64)

    def __str__(self) -> str:
        return f"{self.source}:{self.node_type}:{self.module}:{self.instance_id}"


class UveRecord(_Strict):
    kind: Literal["uve"]
    id: str = Field(min_length=1, max_length=64)
    ts: int = Field(ge=0)
    table: str = Field(min_length=1, max_length=64)
    key: str = Field(min_length=1, max_length=512)
    struct: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] | None  # None: this origin's struct is deleted


class MessageRecord(_Strict):
    kind: Literal["message"]
    id: str = Field(min_length=1, max_length=64)
    ts: int = Field(ge=0)
    seq: int = Field(ge=0)
    messagetype: str = Field(min_length=1, max_length=128)
    category: str = Field("", max_length=64)
    level: int = Field(6, ge=0, le=7)
    body: dict[str, Any]


class ObjectLogRecord(_Strict):
    kind: Literal["objectlog"]
    id: str = Field(min_length=1, max_length=64)
    ts: int = Field(ge=0)
    table: str = Field(min_length=1, max_length=64)
    object_id: str = Field(min_length=1, max_length=1024)
    messagetype: str = Field(min_length=1, max_length=128)
    body: dict[str, Any]


Record = Annotated[UveRecord | MessageRecord | ObjectLogRecord, Field(discriminator="kind")]


class Batch(_Strict):
    origin: Origin
    records: list[Record] = Field(max_length=MAX_BATCH_RECORDS)


# --- Kafka -----------------------------------------------------------------------------------------
def djb2(text: str) -> int:
    """The original collector's string hash (djb2, 32-bit)."""
    h = 5381
    for b in text.encode():
        h = ((h << 5) + h + b) & 0xFFFFFFFF
    return h


def uve_partition(table: str, key: str, partitions: int) -> int:
    return djb2(f"{table}:{key}") % partitions


def uve_topic(cluster_id: str, partition: int) -> str:
    return f"{cluster_id}-uve-{partition}"


def uve_topics(cluster_id: str, partitions: int) -> list[str]:
    return [uve_topic(cluster_id, p) for p in range(partitions)]


def messages_topic(cluster_id: str) -> str:
    return f"{cluster_id}-messages"


def consumer_group(cluster_id: str) -> str:
    return f"{cluster_id}-aggregator"


def uve_kafka_key(r: UveRecord, origin: Origin) -> str:
    return f"{r.table}:{r.key}|{r.struct}|{origin}"


def encode(origin: Origin, record: UveRecord | MessageRecord | ObjectLogRecord) -> bytes:
    """The Kafka value: the origin and the record, JSON."""
    return json.dumps({"origin": origin.model_dump(), "record": record.model_dump()},
                      separators=(",", ":")).encode()


def decode(value: bytes) -> tuple[Origin, UveRecord | MessageRecord | ObjectLogRecord]:
    d = json.loads(value)
    batch = Batch.model_validate({"origin": d["origin"], "records": [d["record"]]})
    return batch.origin, batch.records[0]


# --- record limits -------------------------------------------------------------------------------------
AnyRecord = UveRecord | MessageRecord | ObjectLogRecord
_MIN_CUT = 256  # a field is cut to no less than this; below it a container becomes one JSON prefix
_MAX_CHILDREN = 1000  # a bigger oversized container is cut as one JSON prefix (sizing each child is slow)
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def _json(value: Any) -> str:
    """Compact JSON, ASCII (so characters = bytes); odd values (datetimes, sets...) as their str."""
    return _ENCODER.encode(value)


def record_json(record: AnyRecord) -> str:
    """A record as the generator sends it and the collector measures it (what ``MAX_RECORD_BYTES`` bounds)."""
    return _json(record.model_dump())


def _mark(size: int) -> str:
    return f"...[truncated by the generator: {size} bytes]"


def _fit(text: str, budget: int, size: int) -> str:
    """The longest prefix of ``text`` that, with the marker, encodes in ``budget`` bytes (the marker alone if none)."""
    mark = _mark(size)
    k = min(len(text), budget - len(mark) - 2)
    while k > 0:
        cut = text[:k] + mark
        encoded = len(_json(cut))
        if encoded <= budget:
            return cut
        k = min(k - 1, k * (budget - len(mark) - 2) // encoded)  # escapes take several bytes a character
    return mark


def _cut_json(value: Any, budget: int, size: int) -> dict[str, Any]:
    """A container too big to shrink field by field: a prefix of its JSON, and its size."""
    room = budget - len(_json({TRUNCATED: size, "json_prefix": ""}))
    return {TRUNCATED: size, "json_prefix": _fit(_json(value), max(room, 0), size)}


def shrink(value: Any, budget: int, size: int | None = None) -> Any:
    """``value`` with its largest strings/containers cut so that its JSON fits ``budget`` bytes.

    Deterministic: the biggest children share the room fairly (each child over a common cap is
    cut to the cap; smaller ones are kept whole); a string keeps its prefix plus a marker with
    its original size; a container that cannot be cut that way becomes a prefix of its JSON.
    """
    if size is None:
        size = len(_json(value))
    if size <= budget:
        return value
    if isinstance(value, str):
        return _fit(value, budget, size)
    if isinstance(value, dict | list) and 0 < len(value) <= _MAX_CHILDREN:
        keys: list[Any] = list(value) if isinstance(value, dict) else list(range(len(value)))
        sizes = {k: len(_json(value[k])) for k in keys}
        avail = budget - (size - sum(sizes.values()))  # minus the keys and punctuation
        cap: int | None = None
        ordered = sorted(sizes.values())
        for i, s in enumerate(ordered):
            left = len(ordered) - i
            if s * left > avail:
                cap = avail // left
                break
            avail -= s
        if cap is not None and cap >= _MIN_CUT:
            out: Any = dict(value) if isinstance(value, dict) else list(value)
            for k in keys:
                if sizes[k] > cap:
                    out[k] = shrink(value[k], cap, sizes[k])
            if len(_json(out)) <= budget:
                return out
    return _cut_json(value, budget, size)


def bound_record(record: AnyRecord, limit: int = MAX_RECORD_BYTES) -> tuple[AnyRecord, str, int | None]:
    """``(record, its JSON, original size if it was truncated)``: the record fits ``limit`` bytes.

    Only the free-form payload (a UVE's ``data``, a message's or object log's ``body``) is cut; it
    gets ``TRUNCATED: {"bytes": <original record size>, "limit": limit}`` so readers know.
    """
    text = record_json(record)
    size = len(text)
    if size <= limit:
        return record, text, None
    field = "data" if isinstance(record, UveRecord) else "body"
    payload = getattr(record, field)
    marker = {"bytes": size, "limit": limit}
    payload_size = len(_json(payload))
    budget = limit - (size - payload_size) - len(_json({TRUNCATED: marker})) - 1
    cut = shrink(payload, budget, payload_size)
    if not isinstance(cut, dict):
        cut = _cut_json(payload, budget, payload_size)
    cut = {**cut, TRUNCATED: marker}
    out = record.model_copy(update={field: cut})
    text = record_json(out)
    if len(text) > limit:  # only if the fixed fields alone are near the limit: keep the marker only
        out = record.model_copy(update={field: {TRUNCATED: marker}})
        text = record_json(out)
    return out, text, size
