"""Connections our services hold to the clustered components, each with a live health state.

Every dependency gets the list of node addresses (never the VIP), fails over between them,
and reports ``(ok, reason)``; a service's ``/health`` is the conjunction (Patroni-style: the
lb checks it). Blocking client libraries run in their own threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cassandra-driver is imported lazily: only services that use Cassandra load it
    from cassandra.cluster import Cluster, Session

log = logging.getLogger(__name__)


class Dependency(ABC):
    """One backing service with a health state."""

    name: str = "dependency"

    def __init__(self) -> None:
        self.ok = False
        self.reason = "not connected yet"
        self.since = time.monotonic()

    def _set(self, ok: bool, reason: str) -> None:
        if ok != self.ok or reason != self.reason:
            log.info("%s: %s (%s)", self.name, "up" if ok else "down", reason)
            self.since = time.monotonic()
        self.ok, self.reason = ok, reason

    @abstractmethod
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin connecting in the background."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def refresh(self) -> None:  # noqa: B027 - optional hook
        """Re-read a state held elsewhere (called before each health answer)."""

    def status(self) -> dict[str, object]:
        return {"ok": self.ok, "reason": self.reason, "for_s": round(time.monotonic() - self.since, 1)}


class Cassandra(Dependency):
    """A cassandra-driver session; ok while a quorum of the ring's nodes is up."""

    def __init__(self, name: str, ips: list[str], port: int, interval: float = 1.0,
                 auth: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.name, self.auth = name, auth
        self.ips, self.port, self.interval = ips, port, interval
        self.cluster: Cluster | None = None
        self.session: Session | None = None
        self._stop = threading.Event()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        threading.Thread(target=self._run, name=f"{self.name}-monitor", daemon=True).start()

    def _connect(self) -> None:
        from contrail_ha.services import cql

        cluster = self.cluster = cql.cluster(self.ips, self.port, connect_timeout=2, auth=self.auth)
        self.session = cluster.connect()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.session is None:
                    self._connect()
                assert self.cluster is not None  # set with the session by _connect, cleared with it below
                hosts = self.cluster.metadata.all_hosts()
                up = sum(1 for h in hosts if h.is_up)
                need = len(self.ips) // 2 + 1
                self._set(up >= need, f"{up}/{len(self.ips)} nodes up, quorum {need}")
            except Exception as e:
                self._set(False, f"no connection: {e.__class__.__name__}: {e}"[:200])
                if self.cluster is not None:
                    try:
                        self.cluster.shutdown()
                    except Exception:
                        pass
                self.cluster = self.session = None
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self.cluster is not None:
            self.cluster.shutdown()


class Kafka(Dependency):
    """Broker metadata from the analyticsdb Kafka cluster; ok while a broker answers."""

    name = "kafka"

    def __init__(self, servers: str, interval: float = 2.0, auth: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.servers, self.interval, self.auth = servers, interval, auth
        self._stop = threading.Event()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        threading.Thread(target=self._run, name="kafka-monitor", daemon=True).start()

    def _run(self) -> None:
        from confluent_kafka.admin import AdminClient

        from contrail_ha.services.kafka_login import client_config

        admin = AdminClient({"bootstrap.servers": self.servers, "socket.timeout.ms": 2000, **client_config(self.auth)})
        while not self._stop.is_set():
            try:
                md = admin.list_topics(timeout=3)
                self._set(bool(md.brokers), f"{len(md.brokers)} brokers")
            except Exception as e:
                self._set(False, f"{e.__class__.__name__}: {e}"[:200])
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
