#!/usr/bin/env bash
# Installs what Mooncake4j needs from Debian, once: a JDK 17+, gcc, and the tools its tests and
# benchmarks use (etcd-server gives /usr/bin/etcd, which the etcd store's tests start on loopback).
# Idempotent; does nothing when everything is there.
set -euo pipefail
packages=(gcc libc6-dev openjdk-17-jdk-headless curl ca-certificates unzip iperf3 iproute2 libfabric1 libfabric-dev libfabric-bin etcd-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing from Debian: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
