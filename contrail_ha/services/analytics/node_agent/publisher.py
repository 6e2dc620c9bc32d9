"""Sending on change: a struct is handed to the generator only when it changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

VOLATILE_REFRESH_S = 60.0  # a struct whose only change is volatile (uptimes) is re-sent at most this often
VOLATILE_FIELDS = frozenset({"uptime_s"})


def stable(data: Any) -> Any:
    """``data`` without what changes on its own: uptimes, and the collector link's wording."""
    if isinstance(data, dict):
        return {k: stable(v) for k, v in data.items()
                if k not in VOLATILE_FIELDS and not (k == "description" and data.get("type") == "Collector")}
    if isinstance(data, list):
        return [stable(x) for x in data]
    return data


class UveSink(Protocol):
    """What the publisher sends through (a Generator)."""

    def uve(self, table: str, key: str, struct: str, data: dict[str, Any] | None) -> None: ...


class Publisher:
    """Hands a struct to the generator only when it changed (volatile fields alone: at most every ``refresh`` s)."""

    def __init__(self, gen: UveSink, key: str, refresh: float = VOLATILE_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gen, self.key, self.refresh, self.clock = gen, key, refresh, clock
        self.sent: dict[str, dict[str, Any]] = {}  # table -> struct -> data last sent
        self._stable: dict[tuple[str, str], Any] = {}
        self._at: dict[tuple[str, str], float] = {}

    def publish(self, table: str, struct: str, data: dict[str, Any]) -> bool:
        """Send ``data`` if it differs from what was last sent; True if sent."""
        k, s, now = (table, struct), stable(data), self.clock()
        if k in self._stable:
            last = self.sent[table][struct]
            if data == last or (s == self._stable[k] and now - self._at[k] < self.refresh):
                return False
        self.gen.uve(table, self.key, struct, data)
        self.sent.setdefault(table, {})[struct] = data
        self._stable[k], self._at[k] = s, now
        return True

