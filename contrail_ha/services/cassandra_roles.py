"""Cassandra's roles, kept by a small process next to every node: ``python -m
contrail_ha.services.cassandra_roles roles.json``.

The nodes run PasswordAuthenticator and CassandraAuthorizer. A fresh ring knows one role, the
default superuser ``cassandra``/``cassandra``; the keeper logs in with it once, replicates
``system_auth`` on every node (up to 3), makes the cluster's own superuser (its password generated
once per cluster) and drops the default one. Then, as that admin, it makes every client's role
with its password, creates the keyspaces the role owns and grants it those only. Every step is
idempotent and every node's keeper does it (whichever comes first), so a node that starts alone,
a ring restarted from its data and an upgrade from an open ring all converge; it runs as part of
the Cassandra container, so the exported Compose files and the local runtime form the roles alike.
Done, it re-checks hourly (a role dropped by hand comes back) and exits only when stopped.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import WhiteListRoundRobinPolicy
from pydantic import BaseModel, ConfigDict, Field

from contrail_ha.services.keyspaces import create_keyspace, replication

log = logging.getLogger("contrail-cassandra-roles")

DEFAULT_SUPERUSER = ("cassandra", "cassandra")  # Cassandra's own, on a ring that has no role yet
RETRY_S = 2.0
RECHECK_S = 3600.0


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)
    keyspaces: list[str] = []  # granted ALL PERMISSIONS (and created by the admin if missing)
    grants: list[str] = []  # further "<permission> ON <resource>" grants


class RolesConfig(BaseModel):
    """``roles.json`` (mode 0600), rendered by ``contrail_ha.rendering.cassandra``."""

    model_config = ConfigDict(extra="forbid")

    ip: str
    port: int
    component: str
    admin: Role
    roles: list[Role]
    keyspace_rf: int = Field(ge=1)
    system_auth_rf: int = Field(ge=1)

    @classmethod
    def load(cls, path: str | Path) -> RolesConfig:
        return cls.model_validate(json.loads(Path(path).read_text()))


class NotYet(Exception):
    """The node cannot be set up now (not serving yet, or its ring makes its first role)."""


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(ip: str, port: int, login: tuple[str, str], timeout: float = 5.0) -> Session:
    """A session to this node only, logged in as ``login``."""
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([ip]), request_timeout=30.0)
    cl = Cluster([ip], port=port, protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                 auth_provider=PlainTextAuthProvider(*login), connect_timeout=timeout,
                 control_connection_timeout=timeout, schema_metadata_enabled=False, token_metadata_enabled=False)
    try:
        return cl.connect()
    except BaseException:
        cl.shutdown()
        raise


def refused(e: BaseException) -> bool:
    """Whether a connect failed because the login was refused (not because the node is down)."""
    errors = getattr(e, "errors", None) or {}
    return isinstance(e, AuthenticationFailed) or any(isinstance(x, AuthenticationFailed) for x in errors.values())


def _reason(e: BaseException) -> str:
    errors = getattr(e, "errors", None)
    if isinstance(errors, dict) and errors:
        e = next(iter(errors.values()))
    return f"{type(e).__name__}: {e}".splitlines()[0][:200]


def admin_session(cfg: RolesConfig) -> Session:
    """A session as the cluster's admin, making the admin first on a ring that has only the default
    superuser."""
    admin = (cfg.admin.name, cfg.admin.password)
    try:
        return connect(cfg.ip, cfg.port, admin)
    except NoHostAvailable as e:
        if not refused(e):
            raise NotYet(f"node {cfg.ip}:{cfg.port}: {_reason(e)}") from e
    try:
        s = connect(cfg.ip, cfg.port, DEFAULT_SUPERUSER)
    except NoHostAvailable as e:
        raise NotYet(f"neither {cfg.admin.name} nor the default superuser can log in yet: {_reason(e)}") from e
    try:
        replicate_system_auth(s, cfg.system_auth_rf)
        s.execute(f"CREATE ROLE IF NOT EXISTS {quoted(cfg.admin.name)} WITH PASSWORD = %s AND SUPERUSER = true "
                  "AND LOGIN = true", (cfg.admin.password,))
        log.info("made the cluster's superuser %s (replacing the default one)", cfg.admin.name)
    finally:
        s.cluster.shutdown()
    try:
        return connect(cfg.ip, cfg.port, admin)
    except NoHostAvailable as e:
        raise NotYet(f"{cfg.admin.name} made but cannot log in yet: {_reason(e)}") from e


def replicate_system_auth(s: Session, rf: int) -> bool:
    """``system_auth`` on ``rf`` nodes (Cassandra makes it on one): a login must not depend on one
    node. True if it was changed."""
    row = s.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'system_auth'").one()
    have = dict(row.replication) if row is not None else {}
    if have.get("class", "").endswith("SimpleStrategy") and have.get("replication_factor") == str(rf):
        return False
    s.execute(f"ALTER KEYSPACE system_auth WITH replication = {replication(rf)}")
    log.info("system_auth replicated on %d nodes (was %s)", rf, have)
    return True


def ensure(cfg: RolesConfig) -> None:
    """Every role, keyspace and grant of ``cfg`` in place; the default superuser gone."""
    s = admin_session(cfg)
    try:
        replicate_system_auth(s, cfg.system_auth_rf)
        s.execute(f"DROP ROLE IF EXISTS {quoted(DEFAULT_SUPERUSER[0])}")
        # stored again with the node's bcrypt cost (a cluster made before it was lowered)
        s.execute(f"ALTER ROLE {quoted(cfg.admin.name)} WITH PASSWORD = %s", (cfg.admin.password,))
        keyspaces = list(dict.fromkeys(ks for r in cfg.roles for ks in r.keyspaces))
        for ks in keyspaces:
            s.execute(create_keyspace(ks, cfg.keyspace_rf))
        if keyspaces and not s.cluster.control_connection.wait_for_schema_agreement(wait_time=30):
            raise NotYet("no schema agreement after 30 s")
        for r in cfg.roles:
            s.execute(f"CREATE ROLE IF NOT EXISTS {quoted(r.name)} WITH PASSWORD = %s AND LOGIN = true", (r.password,))
            s.execute(f"ALTER ROLE {quoted(r.name)} WITH PASSWORD = %s", (r.password,))  # a rotated secret
            for ks in r.keyspaces:
                s.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE {quoted(ks)} TO {quoted(r.name)}")
            for g in r.grants:
                s.execute(f"GRANT {g} TO {quoted(r.name)}")
    finally:
        s.cluster.shutdown()


def keep(cfg: RolesConfig) -> None:
    """:func:`ensure` until it succeeds, then again every :data:`RECHECK_S`."""
    last_said = 0.0
    while True:
        try:
            ensure(cfg)
        except Exception as e:
            if time.monotonic() - last_said > 30:  # the node is starting: say why, not every 2 s
                log.info("roles of %s not in place yet: %s", cfg.component, _reason(e))
                last_said = time.monotonic()
            time.sleep(RETRY_S)
            continue
        log.info("roles of %s in place: %s", cfg.component, ", ".join(r.name for r in [cfg.admin, *cfg.roles]))
        time.sleep(RECHECK_S)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.exit("usage: python -m contrail_ha.services.cassandra_roles roles.json")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)  # a node not up yet is expected, said above
    keep(RolesConfig.load(args[0]))


if __name__ == "__main__":
    main()
