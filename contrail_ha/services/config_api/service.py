"""contrail-api's service layer: every operation of the API over plain Python values (parsed
bodies, query mappings, ids), returning plain values (the JSON answers) or raising the
``objects.ConfigError`` tree. No HTTP here: ``routes`` turns requests into these calls and their
results into responses, and the replica's other parts (defaults, tag hooks) call it directly.
"""

from __future__ import annotations

from contrail_ha.services.config_api.actions import Actions
from contrail_ha.services.config_api.crud import Crud
from contrail_ha.services.config_api.listing import Listing
from contrail_ha.services.config_api.props import Props
from contrail_ha.services.config_api.refs import Refs


class ConfigService(Crud, Refs, Props, Listing, Actions):
    """The whole contrail-api without HTTP: CRUD, lists and the actions over one store,
    coordinator and notifier (``ApiCore``)."""


__all__ = ["ConfigService"]
