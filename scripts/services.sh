#!/usr/bin/env bash
# Installs and starts the real components the tests use, bound to 127.0.0.1 only:
# a Docker engine without a bridge network, a registry, the offline base image, redis, chromium.
# Usage: scripts/services.sh [docker] [registry] [base-image] [redis-bin] [chromium] (default: all)
# Idempotent: what runs already is left alone. State lives in $RETRAIN_SERVICES_DIR (default /tmp/retrain-services).
set -euo pipefail
STATE=${RETRAIN_SERVICES_DIR:-/tmp/retrain-services}
REGISTRY_ADDR=${RETRAIN_TEST_REGISTRY:-127.0.0.1:5000}
BASE_IMAGE=${RETRAIN_TEST_BASE_IMAGE:-local/bookworm-python:base}
mkdir -p "$STATE"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing ${missing[*]} from Debian..."
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
}

start_docker() {
  apt_install docker.io
  if ! docker info >/dev/null 2>&1; then
    echo "Starting dockerd (no bridge network; containers use --network host)..."
    $SUDO nohup dockerd --bridge=none --iptables=false --ip-forward=false >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $STATE/dockerd.log" >&2; exit 1; }
  fi
}

start_registry() {
  apt_install docker-registry
  if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    echo "Starting a registry on $REGISTRY_ADDR..."
    mkdir -p "$STATE/registry-data"
    cat >"$STATE/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YML
    nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
    for _ in $(seq 30); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.5; done
    curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || { echo "registry did not start; see $STATE/registry.log" >&2; exit 1; }
  fi
}

build_base_image() {
  start_docker
  apt_install mmdebstrap
  if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "Building the offline base image $BASE_IMAGE with mmdebstrap (about a minute)..."
    mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' bookworm - 2>"$STATE/mmdebstrap.log" \
      | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE_IMAGE" >/dev/null
  fi
}

install_redis() { apt_install redis-server; }
install_chromium() { apt_install chromium; }

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(docker registry base-image redis-bin chromium)
for target in "${targets[@]}"; do
  case "$target" in
    docker) start_docker ;;
    registry) start_registry ;;
    base-image) build_base_image ;;
    redis-bin) install_redis ;;
    chromium) install_chromium ;;
    *) echo "unknown service: $target" >&2; exit 2 ;;
  esac
done
