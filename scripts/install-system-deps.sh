#!/usr/bin/env bash
# Installs what creditline needs outside Python, when missing: redis-server (Debian package),
# a JDK 17+ and Maven (to fetch and run Kafka's jars), Prometheus (promtool and server, for
# the observability tests), kcat (for the hostile-records test), Go (to build toxiproxy for the
# network-fault tests: scripts/install-toxiproxy.sh) and a compose CLI where a docker CLI has
# none. Idempotent; quiet when all is there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# promtool and the Prometheus server, for the metrics and alert-rule tests.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# kcat (librdkafka): the hostile-records test publishes what a client nobody on the project
# wrote can send (header names that are not UTF-8, null header values, every codec).
command -v kcat >/dev/null 2>&1 || need+=(kcat)
# Go builds toxiproxy-server from the Go module proxy (scripts/install-toxiproxy.sh).
command -v go >/dev/null 2>&1 || need+=(golang-go)
# To validate docker-compose.yml where a docker CLI exists but no compose plugin does.
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "installing system packages: ${need[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not found: install ${need[*]} with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian may start its own redis-server service on 6379; creditline starts its own on demand
# and leaves an already reachable one alone, so either works.
