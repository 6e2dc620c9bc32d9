"""ZooKeeper paths of the contrail-api coordination (without the cluster prefix), and the escape of
a name inside one znode name.

A ``/`` or ``%`` inside an fq_name, and every character that is not printable ASCII, is
percent-escaped in znode names (*the original would nest nodes on a ``/`` and fail on characters
ZooKeeper refuses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

FQ_LOCK_PATH = "/fq-name-to-uuid"
SUBNET_PATH = "/api-server/subnets"
VN_ID_PATH = "/id/virtual-networks/"
VN_MAX_ID = 1 << 24
VNID_MIN_ALLOC = 1
SG_ID_PATH = "/id/security-groups/id/"
SG_MAX_ID = 1 << 32
SGID_MIN_ALLOC = 8_000_000
SG_RESERVED = "__reserved__"


# Kept as they are in znode names: printable ASCII except '%' (the escape) and '/' (the separator).
# ZooKeeper refuses U+0000-U+001F, U+007F-U+009F, U+D800-U+F8FF and U+FFF0-U+FFFF (and Java sees
# characters beyond U+FFFF as surrogates), so everything else is percent-encoded as UTF-8.
_ZK_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"%", "/"}


def escape(name: str) -> str:
    """A string usable inside one znode name, injectively: every character that is not plain
    printable ASCII, and ``%`` and ``/``, becomes ``%XX`` per UTF-8 byte (``%`` -> ``%25``,
    ``/`` -> ``%2F``, tab -> ``%09``, ``é`` -> ``%C3%A9``). Names of plain ASCII keep the
    original's lock path. Lone surrogates (refused by validation) are encoded as surrogatepass."""
    if all(ch in _ZK_PLAIN for ch in name):
        return name
    out: list[str] = []
    for ch in name:
        if ch in _ZK_PLAIN:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def fq_lock_path(obj_type: str, fq_name: Sequence[str]) -> str:
    """``/fq-name-to-uuid/<obj_type>:<fq:name>`` (without the cluster prefix)."""
    return f"{FQ_LOCK_PATH}/{obj_type.replace('-', '_')}:{escape(':'.join(fq_name))}"


def subnet_path(vn_fq: Sequence[str] | str, subnet_cidr: str) -> str:
    """``/api-server/subnets/<vn-fq-name>:<prefix>/<len>/`` (without the cluster prefix)."""
    fq = vn_fq if isinstance(vn_fq, str) else ":".join(vn_fq)
    net = ipaddress.ip_network(subnet_cidr, strict=False)
    return f"{SUBNET_PATH}/{escape(fq)}:{net.network_address}/{net.prefixlen}/"
