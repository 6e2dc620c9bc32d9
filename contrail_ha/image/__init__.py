"""The product's container image and the engine that runs it: ``engine`` (the one boundary to
Podman, with the project's own engine configuration) and ``build`` (the image, from Debian's
mirror and the pinned jars and wheels, with no image registry)."""
