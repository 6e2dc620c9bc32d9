"""The node agent (the original's contrail-nodemgr): one per host, reporting its processes and components.

Run inside the host's namespaces as ``python -m contrail_ha.services.analytics.node_agent agent.json``.

Every ``interval`` it reads the ``state.json`` of each role supervisor of its host and sends, per UVE
table the host has (``config-node``, ``config-database-node``, ``analytics-node``, ``database-node``,
``lb-node``; key = host name), a ``NodeStatus`` with the ``process_info`` of that table's processes
and the agent's own ``process_status``. Every ``probe_interval`` (``rabbitmq_interval`` for
``rabbitmqctl``, which starts an Erlang VM) it asks the host's components for their state, as the
local node sees it: ``ZookeeperStatus``, ``RabbitmqStatus``, ``CassandraStatus`` (config DB and
analytics DB), ``KafkaStatus``, ``HaproxyStatus``, ``LbAgentStatus``, ``BirdStatus``.

A struct is handed to the generator only when it changed (the generator re-sends the whole state
as heartbeat). Probes that block run in threads, one at a time each, under their own timeouts, so
a hung component never delays the process states. A failing probe is reported in its struct
(``detail``) and logged once per new error.

``GET /health`` answers 200 once the processes were collected once; ``GET /status`` returns the
structs last sent, per UVE table.

The pure parts (state.json -> ``process_info``, component -> table, the struct builders) are plain
functions, tested with literal inputs.

Modules: ``config`` (``agent.json``: what rendering writes; imports nothing from the probes),
``processes`` (state.json -> ``process_info``), ``structs`` (the component structs),
``publisher`` (sending on change), ``probing`` (the blocking probes), ``agent`` (the service, ``main``).
The package itself imports nothing, so importing ``node_agent.config`` (as ``rendering.services``
does) loads neither the probes nor the agent; ``node_agent.api`` gathers every public name.
"""
