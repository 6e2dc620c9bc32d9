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
generator then tries the next collector). Record ids make re-sends idempotent downstream.

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
MAX_BATCH_RECORDS = 5000
MESSAGE_PARTITIONS = 8
UVE_REFRESH_S = 10.0  # generators re-send their UVE state this often
UVE_STALE_S = 35.0  # an origin not heard from for this long drops out of the aggregated UVE


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
