"""Process liveness by PID (we only ever signal processes we started)."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie has exited: it only waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # the state follows the command name in parentheses, which may itself hold spaces or ')'
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # it vanished meanwhile
        return False
    except IndexError:
        return True
