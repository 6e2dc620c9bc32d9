"""The web UI: one page showing the cluster as an operator watches it (``contrail-ha ui``).

Health (every status check, read from the components), the topology (hosts and roles), alarms and
UVEs from the analytics API, the latest drill results, and the config objects through the config API.
The server is an aiohttp app serving ``static/`` and a small JSON API; it listens where it was
started (e.g. 127.0.0.1) and reaches the cluster from its client namespace, as the CLI does.
"""
