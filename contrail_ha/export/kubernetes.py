"""Kubernetes: one DaemonSet per role group on the nodes labelled with that role, as
tf-helm-deployer ran Contrail (``contrail-ha.io/<role>=enabled``), each pod on its node's network
with its data on a hostPath.

A pod finds its own host of the topology by its node's address (``status.hostIP``, else the
node's name): the group's ConfigMap holds every host's rendered files and its Secret the
files only their owner may read (the Erlang cookie); an init container
(``python -m contrail_ha.export.unpack``) places the pod's host's files under the state root and
points ``<root>/self/<group>.json`` at its supervisor spec, which the container runs. A
checksum of both on the pod template rolls the pods when the configuration changes, one node
at a time (``maxUnavailable: 1``) and each only once the one before is ready; a
PodDisruptionBudget per group keeps voluntary evictions to one node at a time too, so ZooKeeper,
both Cassandra rings, RabbitMQ and Kafka keep their quorum. Requests and limits come from the
topology's heaps and CPUs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from contrail_ha import __version__
from contrail_ha.export import Unit
from contrail_ha.export.unpack import SELF_DIR
from contrail_ha.runtime.containers import CONTAINER_NAMES, HAND_OVER_CAPS, IMAGE_PYTHON, PRIVILEGED, health_argv
from contrail_ha.runtime.containers import supervisor_argv as _supervisor_argv
from contrail_ha.topology.model import Role
from contrail_ha.topology.plan import NODE_GROUP, Plan

CONFIG_MOUNT = "/etc/contrail-ha/rendered"
SECRET_MOUNT = "/etc/contrail-ha/secret"
LABEL_PREFIX = "contrail-ha.io"
GROUP_ORDER = (Role.CONTROLLER.value, Role.ANALYTICSDB.value, Role.ANALYTICS.value, Role.LB.value, NODE_GROUP)
MI = 1024 * 1024


def node_label(group: str) -> str:
    """The node label that puts ``group`` on a node (the node agent goes where any role is)."""
    return f"{LABEL_PREFIX}/{group}"


def self_spec(root: Path, group: str) -> Path:
    return root / SELF_DIR / f"{group}.json"


def is_secret(mode: int) -> bool:
    """A file only its owner may read (0600, 0400) goes into the Secret, not the ConfigMap."""
    return mode & 0o077 == 0


def _labels(group: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": CONTAINER_NAMES[group], "app.kubernetes.io/part-of": "contrail-ha",
            "contrail-ha.io/role": group}


def _meta(name: str, ns: str, group: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "labels": _labels(group), **extra}


def group_data(plan: Plan, units: list[Unit], root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(ConfigMap data, Secret data) of one group: every host's files under keys ``h<i>f<n>`` (keys
    cannot hold paths) and ``index.json``, which maps each host (name, IP) to its keys' paths."""
    config: dict[str, str] = {}
    secret: dict[str, str] = {}
    hosts = []
    for i, u in enumerate(sorted(units, key=lambda u: u.host)):
        keys: dict[str, str] = {}
        for n, rel in enumerate(sorted(u.files)):
            key = f"h{i}f{n}"
            keys[key] = rel
            (secret if is_secret(u.modes.get(rel, 0o644)) else config)[key] = u.files[rel]
        hosts.append({"host": u.host, "ip": str(plan.topology.host(u.host).ip), "files": keys,
                      "modes": u.modes, "dirs": u.dirs, "spec": str(u.spec_file.relative_to(root))})
    config["index.json"] = json.dumps({"group": units[0].group, "hosts": hosts}, indent=1, sort_keys=True)
    return config, secret


def _mib(n: float) -> str:
    return f"{int(n + 63) // 64 * 64}Mi"


def resources(plan: Plan, group: str) -> dict[str, dict[str, str]]:
    """Requests from what the group's processes use (JVM heaps plus their off-heap share, our
    services, RabbitMQ); limits with room above them; CPU limited to what the JVMs size for."""
    t = plan.topology
    jvm = 1.5  # heap -> resident set: metaspace, threads, direct buffers
    api = 192
    mem: float
    cpu_req = "250m"
    if group == Role.CONTROLLER.value:
        mem = jvm * (t.heap.zookeeper + t.heap.config_db) + 256 + api * t.services.config_api_replicas + 64
        cpu_req = "500m"
    elif group == Role.ANALYTICSDB.value:
        mem = jvm * (t.heap.analytics_db + t.heap.kafka) + 64
        cpu_req = "500m"
    elif group == Role.ANALYTICS.value:
        mem = api * (t.services.analytics_api_replicas + 2) + 64
    elif group == Role.LB.value:
        mem = 256
        cpu_req = "500m"  # BFD's 100 ms timers: the lb must not wait behind the databases
    else:
        mem = 96
        cpu_req = "50m"
    return {"requests": {"cpu": cpu_req, "memory": _mib(mem), "ephemeral-storage": "256Mi"},
            "limits": {"cpu": str(t.jvm.cpus), "memory": _mib(mem * 1.5), "ephemeral-storage": "2Gi"}}


INIT_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "16Mi"},
                  "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "64Mi"}}


