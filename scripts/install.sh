#!/usr/bin/env bash
# Install everything contrail-ha needs on a Debian 12 machine, idempotently:
# Debian packages, the Python venv (.venv) and the pinned Java runtimes (jar cache).
# Safe to run again: each step checks what is already there.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CONTRAIL_HA_CACHE:-/var/cache/contrail-ha}
VENV=${CONTRAIL_HA_VENV:-$ROOT/.venv}
APT_PACKAGES=(haproxy bird2 rabbitmq-server iproute2 nftables socat procps psmisc openjdk-17-jre-headless maven util-linux chromium libfaketime
  podman runc netavark aardvark-dns iptables debootstrap docker-compose openssh-server)
PYTHON=${PYTHON:-python3}

log() { printf '[install] %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (network namespaces and Debian packages need it)" >&2
  exit 2
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  # Packages must not start their own daemons (RabbitMQ, HAProxy, BIRD) in the root namespace:
  # contrail-ha starts them itself, inside the host namespaces.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ $own_policy = 1 ] && rm -f "$policy"
else
  log "apt: all packages present"
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "venv: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.contrail-ha-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$ROOT/requirements.lock" -nt "$stamp" ]; then
  log "venv: installing contrail-ha and its dependencies (runtime ones at requirements.lock's versions)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -c "$ROOT/requirements.lock" -e "$ROOT[dev,deploy]"
  touch "$stamp"
else
  log "venv: up to date"
fi

# Java runtimes: one pinned pom per component, resolved into a Maven repository the project owns,
# and a classpath file per component that the runtime reads.
mkdir -p "$CACHE/m2" "$CACHE/classpath"
for pom in "$ROOT"/java/*/pom.xml; do
  name=$(basename "$(dirname "$pom")")
  cp_file="$CACHE/classpath/$name.txt"
  if [ -s "$cp_file" ] && [ "$cp_file" -nt "$pom" ] && xargs -d: -n1 test -f < <(tr -d '\n' < "$cp_file") 2>/dev/null; then
    log "jars: $name present"
    continue
  fi
  log "jars: resolving $name"
  mvn -q -B -f "$pom" -Dmaven.repo.local="$CACHE/m2" \
    dependency:build-classpath -Dmdep.outputFile="$cp_file.tmp" -Dmdep.includeScope=runtime >/dev/null
  mv "$cp_file.tmp" "$cp_file"
done
# kube-score (Go, from the Go module proxy) checks the exported Kubernetes manifests in the tests;
# a machine without Go >= 1.23 still gets a cluster (only that test needs it).
KUBE_SCORE_VERSION=v1.20.0
GO=$(command -v go || echo /usr/local/go/bin/go)
if [ "$(cat "$CACHE/bin/kube-score.version" 2>/dev/null)" = "$KUBE_SCORE_VERSION" ] && [ -x "$CACHE/bin/kube-score" ]; then
  log "kube-score: present"
elif [ -x "$GO" ]; then
  log "kube-score: building $KUBE_SCORE_VERSION"
  mkdir -p "$CACHE/bin"
  GOBIN="$CACHE/bin" GOFLAGS=-mod=mod "$GO" install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
  echo "$KUBE_SCORE_VERSION" > "$CACHE/bin/kube-score.version"
else
  log "kube-score: no Go toolchain; skipped (the Kubernetes manifests' lint test needs it)"
fi
log "done"
