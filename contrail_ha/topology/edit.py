"""Edits of a topology file that keep it as the user wrote it (comments, order), for ``contrail-ha scale``."""

from __future__ import annotations

import re

from contrail_ha.errors import ContrailHaError

# what ``scale`` accepts -> the key under ``services:``
SCALABLE = {"config-api": "config_api_replicas", "analytics-api": "analytics_api_replicas"}
MAX_REPLICAS = 5


class EditError(ContrailHaError, ValueError):
    """A scale request that cannot be applied; the message says why."""


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, int]:
    """``["config-api=3", "analytics-api=2"]`` -> ``{"config_api_replicas": 3, ...}``."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise EditError(f"{item!r}: expected NAME=REPLICAS, e.g. config-api=2")
        if name not in SCALABLE:
            raise EditError(f"{name!r} cannot be scaled; scalable: {', '.join(SCALABLE)} "
                            "(the clustered stores follow the hosts' roles in the topology)")
        try:
            n = int(value)
        except ValueError:
            raise EditError(f"{item!r}: replicas must be a whole number") from None
        if not 1 <= n <= MAX_REPLICAS:
            raise EditError(f"{item!r}: replicas per host must be between 1 and {MAX_REPLICAS}")
        out[SCALABLE[name]] = n
    return out


def set_services(text: str, values: dict[str, int]) -> str:
    """``text`` with ``services.<key>: <value>`` set for each of ``values`` (added where missing)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^services:\s*(#.*)?$", line)), None)
    if start is None:
        if any(re.match(r"^services:", line) for line in lines):
            raise EditError("services: is written inline; write it as a block to scale it")
        lines += ["services:"] + [f"  {k}: {v}" for k, v in values.items()]
        return "\n".join(lines) + "\n"
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t", "#"))):
        end += 1
    block = lines[start + 1:end]
    indent = next((re.match(r"^(\s+)\S", line).group(1) for line in block  # type: ignore[union-attr]
                   if re.match(r"^\s+[a-z_]+:", line)), "  ")
    for key, value in values.items():
        pat = re.compile(rf"^(\s+){key}:\s*[^#\s]*(\s*#.*)?$")
        for i, line in enumerate(block):
            m = pat.match(line)
            if m:
                block[i] = f"{m.group(1)}{key}: {value}{m.group(2) or ''}"
                break
        else:
            last = max((i for i, line in enumerate(block) if line.strip() and not line.lstrip().startswith("#")),
                       default=-1)
            block.insert(last + 1, f"{indent}{key}: {value}")
    return "\n".join(lines[:start + 1] + block + lines[end:]) + "\n"
