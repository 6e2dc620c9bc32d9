"""Kafka's users and ACLs, written into ZooKeeper before the broker starts: ``python -m
contrail_ha.services.kafka_users users.json -- java ... kafka.Kafka server.properties``.

The brokers take only SASL_PLAINTEXT with SCRAM-SHA-512 and authorize with AclAuthorizer
(nothing allowed without an ACL). In ZooKeeper mode a SCRAM credential lives in ZooKeeper, and
the brokers' own (inter-broker) one must be there before any broker starts: Kafka's documented
way is ``kafka-configs --zookeeper``. This launcher does the same, in Python, in the broker's
container: every user's credential (salted, as Kafka stores it: never the password) under
``<chroot>/config/users/<name>`` and every ACL under ``<chroot>/kafka-acl[-extended]``, each only
where it differs (a restart writes nothing), with the change notice a running broker needs for a
changed credential. Then it becomes the broker (``exec``: same pid, signals and container log).
Brokers read the ACLs at start; a changed ACL set applies as each broker restarts.

ZooKeeper itself: the launcher logs in as the brokers do (SASL DIGEST-MD5, their identity) and
every znode of the chroot belongs to that identity, as ``zookeeper.set.acl`` makes the brokers'
own: writable by it only, readable by anyone except the credentials (Kafka's "sensitive" paths).
A chroot from before (world-writable) is locked the same way at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import time
from collections import defaultdict
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, READ_ACL_UNSAFE, make_acl
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("contrail-kafka-users")

MECHANISM = "SCRAM-SHA-512"
ITERATIONS = 4096  # Kafka's minimum for SCRAM-SHA-512
RETRY_S = 2.0


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)


class Acl(BaseModel):
    """Allow ``user`` ``operations`` on a resource (``Topic``, ``Group``, ``Cluster``), by name
    (``LITERAL``; ``*`` for every one) or name prefix (``PREFIXED``), from any host."""

    model_config = ConfigDict(extra="forbid")

    user: str
    resource: str
    pattern: str = "LITERAL"
    name: str
    operations: list[str]


class UsersConfig(BaseModel):
    """``users.json`` (mode 0600), rendered by ``contrail_ha.rendering.kafka``."""

    model_config = ConfigDict(extra="forbid")

    zookeeper: str  # "ip:port,..." without the chroot
    chroot: str  # the brokers' chroot, e.g. /<cluster-id>-kafka
    zookeeper_user: str | None = None  # the brokers' SASL identity in ZooKeeper (None: anonymous)
    zookeeper_password: str | None = Field(default=None, repr=False)
    users: list[User]
    acls: list[Acl]

    @classmethod
    def load(cls, path: str | Path) -> UsersConfig:
        return cls.model_validate(json.loads(Path(path).read_text()))


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(stored key, server key) of RFC 5802 with SHA-512, as Kafka's ScramFormatter makes them."""
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha512).digest()
    return hashlib.sha512(client_key).digest(), server_key


