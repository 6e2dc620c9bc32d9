"""The object form every layer of contrail-api agrees on.

An object is a plain dict in the API's underscore form, exactly what a GET returns minus the
hrefs, e.g.::

    {"uuid": "c626c10d-...", "type": "virtual_network", "fq_name": ["default-domain", "p1", "vn1"],
     "parent_type": "project", "parent_uuid": "f339b1d5-...",
     "display_name": "vn1", "id_perms": {...}, "perms2": {...}, "annotations": {"key_value_pair": [...]},
     "network_ipam_refs": [{"to": [...], "uuid": "1f50...", "attr": {...}}],
     # only on reads, derived from other objects:
     "virtual_machine_interfaces": [{"to": [...], "uuid": "..."}],              # children
     "virtual_machine_interface_back_refs": [{"to": [...], "uuid": "...", "attr": ...}]}

``type`` is the object type (underscore form). ``parent_type`` is a resource type (hyphen
form) as the client sends it, absent for top-level objects. Ref lists hold the target's
uuid and fq_name; ``attr`` may be null. List and map properties are in their wrapper form
(``{"key_value_pair": [...]}``) here; the store keeps each element in a column of its own.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

Obj = dict[str, Any]

# Keys of an object that are not properties, refs, children or back-refs.
ENVELOPE = ("uuid", "type", "fq_name", "parent_type", "parent_uuid", "name")


def fq_str(fq_name: list[str]) -> str:
    return ":".join(fq_name)


class ConfigError(Exception):
    """A client-visible error: HTTP ``status`` with a plain-text message."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(ConfigError):
    status = 404


class Conflict(ConfigError):
    status = 409


class Unavailable(ConfigError):
    """The replica cannot serve this request now (e.g. no ZooKeeper session for a write)."""

    status = 503


class OutcomeUnknown(ConfigError):
    """A write timed out and could not be undone: it may still apply (HTTP 504, never retried by
    HAProxy: a retry on another replica could be shadowed by the late undo)."""

    status = 504


class RequestState:
    """What one request has done so far; shared by every task and thread it spawns (a mutable
    object in a context variable, so copies of the context see the same one)."""

    __slots__ = ("wrote",)

    def __init__(self) -> None:
        self.wrote = False


REQUEST_STATE: ContextVar[RequestState | None] = ContextVar("request_state", default=None)


def mark_write() -> None:
    """Called before the first write a request sends (Cassandra or ZooKeeper): from then on a
    failure may have left a trace, so the request's error is never blamed on its input."""
    st = REQUEST_STATE.get()
    if st is not None:
        st.wrote = True


def wrote() -> bool:
    st = REQUEST_STATE.get()
    return st is not None and st.wrote
