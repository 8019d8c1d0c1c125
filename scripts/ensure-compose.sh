#!/usr/bin/env bash
# Makes sure Docker Compose can validate deploy/docker-compose.yml (test/deploy.test.ts runs
# `config -q`, which needs no Docker engine): the `docker compose` plugin if there is one, else
# Debian's docker-compose package (1.29), installed here if missing.
set -euo pipefail
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no Docker Compose and no apt-get: install Docker Compose v2 (or docker-compose);" \
    "test/deploy.test.ts fails without one" >&2
  exit 0
fi
echo "installing docker-compose (Debian package)" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# The package lists are normally there; refresh them only when the package cannot be found.
$SUDO apt-get install -y -qq docker-compose >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq docker-compose >/dev/null; }
