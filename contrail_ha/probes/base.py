"""What every probe reports: checks read from the components themselves.

One module per component (``probes/<component>.py``). Probes run in a process whose network
namespace reaches the hosts (the CLI enters the client namespace first), and run commands
that must be local to a host through ``runtime.netns.exec_argv``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    """One health fact: ``component`` on ``target`` (a host name, or ``cluster``)."""

    component: str
    target: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component, "target": self.target, "ok": self.ok,
                "detail": self.detail, "data": self.data}


def read_login(f: Path, what: str) -> tuple[str, str]:
    """``(user, password)`` from a rendered login file (``{"user", "password"}``, readable on its
    host only, e.g. a monitor's); RuntimeError naming ``what`` when it cannot be read."""
    try:
        creds = json.loads(f.read_text())
        return str(creds["user"]), str(creds["password"])
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"no {what} in {f}: {e.__class__.__name__}") from e
