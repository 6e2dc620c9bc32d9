"""``python -m contrail_ha.services.config_api service.json``: one contrail-api replica."""

from contrail_ha.services.config_api.app import main

main()
