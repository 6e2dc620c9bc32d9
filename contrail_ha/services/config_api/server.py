"""contrail-api as the replica runs it: the service layer (``service.ConfigService``: create,
update, delete, lists, refs, element updates, actions - no HTTP) with its aiohttp routes
(``routes.Handlers``).

``app.py`` builds one ``ConfigApi(store, zk, notifier)``, sets its parts (``store``, ``zk``,
``notifier``, ``hooks``, ``ipam``, ``audit``) and mounts it with ``add_routes``; the defaults and
the tag hooks call its ``create``/``delete`` directly.
"""

from __future__ import annotations

from aiohttp import web

from contrail_ha.services.config_api import objects
from contrail_ha.services.config_api.core import Hooks
from contrail_ha.services.config_api.crud import create_uuid
from contrail_ha.services.config_api.inputs import REQUEST_ID
from contrail_ha.services.config_api.routes import Handlers
from contrail_ha.services.config_api.service import ConfigService


class ConfigApi(ConfigService):
    """The whole contrail-api: CRUD and the actions over one store, coordinator and notifier."""

    def add_routes(self, app: web.Application) -> None:
        Handlers(self).add_routes(app)


__all__ = ["REQUEST_ID", "ConfigApi", "Hooks", "create_uuid", "objects"]
