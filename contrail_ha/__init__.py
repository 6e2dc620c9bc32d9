"""contrail-ha: containerized Contrail controller in HA mode."""
__version__ = "0.1.0"
