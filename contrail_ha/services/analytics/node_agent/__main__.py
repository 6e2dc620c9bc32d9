"""``python -m contrail_ha.services.analytics.node_agent agent.json``, as the rendered process spec runs it."""

from contrail_ha.services.analytics.node_agent.agent import main

if __name__ == "__main__":
    main()
