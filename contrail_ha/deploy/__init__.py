"""The deployment to hosts reached over SSH (``contrail-ha deploy``), with Ansible.

The deploying machine renders each host's Compose project (the file ``export compose`` writes,
with the host's rendered tree and secrets) into a bundle (:mod:`.bundle`), writes the variables of
the playbook in ``ansible/`` and runs it (:mod:`.runner`): every host gets Debian's Podman and
docker-compose if missing, the project's own engine configuration and API service, the image
(already there, pulled from ``--registry``, or saved here once and loaded there) and its project;
then the roles start tier by tier as ``up`` orders them, each waiting for its containers' health
checks. ``status``, ``logs`` and ``down`` of such a cluster go over SSH too (:mod:`.remote`).
"""
