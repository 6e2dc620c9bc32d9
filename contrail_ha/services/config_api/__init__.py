"""contrail-api re-implementation: schema metadata, validation and (later) the server."""
