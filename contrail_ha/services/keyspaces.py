"""The Cassandra keyspaces our services own, named in one place: the stores create their tables in
them, and each cluster's role keeper (:mod:`contrail_ha.services.cassandra_roles`) creates them and
grants them to their one client role. Imports nothing, so rendering can name them too."""

from __future__ import annotations

CONFIG_KEYSPACE = "config_db_uuid"  # the original's names (contrail-api's config DB)
USERAGENT_KEYSPACE = "useragent"
ANALYTICS_KEYSPACE = "ContrailAnalyticsCql"  # the analytics DB (collectors' records, UVEs)


def replication(rf: int) -> str:
    """The replication map of every keyspace of ours (SimpleSnitch, one data centre)."""
    return f"{{'class': 'SimpleStrategy', 'replication_factor': {int(rf)}}}"


def create_keyspace(ks: str, rf: int) -> str:
    """The CQL that creates keyspace ``ks`` if it is missing."""
    return f'CREATE KEYSPACE IF NOT EXISTS "{ks}" WITH replication = {replication(rf)}'