def _affinity(group: str) -> dict[str, Any]:
    groups = [g for g in GROUP_ORDER if g != NODE_GROUP] if group == NODE_GROUP else [group]
    terms = [{"matchExpressions": [{"key": node_label(g), "operator": "In", "values": ["enabled"]}]} for g in groups]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def daemon_set(plan: Plan, group: str, ns: str, root: Path, image: str, checksum: str,
               has_secret: bool) -> dict[str, Any]:
    name = CONTAINER_NAMES[group]
    spec_file = self_spec(root, group)
    state = {"name": "state", "mountPath": str(root)}
    volumes: list[dict[str, Any]] = [{"name": "rendered", "configMap": {"name": name}},
                                     {"name": "state", "hostPath": {"path": str(root), "type": "DirectoryOrCreate"}}]
    init_mounts = [state, {"name": "rendered", "mountPath": CONFIG_MOUNT, "readOnly": True}]
    if has_secret:
        volumes.append({"name": "secret", "secret": {"secretName": name, "defaultMode": 0o400}})
        init_mounts.append({"name": "secret", "mountPath": SECRET_MOUNT, "readOnly": True})
    # root only to give the role's directories to the image's user, then the supervisor drops to it
    security: dict[str, Any] = {"privileged": True} if group in PRIVILEGED else {
        "runAsUser": 0, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": list(HAND_OVER_CAPS)}}
    pull = "Always" if "@sha256:" in image else "IfNotPresent"
    node_env = [{"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    annotations = {} if pull == "Always" else {
        # a site without a registry loads the image on each node (`image save`, `ctr images import`):
        # pulling cannot work there; the tag is the content hash of the image's inputs
        "kube-score/ignore": "container-image-pull-policy"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": _meta(name, ns, group, annotations=annotations) if annotations else _meta(name, ns, group),
        "spec": {
            "selector": {"matchLabels": _labels(group)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "minReadySeconds": 10,
            "template": {
                "metadata": {"labels": _labels(group), "annotations": {f"{LABEL_PREFIX}/config-checksum": checksum}},
                "spec": {
                    "hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet",
                    "affinity": _affinity(group),
                    "terminationGracePeriodSeconds": 120,
                    "automountServiceAccountToken": False,
                    "initContainers": [{
                        "name": "unpack", "image": image, "imagePullPolicy": pull,
                        "command": [IMAGE_PYTHON, "-m", "contrail_ha.export.unpack", CONFIG_MOUNT,
                                    SECRET_MOUNT if has_secret else "-", str(root)],
                        "env": node_env, "volumeMounts": init_mounts, "resources": INIT_RESOURCES,
                        "securityContext": {"runAsUser": 0},  # the hostPath is the kubelet's (root)
                    }],
                    "containers": [{"name": name, "image": image, "imagePullPolicy": pull,
                                    "command": _supervisor_argv(spec_file), "volumeMounts": [state],
                                    "resources": resources(plan, group), "securityContext": security,
                                    **_probes(spec_file, group)}],
                    "volumes": volumes,
                },
            },
        },
    }


def _probes(spec_file: Path, group: str) -> dict[str, Any]:
    """Readiness is the container's health check (every process runs and answers its probe; a
    start-up allowance covers Cassandra's bootstrap); liveness only that its supervisor runs: a
    process that crash-loops ends the supervisor, and one that waits for its peers must not be
    restarted for waiting."""
    ready = {"exec": {"command": health_argv(spec_file, group)}, "periodSeconds": 15, "timeoutSeconds": 10}
    alive = {"exec": {"command": health_argv(spec_file, group, alive=True)}, "periodSeconds": 15,
             "timeoutSeconds": 10}
    return {"startupProbe": {**alive, "failureThreshold": 8}, "livenessProbe": {**alive, "failureThreshold": 3},
            "readinessProbe": {**ready, "failureThreshold": 1}}


def disruption_budget(group: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(CONTAINER_NAMES[group], ns, group),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(group)}}}


def manifests(plan: Plan, units: list[Unit], root: Path, image: str | None = None) -> list[dict[str, Any]]:
    image = image or f"localhost/contrail-ha:{__version__}"
    ns = f"contrail-ha-{plan.cluster_id}"
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for group in GROUP_ORDER:
        members = [u for u in units if u.group == group]
        if not members:
            continue
        config, secret = group_data(plan, members, root)
        checksum = hashlib.sha256(json.dumps([config, secret], sort_keys=True).encode()).hexdigest()
        name = CONTAINER_NAMES[group]
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, ns, group), "data": config})
        if secret:
            docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(name, ns, group),
                         "stringData": secret})
        docs += [daemon_set(plan, group, ns, root, image, checksum, bool(secret)), disruption_budget(group, ns)]
    return docs


def text(plan: Plan, units: list[Unit], root: Path, image: str | None = None) -> str:
    return ("# Generated by `contrail-ha export kubernetes`: label the nodes (see README.md), then kubectl apply -f.\n"
            + yaml.safe_dump_all(manifests(plan, units, root, image), sort_keys=False))


def write(plan: Plan, units: list[Unit], out: Path, root: Path, image: str | None = None) -> Path:
    f = out / f"{plan.cluster_id}.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text(plan, units, root, image))
    f.chmod(0o600)  # it holds the Secrets
    return f


def label_commands(plan: Plan) -> list[str]:
    """``kubectl label node`` for every host of the topology (node names as the topology's hosts)."""
    return [f"kubectl label node {h.name} " + " ".join(f"{node_label(r.value)}=enabled" for r in h.roles)
            for h in plan.topology.hosts]
