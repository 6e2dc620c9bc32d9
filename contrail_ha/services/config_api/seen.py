"""De-duplication of notifications: which sequence numbers of one publisher were already handled.

A publisher re-sends what it had not seen confirmed after a reconnect, so a consumer may get a
message twice; it handles each (publisher, sequence number) once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# a republish is never further behind than the publisher's buffer (notify.MAX_PENDING), doubled
SEEN_GAP = 2 * 4096


@dataclass
class SeenSequences:
    """Sequence numbers seen from one publisher instance: all up to ``low``, plus ``above``."""

    low: int
    above: set[int] = field(default_factory=set)

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was seen before."""
        if seq <= self.low or seq in self.above:
            return False
        self.above.add(seq)
        while self.low + 1 in self.above:
            self.low += 1
            self.above.discard(self.low)
        if len(self.above) > SEEN_GAP:  # a gap that will never fill: forget it
            self.low, self.above = max(self.above), set()
        return True