def credential(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """Kafka's credential string ``salt=..,stored_key=..,server_key=..,iterations=..``."""
    salt = salt if salt is not None else secrets.token_bytes(32)
    stored, server = scram_keys(password, salt, iterations)
    return f"salt={_b64(salt)},stored_key={_b64(stored)},server_key={_b64(server)},iterations={iterations}"


def matches(cred: str, password: str) -> bool:
    """Whether a stored credential string is ``password``'s (re-derived with its own salt)."""
    try:
        fields = dict(kv.split("=", 1) for kv in cred.split(","))
        salt = base64.b64decode(fields["salt"])
        want = credential(password, salt, int(fields["iterations"]))
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(want, cred)


def acl_nodes(acls: list[Acl]) -> dict[str, bytes]:
    """ZooKeeper path (under the chroot) -> data of every ACL resource, as AclAuthorizer stores them."""
    by_path: dict[str, list[dict[str, str]]] = defaultdict(list)
    for a in acls:
        base = "/kafka-acl" if a.pattern == "LITERAL" else f"/kafka-acl-extended/{a.pattern.lower()}"
        for op in a.operations:
            by_path[f"{base}/{a.resource}/{a.name}"].append(
                {"principal": f"User:{a.user}", "permissionType": "Allow", "operation": op, "host": "*"})
    return {p: json.dumps({"version": 1, "acls": sorted(v, key=lambda e: (e["principal"], e["operation"]))},
                          sort_keys=True).encode() for p, v in by_path.items()}


# Kafka's "sensitive" roots (ZkData.sensitiveRootPaths): not even readable by others.
SENSITIVE = ("/config/users", "/config/brokers", "/delegation_token")


def acls_for(relative: str, user: str) -> list[ACL]:
    """The ACL the brokers give a znode at ``relative`` (a chroot path) with zookeeper.set.acl."""
    own = [make_acl("sasl", user, all=True)]
    return own if relative.startswith(SENSITIVE) else own + list(READ_ACL_UNSAFE)


def lock(zk: KazooClient, root: str, user: str) -> int:
    """Give every znode under ``root`` (and ``root``) the brokers' ACL where it differs (a chroot
    made before zookeeper.set.acl); returns how many were changed. A znode gone meanwhile is skipped."""
    changed = 0
    todo = [root]
    while todo:
        path = todo.pop()
        try:
            have, _ = zk.get_acls(path)
            want = acls_for(path[len(root):], user)
            if sorted(map(str, have)) != sorted(map(str, want)):
                zk.set_acls(path, want)
                changed += 1
            todo.extend(f"{path}/{c}" for c in zk.get_children(path))
        except NoNodeError:
            continue
    return changed


def _acl(rel: str, user: str | None) -> list[ACL] | None:
    """The ACL a znode at ``rel`` (under the chroot) is made with: Kafka's (None: anonymous, open)."""
    return acls_for(rel, user) if user else None


def _ensure(zk: KazooClient, root: str, rel: str, user: str | None) -> None:
    """The chroot and every znode down to ``rel``, each made with its own ACL (kazoo's ensure_path
    gives them all one)."""
    if not zk.exists(root):
        try:
            zk.create(root, b"", acl=_acl("", user), makepath=True)
        except NodeExistsError:
            pass
    path = root
    for part in [p for p in rel.split("/") if p]:
        path = f"{path}/{part}"
        if not zk.exists(path):
            try:
                zk.create(path, b"", acl=_acl(path[len(root):], user))
            except NodeExistsError:
                pass


def _put(zk: KazooClient, root: str, rel: str, data: bytes, user: str | None) -> None:
    _ensure(zk, root, rel.rsplit("/", 1)[0], user)
    try:
        zk.set(root + rel, data)
    except NoNodeError:
        zk.create(root + rel, data, acl=_acl(rel, user))


def write(zk: KazooClient, cfg: UsersConfig) -> list[str]:
    """Every credential and ACL of ``cfg`` in ZooKeeper, the chroot locked; returns what was changed."""
    root = cfg.chroot.rstrip("/")
    user = cfg.zookeeper_user
    changed: list[str] = []
    for u in cfg.users:
        rel = f"/config/users/{u.name}"
        try:
            raw, _ = zk.get(root + rel)
            have = json.loads(raw.decode() or "{}").get("config", {})
        except (NoNodeError, ValueError):
            have = {}
        if matches(have.get(MECHANISM, ""), u.password):
            continue
        _put(zk, root, rel, json.dumps({"version": 1, "config": {**have, MECHANISM: credential(u.password)}}).encode(),
             user)
        _ensure(zk, root, "/config/changes", user)  # a running broker reloads the user on this notice
        zk.create(f"{root}/config/changes/config_change_", json.dumps({"version": 2, "entity_path": f"users/{u.name}"})
                  .encode(), sequence=True, acl=_acl("/config/changes/config_change_", user))
        changed.append(f"user {u.name}")
    for path, data in acl_nodes(cfg.acls).items():
        full = f"{root}{path}"
        try:
            if zk.get(full)[0] == data:
                continue
        except NoNodeError:
            pass
        _put(zk, root, path, data, user)
        changed.append(f"acl {path}")
    if user:
        # Kafka leaves /consumers (the pre-2.0 consumers' node) world-writable whoever makes it: made
        # here first with the brokers' ACL, Kafka finds it and never changes it
        _ensure(zk, root, "/consumers", user)
    if user and (n := lock(zk, root, user)):
        changed.append(f"{n} znodes locked")
    return changed


def client(cfg: UsersConfig) -> KazooClient:
    """A ZooKeeper client logged in as the brokers (SASL DIGEST-MD5) whose znodes are theirs."""
    if not cfg.zookeeper_user:
        return KazooClient(hosts=cfg.zookeeper, timeout=10.0)
    user = cfg.zookeeper_user
    return KazooClient(hosts=cfg.zookeeper, timeout=10.0,
                       sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": cfg.zookeeper_password},
                       default_acl=[make_acl("sasl", user, all=True)])


def prepare(cfg: UsersConfig) -> list[str]:
    """:func:`write` through a ZooKeeper session, retried until ZooKeeper serves."""
    last_said = 0.0
    while True:
        zk = client(cfg)
        try:
            zk.start(timeout=15)
            return write(zk, cfg)
        except (KazooTimeoutError, KazooException) as e:
            if time.monotonic() - last_said > 30:
                log.info("zookeeper not serving yet (%s): retrying", e or type(e).__name__)
                last_said = time.monotonic()
        finally:
            zk.stop()
            zk.close()
        time.sleep(RETRY_S)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m contrail_ha.services.kafka_users users.json -- <broker command>")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kazoo").setLevel(logging.WARNING)
    cfg = UsersConfig.load(args[0])
    changed = prepare(cfg)
    log.info("users and ACLs in ZooKeeper: %s", ", ".join(changed) if changed else "unchanged")
    sys.stdout.flush()
    os.execvp(args[2], args[2:])  # the broker, in this process


if __name__ == "__main__":
    main()
