"""The analytics plane: generators -> collectors -> Kafka -> aggregators -> analytics Cassandra -> analytics-api.

- ``protocol``: what generators send (UVEs, messages, object logs), the UVE types and tables, the
  Kafka topics and keys. One module every other part imports.
- ``generator``: the client library every service and node agent uses to send to a collector.
- ``collector``: HTTP on 8086 in every analytics host; produces to Kafka with acks=all.
- ``aggregator``: one per analytics host; a Kafka consumer group splits the partitions, UVE state
  is rebuilt from the compacted UVE topics on take-over, alarms are evaluated, all is written to
  the analytics Cassandra.
- ``uve`` (aggregation of one UVE over its origins), ``alarms`` (rules), ``store`` (Cassandra schema).
- ``api``: contrail-analytics-api (8081); ``query``: ``POST /analytics/query``.
- ``node_agent``: one per host; NodeStatus of the host's processes and components.
"""
